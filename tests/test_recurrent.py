"""Recurrent layers (tinyq/model/recurrent.py): Keras LSTM, GRU, SimpleRNN and Bidirectional, unrolled by the
quantize stage into a graph TFLite's int8 converter takes, bit-exact with TFLM.

Small models with random weights (biases too): the rebuild against the Keras layer in float, layer by layer;
then the int8 model (quantize_keras) run by the generated C on the host against tflite_micro byte for byte;
the options tinyq cannot take refused by name; one IMU gesture model (50 x 6 -> LSTM(32) -> softmax(5)) in QEMU.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

T, F, U = 5, 3, 4

#: name -> the layer's source (a Keras expression of ``L`` = keras.layers and ``U``), small and fast.
LAYERS = {
    "lstm": "L.LSTM(U)",
    "lstm_seq": "L.LSTM(U, return_sequences=True)",
    "lstm_back_seq": "L.LSTM(U, go_backwards=True, return_sequences=True)",
    "lstm_relu_nobias": "L.LSTM(U, activation='relu', use_bias=False)",
    "gru": "L.GRU(U)",
    "gru_seq_back": "L.GRU(U, go_backwards=True, return_sequences=True)",
    "gru_reset_before": "L.GRU(U, reset_after=False, return_sequences=True)",
    "gru_nobias": "L.GRU(U, use_bias=False)",
    "rnn": "L.SimpleRNN(U)",
    "rnn_relu_seq": "L.SimpleRNN(U, activation='relu', return_sequences=True)",
    "rnn_cell": "L.RNN(L.GRUCell(U))",
    "bi_lstm_concat": "L.Bidirectional(L.LSTM(U, return_sequences=True))",
    "bi_gru_sum": "L.Bidirectional(L.GRU(U), merge_mode='sum')",
    "bi_rnn_ave": "L.Bidirectional(L.SimpleRNN(U), merge_mode='ave')",
}
#: The LSTMs that take TFLite's fused op (tanh and sigmoid, no cell state asked for); the others are unrolled.
FUSED = {"lstm", "lstm_seq", "lstm_back_seq", "bi_lstm_concat"}
#: The ones converted to int8 and run (each conversion takes seconds): every path of the rebuild.
CONVERTED = ["lstm_seq", "lstm_back_seq", "lstm_relu_nobias", "gru", "gru_seq_back", "gru_reset_before",
             "gru_nobias", "rnn_relu_seq", "bi_lstm_concat", "bi_gru_sum"]


def _randomize(model, seed: int = 3) -> None:
    """Weights and biases drawn at random (Keras starts biases at zero, which hides their paths)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def _model(name: str, head: bool = True):
    import keras

    L = keras.layers  # noqa: N806 - the name LAYERS' sources use
    inp = keras.Input((T, F))
    y = eval(LAYERS[name], {"L": L, "U": U})(inp)  # noqa: S307 - the test's own table
    if head:
        y = L.Dense(3)(L.Flatten()(y) if len(y.shape) == 3 else y)
    m = keras.Model(inp, y)
    _randomize(m)
    return m


def _calib(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(n, T, F)).astype(np.float32)


def _rebuild_source() -> str:
    """The rebuild's source: part of every cache key here (a changed rebuild is a changed model)."""
    import inspect

    from tinyq.model import recurrent

    return inspect.getsource(recurrent)


def rnn_tflite(name: str) -> bytes:
    from tinyq.model.quantize import quantize_keras

    return cached_tflite(["recurrent", name, LAYERS[name], T, F, U, _rebuild_source()],
                         lambda: quantize_keras(_model(name), _calib()))


@pytest.mark.parametrize("name", list(LAYERS))
def test_rebuild_is_the_layer_in_float(name):
    """Every unrolled layer against the Keras layer it replaces (random inputs), then the whole model."""
    import keras

    from tinyq.model import recurrent

    m = _model(name)
    r = recurrent.rebuild(m, keras, check=False)
    ((_, diff),) = recurrent.layer_differences(r)
    assert diff < 1e-5, diff
    x = _calib(8, seed=1)
    np.testing.assert_allclose(np.asarray(r.model(x)), np.asarray(m(x)), atol=1e-5)


def test_rebuild_keeps_states_and_shares_other_layers():
    import keras

    from tinyq.model import recurrent

    L = keras.layers
    inp = keras.Input((T, F))
    seq, h, c = L.LSTM(U, return_sequences=True, return_state=True, name="enc")(inp)
    dense = L.Dense(2, name="head")
    m = keras.Model(inp, dense(L.Concatenate()([L.Flatten()(seq), h, c])))
    _randomize(m)
    r = recurrent.rebuild(m, keras)
    assert r.describe() == "LSTM 'enc' (5 steps, unrolled)"  # its cell state is asked for
    assert r.model.get_layer("head") is dense  # layers around the recurrent one are the model's own
    x = _calib(4)
    np.testing.assert_allclose(np.asarray(r.model(x)), np.asarray(m(x)), atol=1e-5)


def test_rebuild_reaches_nested_models():
    import keras

    from tinyq.model import recurrent

    inner = keras.Sequential([keras.Input((T, F)), keras.layers.Conv1D(4, 3, padding="same"),
                              keras.layers.GRU(U, name="g")], name="inner")
    inp = keras.Input((T, F))
    m = keras.Model(inp, keras.layers.Dense(2)(inner(inp)))
    _randomize(inner)
    r = recurrent.rebuild(m, keras)
    assert r.describe() == "GRU 'g' (5 steps, unrolled)"
    x = _calib(4)
    np.testing.assert_allclose(np.asarray(r.model(x)), np.asarray(m(x)), atol=1e-5)


@pytest.mark.parametrize("name", CONVERTED)
def test_int8_bit_exact_with_tflm(name):
    """The int8 model holds only ops tinyq runs, and its generated C gives TFLM's bytes."""
    from tinyq.compile.analyze import unsupported_ops

    tflite = rnn_tflite(name)
    g = parse_tflite(tflite)
    ops = {op.opcode for op in g.operators}
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in ops) == (name in FUSED), ops
    inner = {i for op in g.operators for i in (*op.inputs, *op.outputs)}
    assert all(t.dtype != "FLOAT32" for t in g.tensors if t.index in inner), "a float tensor left in the int8 model"
    assert not unsupported_ops(g)
    shape = g.input_tensors[0].shape
    x = np.random.default_rng(7).integers(-128, 128, (12, *shape)).astype(np.int8)
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


def test_int8_model_stays_close_to_float():
    """Quantization, not the rebuild, is all that separates the int8 LSTM from the float one."""
    from tinyq.model.quantize import _Runner

    m = _model("lstm_seq")
    x = _calib(32, seed=4)
    q = _Runner(rnn_tflite("lstm_seq"))
    yq = np.stack([q.run(s) for s in x])
    yf = np.asarray(m(x))
    assert np.abs(yq - yf).max() < 0.1 * np.abs(yf).max()


def test_recurrent_kernel_is_emitted_once():
    """Each timestep's FULLY_CONNECTED of an unrolled layer reads the same recurrent kernel: one copy in flash,
    not one a step."""
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.plan import plan_model, shared_arrays

    tflite = rnn_tflite("gru")
    plan = plan_model(parse_tflite(tflite))
    shared = shared_arrays(plan.calls)
    assert len([k for k in shared if k[1] == "w"]) == T - 2  # steps 2..T reuse step 1's kernel
    # The static arena's half of the C (tq_model_run_with_arena re-makes, on its stack, the structs that hold arena
    # addresses, naming the same arrays again).
    c = emit_model(plan, tflite)["tq_model.c"].split("int tq_model_run_with_arena")[0]
    (j, _), = {v for k, v in shared.items() if k[1] == "w"}
    # Arrays of calls that carry no constant tensor are shared by equal content too: the gates' LOGISTIC/TANH
    # tables, each step's slice views.
    assert {"table", "views"} <= {k[1] for k in shared}
    assert c.count(f"op{j}_w[") == 1 and c.count(f"op{j}_w,") == T - 1


@pytest.mark.parametrize("source, match", [
    ("L.LSTM(U, stateful=True, name='x')", "LSTM layer 'x': stateful=True"),
    ("L.LSTM(U, recurrent_activation='hard_sigmoid', name='x')", "LSTM layer 'x': recurrent_activation='hard_sigmoid'"),
    ("L.SimpleRNN(U, activation='elu', name='x')", "SimpleRNN layer 'x': activation='elu'"),
    ("L.GRU(U, recurrent_activation='tanh', name='x')", "GRU layer 'x': recurrent_activation='tanh'"),
    ("L.RNN([L.LSTMCell(U), L.LSTMCell(U)], name='x')", "RNN layer 'x': its cell is a StackedRNNCells"),
    ("L.Bidirectional(L.LSTM(U, stateful=True), name='x')", "Bidirectional layer 'x' (its LSTM): stateful=True"),
])
def test_options_tinyq_cannot_take_are_refused_by_name(source, match):
    import keras

    from tinyq.model import recurrent

    L = keras.layers
    kw = {"batch_size": 1} if "stateful" in source else {}
    inp = keras.Input((T, F), **kw)
    layer = eval(source, {"L": L, "U": U})  # noqa: S307 - the test's own table
    m = keras.Model(inp, layer(inp))
    with pytest.raises(UnsupportedModelError, match=match.replace("(", r"\(").replace(")", r"\)")):
        recurrent.rebuild(m, keras)


def test_masking_is_refused():
    import keras

    from tinyq.model import recurrent

    m = keras.Sequential([keras.Input((T, F)), keras.layers.Masking(name="pad"), keras.layers.LSTM(U)])
    with pytest.raises(UnsupportedModelError, match="Masking layer 'pad'"):
        recurrent.rebuild(m, keras)


def test_quantize_stage_says_what_it_unrolled(tmp_path):
    """A saved model read by the quantize stage: its loader line names the unrolled layer, and the layer is no
    longer a suspect if TensorFlow crashes (the crash hint names only layers the converter sees)."""
    import keras

    from tinyq.model.quantize import _load_source

    m = keras.Sequential([keras.Input((T, F)), keras.layers.GRU(U, name="g"), keras.layers.Dense(2, name="d")])
    m.save(tmp_path / "m.keras")
    src = _load_source(str(tmp_path / "m.keras"))
    assert src.loader.endswith("; recurrent layers rebuilt: GRU 'g' (5 steps, unrolled)"), src.loader
    assert [c for c, _ in src.layers] == ["Dense"]


def _gestures(n: int, seed: int = 0) -> np.ndarray:
    """6-axis IMU windows (50 steps): per-axis sinusoids of random frequency and phase, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(50)[None, :, None]
    f = rng.uniform(0.02, 0.2, (n, 1, 6))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 6))
    amp = rng.uniform(0.5, 2.0, (n, 1, 6))
    return (amp * np.sin(2 * np.pi * f * t + phase) + rng.normal(0, 0.1, (n, 50, 6))).astype(np.float32)


def gesture_tflite(layer: str = "LSTM(32)") -> bytes:
    """The IMU gesture model: Input((50, 6)) -> ``layer`` -> Dense(5, softmax), int8."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((50, 6)), eval(f"keras.layers.{layer}"),  # noqa: S307 - the tests' own
                              keras.layers.Dense(5, activation="softmax", name="gesture")])
        return quantize_keras(m, _gestures(100))

    return cached_tflite(["recurrent-gesture", 50, 6, layer, 5, _rebuild_source()], make)


@pytest.mark.parametrize("layer, opcode", [("LSTM(32)", "UNIDIRECTIONAL_SEQUENCE_LSTM"), ("GRU(16)", "SPLIT")])
def test_gesture_model_in_qemu_bit_exact(layer, opcode, tmp_path):
    """The IMU gesture model on the emulated nRF52840 (its LSTM fused, a GRU unrolled): TFLM's outputs, and the
    instructions and arena it takes."""
    from tinyq.model.quantize import quantize_input
    from tinyq.pipeline import run_model_on

    tflite = gesture_tflite(layer)
    g = parse_tflite(tflite)
    assert opcode in {op.opcode for op in g.operators}
    x = quantize_input(_gestures(3, seed=9), g.input_tensors[0])
    m, plan, fw = run_model_on(tflite, "qemu", x, tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert m.arena_bytes == plan.ram_bytes
    print(f"gesture {layer} x 50 steps: {m.cycles:,} {m.cycles_kind}, arena {m.arena_bytes:,} B, "
          f"flash {m.flash_bytes:,} B, {len(plan.steps)} kernel calls, {plan.macs:,} MACs")
