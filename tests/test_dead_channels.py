"""Constant channels leave the graph exactly (tinyq.compile.dead_channels): real TensorFlow conversions of models with
filters that quantize to nothing, the generated C against TFLM on the original .tflite, and official VWW."""

from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest

from conftest import MLPERF, cached_tflite
from tinyq.pipeline import run_on_host
from tinyq.compile.dead_channels import drop_constant_channels
from tinyq.graph import parse_tflite
from tinyq.compile.plan import PlanOptions, plan_model
from tinyq.model.reference import TflmReference

#: Filters of the first 1x1 conv with zero weights: a negative bias (ReLU makes them 0, the output zero
#: point) and a positive one (a constant that is not the zero point). The second conv's last 8 filters are
#: dead at zero.
DEAD_AT_ZERO = (1, 4, 5, 9, 10, 12, 13, 15)
DEAD_ABOVE = (2, 7, 8, 11)
LAST_DEAD = tuple(range(8, 16))


def _model(padding: str, head: str):
    """8x8x8 -> 1x1 conv 16 (relu; the dead filters above) -> 3x3 depthwise (``padding``, relu) -> 1x1 conv
    16 (LAST_DEAD) -> ``head``: "fc" (6x6 average pool, flatten, dense 4), "fc_nobias"
    (the same dense layer without a bias) or "out" (the conv's output is the model's)."""
    import keras

    keras.utils.set_random_seed(5)
    L = keras.layers
    inp = keras.Input((8, 8, 8))
    pw1 = L.Conv2D(16, 1, activation="relu", bias_initializer="random_normal")
    x = pw1(inp)
    x = L.DepthwiseConv2D(3, padding=padding, activation="relu", bias_initializer="random_normal")(x)
    pw2 = L.Conv2D(16, 1, activation="relu", bias_initializer="random_normal")
    x = pw2(x)
    if head.startswith("fc"):
        x = L.Dense(4, use_bias=head == "fc", bias_initializer="random_normal")(
            L.Flatten()(L.AveragePooling2D(x.shape[1:3])(x)))
    m = keras.Model(inp, x)
    for layer, zero, above in ((pw1, DEAD_AT_ZERO, DEAD_ABOVE), (pw2, LAST_DEAD, ())):
        k, b = layer.get_weights()
        k[..., list(zero + above)] = 0.0
        b[list(zero)] = -1.0
        b[list(above)] = 0.5
        layer.set_weights([k, b])
    return m


def _tflite(padding: str, head: str) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        m = _model(padding, head)
        calib = np.random.default_rng(1).normal(size=(32, 8, 8, 8)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["dead", padding, head, inspect.getsource(_model)], make)


def _bit_exact(tflite: bytes) -> None:
    ref = TflmReference(tflite)
    x = np.random.default_rng(2).normal(0, 60, (20, 8, 8, 8)).clip(-128, 127).astype(np.int8)
    want = np.stack([ref.run(s) for s in x])
    for weights in ("int8", "int16"):
        got = run_on_host(tflite, x, weights=weights)
        np.testing.assert_array_equal(got, want)


def _tails(g, constants: bool = True) -> list[int]:
    """Each 1x1 conv's constant channels written, not computed (tq_conv_params_t.const_tail)."""
    return [dict(c.params).get("const_tail", 0) for c in plan_model(g, PlanOptions(weights="int16", constants=constants)).calls
            if c.function == "tq_conv2d_s8"]


def test_channels_at_the_zero_point_leave_through_a_padded_depthwise_into_the_next_conv():
    """A dead filter whose output is the zero point passes a SAME depthwise as its requantized bias (the
    pads read the zero point too) and goes into the next 1x1 conv's bias; one held at another value does
    not (the border pixels would see the pad): it moves last, where its conv writes it without computing
    it, as the last conv's dead filters, which feed the model's output. Fewer MACs, the same bytes as TFLM."""
    tflite = _tflite("same", "out")
    g = parse_tflite(tflite)
    g2, dropped = drop_constant_channels(g)
    (d,) = dropped
    assert d.channels == DEAD_AT_ZERO and d.of == 16
    conv1, dw, conv2 = (op for op in g2.operators if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert g2.tensors[conv1.outputs[0]].shape[-1] == g2.tensors[dw.outputs[0]].shape[-1] == 8
    assert g2.tensors[conv2.inputs[1]].shape == (16, 1, 1, 8)
    assert g2.tensors[conv2.outputs[0]].shape == g.tensors[conv2.outputs[0]].shape
    assert _tails(g) == [4, 8] and _tails(g, constants=False) == [0, 8]  # DEAD_ABOVE moved last; LAST_DEAD were
    assert plan_model(g).macs < plan_model(g, PlanOptions(constants=False)).macs
    _bit_exact(tflite)


@pytest.mark.parametrize("head", ["fc", "fc_nobias"])
def test_valid_depthwise_carries_any_constant_and_a_pool_carries_them_to_the_dense_layer(head):
    """With VALID padding every tap reads the constant, so the channel held above the zero point leaves
    too; the last conv's dead filters pass the average pool into the dense layer's bias (the converter
    folds the flatten away); a dense layer without one gets a bias of its own for them."""
    tflite = _tflite("valid", head)
    g = parse_tflite(tflite)
    g2, dropped = drop_constant_channels(g)
    first, last = dropped
    assert first.channels == tuple(sorted(DEAD_AT_ZERO + DEAD_ABOVE))
    assert last.channels == LAST_DEAD and len(last.tensors) == 2  # the conv's and the pool's outputs
    fc = next(op for op in g2.operators if op.opcode == "FULLY_CONNECTED")
    assert g2.tensors[fc.inputs[1]].shape == (4, 8)
    assert (next(op for op in g.operators if op.opcode == "FULLY_CONNECTED").inputs[2] >= 0) == (head == "fc")
    assert g2.tensors[fc.inputs[2]].data.shape == (4,)
    _bit_exact(tflite)


def test_a_model_without_constant_channels_is_left_as_it_is():
    from test_ops import op_tflite

    g = parse_tflite(op_tflite("conv", dict(h=6, w=7, c=8, filters=8, k=1, strides=1, dilation=1, padding="valid",
                                            act="relu6", bias=True)))
    assert drop_constant_channels(g) == (g, ())


@pytest.mark.skipif(not MLPERF.is_dir(), reason=f"{MLPERF} not present")
def test_official_vww_loses_808_constant_channels_and_a_third_of_its_macs():
    """Official VWW's last pointwise layers hold 971 constant channels; 808 can leave (the rest are held
    above the zero point before a padded depthwise layer, or kept for whole words). The host check of
    every build (and the QEMU tests of the official models) hold the outputs to TFLM's."""
    from tinyq.graph import load_tflite

    g = load_tflite(MLPERF / "vww_96_int8.tflite")
    g2, dropped = drop_constant_channels(g)
    assert sum(len(d.channels) for d in dropped) == 808
    assert all((d.of - len(d.channels)) % 4 == 0 for d in dropped)
    full, lean = plan_model(g, PlanOptions(constants=False)), plan_model(g)
    assert lean.macs < 0.67 * full.macs and lean.dropped_channels == dropped


@pytest.mark.emulator
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm or arm-none-eabi-gcc not installed")
def test_constant_tails_in_qemu(tmp_path):
    """The Cortex-M4 tile with its constant channels written after it, against TFLM on the original file."""
    from test_emulator import _run_in_qemu

    m, plan, _ = _run_in_qemu(_tflite("same", "out"), tmp_path, n=4, weights="int16")
    assert [dict(c.params).get("const_tail", 0) for c in plan.calls if c.function == "tq_conv2d_s8"] == [4, 8]
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"


def test_inspect_and_build_say_what_leaves(tmp_path):
    """`tinyq inspect --json` reports the constant channels the build will drop, and the MACs that run."""
    import json

    from click.testing import CliRunner

    from tinyq.cli import cli

    path = tmp_path / "dead.tflite"
    path.write_bytes(_tflite("same", "out"))
    r = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert r.exit_code == 0, r.output
    k = json.loads(r.output)["constant_channels"]
    assert (k["dropped"], k["of"], k["layers"]) == (len(DEAD_AT_ZERO), 16, 1)
    assert k["macs_run"] == plan_model(parse_tflite(path.read_bytes())).macs < json.loads(r.output)["macs"]
    assert "constant channels: 8 of 16 leave the graph" in CliRunner().invoke(cli, ["inspect", str(path)]).output
