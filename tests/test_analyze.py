"""The compatibility gate and `tinyq inspect`."""

import hashlib
import inspect
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS, cached_tflite
from tinyq.compile.analyze import analyze, check_compatibility
from tinyq.cli import cli
from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite


def _digits(mode: str) -> bytes:
    from tinyq.model.quantize import quantize_keras

    calib = np.load(DIGITS / "calib.npy")[:50]
    model_hash = hashlib.sha256((DIGITS / "model.keras").read_bytes()).hexdigest()
    return cached_tflite(["digits-mode", mode, model_hash],
                         lambda: quantize_keras(DIGITS / "model.keras", calib, mode=mode))


def _keras_model(kind: str) -> bytes:
    import keras

    from tinyq.model.quantize import quantize_keras

    def make():
        keras.utils.set_random_seed(3)
        inp = keras.Input((8, 8, 2))
        x = keras.layers.Conv2D(4, 3, padding="same")(inp)
        if kind == "sin":
            x = keras.layers.Lambda(keras.ops.sin)(x)
        elif kind == "upsample":
            x = keras.layers.UpSampling2D(2)(x)
        m = keras.Model(inp, x)
        return quantize_keras(m, np.random.default_rng(0).normal(size=(20, 8, 8, 2)).astype(np.float32))

    return cached_tflite(["gate-model", kind, inspect.getsource(_keras_model)], make)


def test_digits_passes_the_gate(digits_tflite):
    a = analyze(parse_tflite(digits_tflite))
    assert a.issues == ()
    assert a.macs == 774_784
    assert a.op_counts["CONV_2D"] == 3


def test_hybrid_model_is_rejected_with_the_reason():
    with pytest.raises(UnsupportedModelError) as e:
        analyze(parse_tflite(_digits("dynamic")))
    assert "hybrid" in e.value.message
    assert "--mode int8" in e.value.hint


def test_float16_model_is_rejected():
    issues = check_compatibility(parse_tflite(_digits("float16")))
    assert any("float16" in str(i) for i in issues)


def test_float_op_inside_an_int8_model_is_named():
    # The converter leaves SIN in float between a DEQUANTIZE and a QUANTIZE: one issue, naming the op and why.
    issues = check_compatibility(parse_tflite(_keras_model("sin")))
    assert [i.opcode for i in issues] == ["SIN"], issues
    assert "left in float by TensorFlow's int8 converter" in issues[0].problem


def test_unsupported_int8_op_is_named_with_the_supported_list(monkeypatch):
    import tinyq.compile.ops as ops

    # Keras 3 UpSampling2D converts to RESHAPE + TILE; tinyq runs TILE since #28, so it is taken out here.
    monkeypatch.setattr(ops, "SUPPORTED_OPS", ops.SUPPORTED_OPS - {"TILE"})
    issues = check_compatibility(parse_tflite(_keras_model("upsample")))
    bad = [i for i in issues if i.opcode == "TILE"]
    assert bad and "not supported" in bad[0].problem and "CONV_2D" in bad[0].fix


def test_inspect_json_and_plot(tmp_path, digits_tflite):
    model = tmp_path / "m.tflite"
    model.write_bytes(digits_tflite)
    png = tmp_path / "h.png"
    r = CliRunner().invoke(cli, ["inspect", str(model), "--json", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["compatible"] and d["macs"] == 774_784
    assert [l["op"] for l in d["layers"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    conv_w = next(t for t in d["tensors"] if t["constant"] and t["dtype"] == "INT8")
    assert conv_w["per_channel"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_inspect_names_the_kernels_build_picks_for_a_board(tmp_path, zoo):
    """With --board, the kernels of the weights' layout `build` picks for that board's flash: ResNet-8's
    first residual block by Winograd F(2, 3), in a row band; without, those of int8 weights."""
    model = tmp_path / "ic.tflite"
    model.write_bytes(zoo("ic_resnet8"))
    kernels = {}
    for board in ("nano33", None):
        r = CliRunner().invoke(cli, ["inspect", str(model), "--json"] + (["--board", board] if board else []))
        assert r.exit_code == 0, r.output
        kernels[board] = [l["kernel"] for l in json.loads(r.output)["layers"]]
    assert "tq_conv2d_s8 (Winograd F(2,3)) (row band)" in kernels["nano33"]
    assert not any("Winograd" in k for k in kernels[None] if k)


def test_inspect_lists_issues_of_a_hybrid_model(tmp_path):
    model = tmp_path / "hybrid.tflite"
    model.write_bytes(_digits("dynamic"))
    r = CliRunner().invoke(cli, ["inspect", str(model)])
    assert r.exit_code == 0
    assert "cannot run on tinyq's int8 runtime" in r.output and "hybrid" in r.output
