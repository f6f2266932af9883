"""LEAKY_RELU (tinyq/compile/ops/kernels/leaky_relu.py, firmware/kernels/tq_leaky_relu.c) bit-exact with TFLM.

One-layer Keras models converted to full int8, with slopes below and above 1 and an
input scale that puts the zero point at either end; the generated C (host gcc) must give the bytes
tflite_micro gives, on every int8 input value and on random tensors.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

CASES = [dict(shape=(4, 4, 16), slope=0.2, lo=-1.0), dict(shape=(3, 5, 7), slope=0.01, lo=-4.0),
         dict(shape=(256,), slope=1.7, lo=-2.0), dict(shape=(2, 3, 8), slope=0.3, lo=-0.05),
         dict(shape=(8, 8), slope=0.5, lo=-3.0)]


def leaky_tflite(shape, slope, lo) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        m = keras.Model(inp, keras.layers.LeakyReLU(negative_slope=slope)(inp))
        calib = np.random.default_rng(1).uniform(lo, 3.0, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["leaky_relu", shape, slope, lo], make)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['slope']}-{c['lo']}" for c in CASES])
def test_leaky_relu_bit_exact_with_tflm(case):
    tflite = leaky_tflite(**case)
    g = parse_tflite(tflite)
    assert "LEAKY_RELU" in {op.opcode for op in g.operators}, [op.opcode for op in g.operators]
    shape = g.input_tensors[0].shape
    n = int(np.prod(shape))
    # Every int8 value (tiled over the tensor), then random tensors.
    every = np.resize(np.arange(-128, 128, dtype=np.int8), n).reshape(shape)
    x = np.concatenate([every[None], np.random.default_rng(2).integers(-128, 128, (7, *shape)).astype(np.int8)])
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


def test_leaky_relu_is_supported_and_runs_in_place():
    from tinyq.compile.plan import plan_model
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call

    assert "LEAKY_RELU" in SUPPORTED_OPS
    g = parse_tflite(leaky_tflite(**CASES[0]))
    op = next(op for op in g.operators if op.opcode == "LEAKY_RELU")
    call = lower(g, op)
    check_call(call)
    assert call.function == "tq_leaky_relu_s8" and call.overwrites == (op.inputs[0],)
    assert any(c.function == "tq_leaky_relu_s8" for c in plan_model(g).calls)
