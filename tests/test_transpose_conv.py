"""TRANSPOSE_CONV (tinyq/compile/ops/kernels/transpose_conv.py, firmware/kernels/tq_transpose_conv.c), bit-exact.

Keras Conv2DTranspose (and Conv1DTranspose) layers with random weights, converted to full int8: strides 1 and 2
(and unequal ones), kernels 1 to 4 (square or not), SAME and VALID padding, an output padding, with and without
a bias, a fused ReLU / ReLU6, channel counts that are and are not multiples of 4, odd output channel counts; the
generated C (host gcc) must give the bytes tflite_micro gives on random inputs. Then a small convolutional
autoencoder in QEMU.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

CASES = [
    dict(shape=(5, 6, 3), filters=4, kernel=3, strides=2, padding="same", bias=True, act=None),
    dict(shape=(5, 6, 8), filters=5, kernel=3, strides=2, padding="valid", bias=True, act="relu"),
    dict(shape=(4, 4, 8), filters=8, kernel=4, strides=2, padding="same", bias=False, act=None),
    dict(shape=(4, 5, 4), filters=6, kernel=2, strides=2, padding="valid", bias=True, act=None),
    dict(shape=(6, 6, 8), filters=4, kernel=3, strides=1, padding="same", bias=True, act="relu"),
    dict(shape=(5, 7, 3), filters=7, kernel=2, strides=1, padding="valid", bias=False, act=None),
    dict(shape=(3, 4, 16), filters=3, kernel=4, strides=1, padding="same", bias=True, act=None),
    dict(shape=(5, 5, 6), filters=4, kernel=3, strides=(2, 1), padding="same", bias=True, act=None),
    dict(shape=(4, 6, 4), filters=4, kernel=(2, 3), strides=(1, 2), padding="valid", bias=True, act="relu6"),
    dict(shape=(3, 3, 4), filters=4, kernel=1, strides=2, padding="valid", bias=True, act=None),
    dict(shape=(4, 5, 8), filters=1, kernel=3, strides=2, padding="same", bias=True, act=None, output_padding=0),
    dict(shape=(3, 4, 4), filters=6, kernel=4, strides=2, padding="valid", bias=True, act=None, output_padding=1),
]


def _ids(c):
    return (f"{c['shape'][-1]}to{c['filters']}-k{c['kernel']}-s{c['strides']}-{c['padding']}"
            f"-{'b' if c['bias'] else 'nb'}-{c['act']}" + (f"-op{c['output_padding']}" if "output_padding" in c else ""))


def _randomize(model, seed=1):
    """Random weights (Keras' zero bias would be dropped by the converter), scaled to keep sums moderate."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.3 for w in model.get_weights()])
    return model


def tconv_tflite(shape, filters, kernel, strides, padding, bias, act, output_padding=None) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        layer = keras.layers.Conv2DTranspose(filters, kernel, strides=strides, padding=padding, use_bias=bias,
                                             activation=act, output_padding=output_padding)
        m = _randomize(keras.Model(inp, layer(inp)))
        calib = np.random.default_rng(3).normal(size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    extra = [] if output_padding is None else [output_padding]
    return cached_tflite(["transpose_conv", shape, filters, kernel, strides, padding, bias, act, *extra], make)


def _random_inputs(tflite, n=6, seed=2):
    shape = parse_tflite(tflite).input_tensors[0].shape
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


def _assert_bit_exact(tflite, x):
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_transpose_conv_bit_exact_with_tflm(case):
    tflite = tconv_tflite(**case)
    g = parse_tflite(tflite)
    op = next((op for op in g.operators if op.opcode == "TRANSPOSE_CONV"), None)
    assert op is not None, [op.opcode for op in g.operators]
    assert (len(op.inputs) == 4) == case["bias"]
    _assert_bit_exact(tflite, _random_inputs(tflite))


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[9]], ids=["3to4-s2", "8to8-k4", "k1-s2"])
def test_transpose_conv_exact_requantization_bit_exact(case, monkeypatch):
    """The long requantization (tq_rq_exact), which layers whose sums or shifts the fast path cannot prove take:
    forced here by refusing every proof."""
    from tinyq.compile.ops import layout

    monkeypatch.setattr(layout, "fast_ok", lambda *a: False)
    tflite = tconv_tflite(**case)
    from tinyq.compile.ops import lower

    g = parse_tflite(tflite)
    call = lower(g, next(op for op in g.operators if op.opcode == "TRANSPOSE_CONV"))
    # (a phase no tap lands on is constant: layout.constant_output keeps it on the fast path, exactly)
    assert not any(p[-1] for p in next(a for a in call.arrays if a.name == "phases").values if p[4])
    _assert_bit_exact(tflite, _random_inputs(tflite, n=3))


def test_conv1d_transpose_bit_exact_with_tflm():
    """Conv1DTranspose converts to a TRANSPOSE_CONV of height 1 between two RESHAPEs."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input((9, 4))
        m = _randomize(keras.Model(inp, keras.layers.Conv1DTranspose(6, 3, strides=2, padding="same")(inp)))
        return quantize_keras(m, np.random.default_rng(3).normal(size=(32, 9, 4)).astype(np.float32))

    tflite = cached_tflite(["conv1d_transpose", 9, 4, 6, 3, 2, "same"], make)
    assert "TRANSPOSE_CONV" in {op.opcode for op in parse_tflite(tflite).operators}
    _assert_bit_exact(tflite, _random_inputs(tflite))


def test_transpose_conv_is_supported_and_counts_its_macs():
    from tinyq.compile.analyze import analyze, op_macs
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.plan import plan_model

    assert "TRANSPOSE_CONV" in SUPPORTED_OPS
    case = CASES[1]  # 5x6x8 -> 5 channels, 3x3 stride 2 VALID: output 11x13
    g = parse_tflite(tconv_tflite(**case))
    op = next(op for op in g.operators if op.opcode == "TRANSPOSE_CONV")
    call = lower(g, op)
    check_call(call)
    assert op_macs(g, op) == 5 * 6 * 8 * 3 * 3 * 5 == call.macs
    assert analyze(g).macs >= call.macs
    # The scratch: the columns of the longest phase (2x2 taps of 8 channels: 16 K-pairs), then a border group's
    # strip (a kernel row's 2 pixels and 3 more, 8 bytes each), which the output of a group of 4 (4 x 5) reuses.
    assert call.scratch_bytes == 16 * 16 + max(5 * 8, 4 * 5)
    step = next(st for st in plan_model(g).steps if st.call.function == "tq_transpose_conv_s8")
    assert step.call.scratch_bytes == call.scratch_bytes


def test_transpose_conv_with_asymmetric_weights_is_refused():
    """TFLM's int8 kernel multiplies the raw weights: a weight zero point (no converter writes one) is refused."""
    import dataclasses

    from tinyq.compile.analyze import check_compatibility
    from tinyq.graph import Quantization

    g = parse_tflite(tconv_tflite(**CASES[0]))
    op = next(op for op in g.operators if op.opcode == "TRANSPOSE_CONV")
    w = g.tensors[op.inputs[1]]
    bad = dataclasses.replace(w, quant=Quantization(scale=w.quant.scale, zero_point=tuple(1 for _ in w.quant.scale)))
    g2 = dataclasses.replace(g, tensors=tuple(bad if t.index == w.index else t for t in g.tensors))
    assert any("asymmetric int8 weights" in i.problem for i in check_compatibility(g2))


def autoencoder_tflite() -> bytes:
    """A small convolutional autoencoder: Conv2D stride 2 down twice, Conv2DTranspose stride 2 up twice."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input((16, 16, 1))
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")(x)
        x = keras.layers.Conv2D(1, 3, padding="same")(x)
        m = _randomize(keras.Model(inp, x), seed=4)
        return quantize_keras(m, np.random.default_rng(5).normal(size=(32, 16, 16, 1)).astype(np.float32))

    return cached_tflite(["tconv_autoencoder", 16, 8, 16], make)


def test_autoencoder_on_host_bit_exact():
    tflite = autoencoder_tflite()
    assert [op.opcode for op in parse_tflite(tflite).operators].count("TRANSPOSE_CONV") == 2
    _assert_bit_exact(tflite, _random_inputs(tflite, n=4))


def test_autoencoder_in_qemu_bit_exact(tmp_path):
    from tinyq.pipeline import run_model_on

    tflite = autoencoder_tflite()
    m, plan, _ = run_model_on(tflite, "qemu", _random_inputs(tflite, n=3), tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert any(st.call.function == "tq_transpose_conv_s8" for st in plan.steps)
    print(f"autoencoder: {m.cycles} instructions an inference, {plan.macs} MACs")
