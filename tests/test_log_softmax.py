"""LOG_SOFTMAX (tinyq/compile/ops/kernels/log_softmax.py, firmware/kernels/tq_log_softmax.c) bit-exact with TFLM.

One-op Keras models (keras.ops.log_softmax over the last axis) converted to full int8, over several depths
(1, odd, past 256), ranks and input scales, run by the generated C on the host against tflite_micro on
rows of every int8 value, on rows with one or two values far above the rest (the differences TFLM cuts at
diff_min) and on random tensors; and one QEMU run of a small model with a conv, HARD_SWISH, ABS and
LOG_SOFTMAX.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

#: (input shape, calibration range low, high)
CASES = [((10,), -4.0, 4.0), ((4, 10), -8.0, 8.0), ((2, 3, 16), -1.0, 1.0), ((257,), -20.0, 20.0),
         ((5, 3), -0.2, 0.2), ((3, 1), -2.0, 2.0), ((64,), -60.0, 60.0), ((7, 9), 0.0, 6.0)]


def log_softmax_tflite(shape, lo, hi) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        m = keras.Model(inp, keras.layers.Lambda(lambda t: keras.ops.log_softmax(t, axis=-1))(inp))
        calib = np.random.default_rng(1).uniform(lo, hi, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["log_softmax", shape, lo, hi], make)


def _inputs(shape, n_random: int = 6) -> np.ndarray:
    n, depth = int(np.prod(shape)), shape[-1]
    rng = np.random.default_rng(2)
    every = [np.resize(np.roll(np.arange(-128, 128), -k * n), n) for k in range(-(-256 // n))]
    peaks = []
    for _ in range(3):  # a row or two of low values under one or two high ones
        x = rng.integers(-128, -100, n)
        x[rng.integers(0, depth)::depth] = rng.integers(100, 128)
        peaks.append(x)
    flat = [np.full(n, v) for v in (-128, 0, 127)]
    rand = [rng.integers(-128, 128, n) for _ in range(n_random)]
    return np.stack(every + peaks + flat + rand).astype(np.int8).reshape(-1, *shape)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_log_softmax_bit_exact_with_tflm(case):
    tflite = log_softmax_tflite(*case)
    g = parse_tflite(tflite)
    assert [op.opcode for op in g.operators] == ["LOG_SOFTMAX"], [op.opcode for op in g.operators]
    x = _inputs(tuple(g.input_tensors[0].shape))
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


def test_log_softmax_is_supported_and_runs_in_place():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.plan import plan_model

    assert "LOG_SOFTMAX" in SUPPORTED_OPS
    g = parse_tflite(log_softmax_tflite(*CASES[1]))
    op = g.operators[0]
    call = lower(g, op)
    check_call(call)
    p = dict(call.params)
    assert call.function == "tq_log_softmax_s8" and call.overwrites == (op.inputs[0],)
    assert (p["rows"], p["depth"]) == (4, 10) and p["reverse_shift"] <= 0 and p["diff_min"] < 0
    assert any(c.function == "tq_log_softmax_s8" for c in plan_model(g).calls)


def test_log_softmax_refuses_an_output_quantization_tflm_refuses():
    """TFLM's Prepare requires the output scale 16/256 and zero point 127; so does the lowering."""
    from hostile import edit

    from tinyq.compile.ops import lower

    def fn(m, sg):
        q = sg.tensors[sg.operators[0].outputs[0]].quantization
        q.scale = np.array([0.1], np.float32)

    g = parse_tflite(edit(log_softmax_tflite(*CASES[0]), fn))
    with pytest.raises(UnsupportedModelError, match="LOG_SOFTMAX.*16/256"):
        lower(g, g.operators[0])


def small_model_tflite() -> bytes:
    """A conv, HARD_SWISH, ABS, a dense layer and LOG_SOFTMAX: the ops of tq_lut_s8 and tq_log_softmax_s8 that
    TFLM runs in int8, between the kernels every model uses (an odd-sized activation for the table's tail)."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input((9, 9, 3))
        x = keras.layers.Conv2D(5, 3)(inp)                                   # 7 x 7 x 5 = 245 bytes
        x = keras.layers.Activation("hard_swish")(x)
        x = keras.layers.Lambda(keras.ops.abs)(x)                            # hard_swish dips below 0
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(12)(x)
        out = keras.layers.Lambda(lambda t: keras.ops.log_softmax(t, axis=-1))(x)
        m = keras.Model(inp, out)
        rng = np.random.default_rng(0)
        for w in m.weights:
            w.assign(rng.normal(0, 0.5, w.shape).astype(np.float32))
        return quantize_keras(m, rng.normal(size=(32, 9, 9, 3)).astype(np.float32))

    return cached_tflite(["act-qemu-model", 2], make)


@pytest.mark.emulator
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm or arm-none-eabi-gcc not installed")
def test_conv_hard_swish_abs_log_softmax_in_qemu_bit_exact(tmp_path):
    from tinyq.pipeline import run_model_on

    tflite = small_model_tflite()
    g = parse_tflite(tflite)
    ops = [op.opcode for op in g.operators]
    assert {"CONV_2D", "HARD_SWISH", "ABS", "LOG_SOFTMAX"} <= set(ops), ops
    t = g.input_tensors[0]
    x = np.clip(np.round(np.random.default_rng(5).normal(size=(3, *t.shape)) / t.quant.scale[0]) + t.quant.zero_point[0],
                -128, 127).astype(np.int8)
    m, plan, _ = run_model_on(tflite, "qemu", x, tmp_path)
    assert {"tq_lut_s8", "tq_log_softmax_s8"} <= {c.function for c in plan.calls}
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
