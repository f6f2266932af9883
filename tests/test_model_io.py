"""Several inputs and outputs, and int8 models with float ends (#28, items 3 and 5), end to end.

The models are converted here by TensorFlow's own converter, as users' tools do: a two-headed and a two-input
model with int8 input and output, and models left with float32 ends (TensorFlow's default without
``inference_input_type``: a QUANTIZE first, a DEQUANTIZE last). The generated C (host gcc) and the firmware in
QEMU must give TFLM's bytes, for every output, the float ones included.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.quantize import random_inputs
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

pytestmark = pytest.mark.xdist_group("model_io")


def _convert(build, int8_io: bool) -> bytes:
    import tensorflow as tf

    model = build()
    shapes = [tuple(i.shape[1:]) for i in model.inputs]
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(32):
            yield [rng.normal(size=(1, *s)).astype(np.float32) for s in shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _two_heads():
    import keras

    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 3), batch_size=1)
    h = keras.layers.Conv2D(8, 3, activation="relu")(x)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, [keras.layers.Dense(4, activation="softmax", name="cls")(h),
                           keras.layers.Dense(2, name="box")(h)])


def _two_inputs():
    import keras

    keras.utils.set_random_seed(4)
    # Same shapes: the calibration feeds inputs in the converter's signature order, which need not be Keras's.
    a, b = keras.Input((16,), batch_size=1), keras.Input((16,), batch_size=1)
    h = keras.layers.Concatenate()([keras.layers.Dense(8, activation="relu")(a), keras.layers.Dense(8)(b)])
    return keras.Model([a, b], keras.layers.Dense(3)(h))


def _one_dense():
    import keras

    keras.utils.set_random_seed(5)
    x = keras.Input((12,), batch_size=1)
    return keras.Model(x, keras.layers.Dense(5)(keras.layers.Dense(10, activation="relu")(x)))


MODELS = {"two_heads": _two_heads, "two_inputs": _two_inputs, "one_dense": _one_dense}
CASES = [("two_heads", True), ("two_inputs", True), ("one_dense", False), ("two_heads", False)]


def model_tflite(name: str, int8_io: bool) -> bytes:
    import inspect

    return cached_tflite(["model_io", name, int8_io, inspect.getsource(MODELS[name])],
                         lambda: _convert(MODELS[name], int8_io))


@pytest.mark.parametrize("name,int8_io", CASES, ids=[f"{n}-{'int8' if i else 'float'}-io" for n, i in CASES])
def test_generated_c_matches_tflm_on_every_output(name, int8_io):
    tflite = model_tflite(name, int8_io)
    g = parse_tflite(tflite)
    assert (len(g.inputs), len(g.outputs)) == ((2, 1) if name == "two_inputs" else (1, 2) if name == "two_heads" else (1, 1))
    assert {t.dtype for t in g.input_tensors + g.output_tensors} == ({"INT8"} if int8_io else {"FLOAT32"})
    x = random_inputs(g, 6, seed=1)
    want = TflmReference(tflite).run_all(x)
    got = run_on_host(tflite, x)
    assert got.shape == want.shape == (6, g.output_bytes)
    np.testing.assert_array_equal(got, want)
    outs = g.unpack("output", got)
    assert [o.shape[1:] for o in outs] == [t.shape[1:] for t in g.output_tensors]
    if not int8_io:  # real floats, in range: the DEQUANTIZE of the int8 result
        assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outs)


def test_float_input_quantized_as_tflm_rounds():
    """Inputs on and beside every rounding boundary of the QUANTIZE (x / scale = k + 0.5, and a float either
    side), and outside the int8 range: the C's float division and round-half-away are TFLM's. (Beyond int32,
    x / scale has no defined int32 cast in TFLM: the host's x86 gives INT_MIN, an Arm core saturates; tinyq
    saturates on both, tested below.)"""
    tflite = model_tflite("one_dense", False)
    g = parse_tflite(tflite)
    q = next(g.tensors[op.outputs[0]] for op in g.operators if op.opcode == "QUANTIZE")
    s = np.float32(q.quant.scale[0])
    half = (np.arange(-140, 140) + 0.5).astype(np.float64) * float(s)
    edge = np.concatenate([half, np.nextafter(half.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(half.astype(np.float32), np.float32(-np.inf)), [1e3, -1e3, 0.0, -0.0]])
    x = np.resize(edge.astype(np.float32), (len(edge) // 12 + 1) * 12).reshape(-1, 12)
    packed = g.pack_inputs([x])
    np.testing.assert_array_equal(run_on_host(tflite, packed), TflmReference(tflite).run_all(packed))


def test_float_input_beyond_int32_saturates():
    """A float input end saturates huge values (and NaN to the low end) where TFLM's cast is undefined."""
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.hostrun import run_generated
    from tinyq.compile.plan import plan_model

    tflite = model_tflite("one_dense", False)
    g = parse_tflite(tflite)
    q = next(op for op in g.operators if op.opcode == "QUANTIZE")
    # A model cut after its QUANTIZE: the int8 tensor the float input becomes, read straight off the device.
    cut = type(g)(g.tensors, (q,), g.inputs, q.outputs)
    x = np.array([[1e30, -1e30, np.inf, -np.inf, np.nan, 3e9, -3e9, 0, 0, 0, 0, 0]], np.float32)
    got = run_generated(emit_model(plan_model(cut), tflite), x, (12,))
    assert got[0, :7].tolist() == [127, -128, 127, -128, -128, 127, -128]


@pytest.mark.parametrize("name,int8_io", [("two_heads", True), ("two_inputs", False)])
def test_several_ios_and_float_ends_in_qemu(name, int8_io, tmp_path):
    from tinyq.pipeline import run_model_on

    tflite = model_tflite(name, int8_io)
    m, plan, _ = run_model_on(tflite, "qemu", random_inputs(parse_tflite(tflite), 3, seed=2), tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"


def test_two_input_keras_model_builds_from_an_npz_keyed_by_input_name(tmp_path):
    """`tinyq build` of a Keras model with two inputs of different shapes: calibration from an .npz keyed by the
    Inputs' names (stored in another order than the model's); the device runs the model bit-exact in QEMU; an
    .npz without one of the names is refused naming what is missing."""
    import json

    import keras
    from click.testing import CliRunner

    from tinyq.cli import cli

    keras.utils.set_random_seed(6)
    a, b = keras.Input((20,), name="imu"), keras.Input((3,), name="meta")
    h = keras.layers.Concatenate()([keras.layers.Dense(8, activation="relu")(a), keras.layers.Dense(4)(b)])
    keras.Model([a, b], [keras.layers.Dense(3, activation="softmax")(h), keras.layers.Dense(1)(h)]).save(
        tmp_path / "m.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", meta=rng.normal(size=(60, 3)), imu=rng.normal(size=(60, 20)))
    np.savez(tmp_path / "half.npz", imu=rng.normal(size=(60, 20)), other=rng.normal(size=(60, 3)))
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "m.keras"), "--board", "nano33", "--calib",
                                 str(tmp_path / "half.npz"), "-o", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "no array for meta" in r.output and "imu=..., meta=..." in r.output, r.output
    assert not (tmp_path / "bad").exists()
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "m.keras"), "--board", "nano33", "--calib",
                                 str(tmp_path / "calib.npz"), "-o", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    g = parse_tflite((tmp_path / "out" / "model_int8.tflite").read_bytes())
    assert [g.input_name(i) for i in g.inputs] == ["imu", "meta"] and len(g.outputs) == 2
    x = np.load(tmp_path / "out" / "verify.npz")["inputs"]
    assert x.shape == (8, 23)  # each sample: imu's 20 bytes, then meta's 3
    r = CliRunner().invoke(cli, ["flash", "--build", str(tmp_path / "out"), "--emulator", "qemu", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["outputs_match"] is True


def test_layernorm_float_island_runs_bit_exact_with_tflm():
    """Keras LayerNormalization: TensorFlow's int8 converter leaves a NEG in float between a DEQUANTIZE and a
    QUANTIZE; tinyq runs that island in float (exact), the model is judged int8, and the generated C gives TFLM's
    bytes (TFLM is the reference: it runs the float NEG)."""
    import keras

    from tinyq.compile.analyze import check_compatibility, float_islands, tflite_kind
    from tinyq.model.quantize import quantize_keras
    from tinyq.model.reference import reference_for

    def make():
        keras.utils.set_random_seed(7)
        x = keras.Input((24,))
        h = keras.layers.LayerNormalization()(keras.layers.Dense(32, activation="relu")(x))
        m = keras.Model(x, keras.layers.Dense(4)(h))
        return quantize_keras(m, np.random.default_rng(0).normal(size=(64, 24)).astype(np.float32))

    tflite = cached_tflite(["model_io", "layernorm"], make)
    g = parse_tflite(tflite)
    assert [op.opcode for op in g.operators if op.opcode in ("DEQUANTIZE", "NEG", "QUANTIZE")] == \
        ["DEQUANTIZE", "NEG", "QUANTIZE"]
    assert len(float_islands(g)) == 2 and tflite_kind(g) == "int8"
    check_compatibility(g)
    assert isinstance(reference_for(tflite), TflmReference)
    x = random_inputs(g, 8, seed=3)
    np.testing.assert_array_equal(run_on_host(tflite, x), TflmReference(tflite).run_all(x))
