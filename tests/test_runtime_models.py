"""Whole models: tinyq's generated C, compiled for the host, against the real TFLM interpreter.

Every output byte of 100 inputs must be identical, and tinyq's arena must be no
larger than the arena TFLM reports for the same model.
"""

import numpy as np
import pytest

from tinyq.pipeline import run_on_host
from tinyq.graph import parse_tflite
from tinyq.compile.plan import plan_model
from tinyq.model.reference import TflmReference


def _inputs(g, n: int, seed: int) -> np.ndarray:
    """Inputs distributed like the calibration data (standard normal), quantized as the model expects."""
    t = g.input_tensors[0]
    x = np.random.default_rng(seed).normal(size=(n, *t.shape))
    return np.clip(np.round(x / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127).astype(np.int8)


def _check_bit_exact(tflite: bytes, n: int = 100, seed: int = 0, inputs: np.ndarray | None = None):
    g = parse_tflite(tflite)
    plan = plan_model(g)
    ref = TflmReference(tflite)
    x = _inputs(g, n, seed) if inputs is None else inputs
    want = np.stack([ref.run(s) for s in x])
    got = run_on_host(tflite, x, plan=plan)
    mismatched = int(np.sum(np.any(got.reshape(n, -1) != want.reshape(n, -1), axis=1)))
    assert mismatched == 0, f"{mismatched} of {n} inputs differ from TFLM"
    assert plan.activation_peak_bytes <= ref.arena.head  # activations: never more than TFLM's planner
    assert plan.ram_bytes <= ref.arena.total  # with each op's scratch: within TFLM's whole arena
    return plan, ref, got


def test_digits_bit_exact_and_arena(digits_tflite):
    from conftest import DIGITS

    g = parse_tflite(digits_tflite)
    t = g.input_tensors[0]
    x = np.load(DIGITS / "test.npz")["x"][:100]
    q = np.clip(np.round(x / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127).astype(np.int8)
    plan, ref, got = _check_bit_exact(digits_tflite, inputs=q.reshape(100, *t.shape))
    assert plan.arena_bytes == plan.peak_bytes  # greedy reaches the lower bound on this chain
    # Real digits give varied outputs, and the device's arg-max is the right digit.
    y = np.load(DIGITS / "test.npz")["y"][:100]
    assert np.mean(got.reshape(100, -1).argmax(1) == y) > 0.9


@pytest.mark.parametrize("name", ["kws_ds_cnn", "ic_resnet8", "ad_fc_autoencoder",
                                  pytest.param("vww_mobilenet_v1_025", marks=pytest.mark.slow)])
def test_mlperf_architecture_bit_exact(zoo, name):
    tflite = zoo(name)
    ops = {op.opcode for op in parse_tflite(tflite).operators}
    if name == "ic_resnet8":
        assert "ADD" in ops  # the residual connections are really exercised
    if name == "kws_ds_cnn":
        assert "DEPTHWISE_CONV_2D" in ops
    _check_bit_exact(tflite, n=100 if name != "vww_mobilenet_v1_025" else 30)
