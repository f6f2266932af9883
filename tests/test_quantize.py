"""The quantize stage on the digits example and on models it must refuse."""

import json

import numpy as np
import pytest

from conftest import DIGITS
from tinyq.errors import CalibrationError, QuantizationError
from tinyq.graph import parse_tflite
from tinyq.model.load import load_inputs
from tinyq.model.quantize import quantize, quantize_keras

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("test_quantize")


@pytest.fixture(scope="module")
def digits_q():
    return quantize(load_inputs(DIGITS / "model.keras", DIGITS / "calib.npy", DIGITS / "test.npz"))


def test_digits_int8_accuracy_and_size(digits_q):
    r = digits_q.report
    assert r.samples == 360
    assert r.float_accuracy > 0.9
    assert r.quant_accuracy >= r.float_accuracy - 0.02
    assert r.size_ratio >= 3.0


def test_digits_is_full_integer_with_batch_one(digits_q):
    g = parse_tflite(digits_q.tflite)
    assert g.input_tensors[0].dtype == "INT8" and g.output_tensors[0].dtype == "INT8"
    assert g.input_tensors[0].shape[0] == 1
    ops = {op.opcode for op in g.operators}
    # A free batch makes the converter emit these; tinyq fixes the batch to 1.
    assert not ops & {"SHAPE", "STRIDED_SLICE", "PACK"}
    conv = next(op for op in g.operators if op.opcode == "CONV_2D")
    assert g.tensors[conv.inputs[1]].quant.per_channel


def test_per_layer_error_covers_every_layer(digits_q):
    layers = digits_q.report.layers
    g = parse_tflite(digits_q.tflite)
    assert [l.op for l in layers] == [op.opcode for op in g.operators]
    assert all(l.sqnr_db > 20 and 0.99 < l.cosine <= 1.0 for l in layers)


def test_report_is_json(digits_q):
    d = json.loads(json.dumps(digits_q.report.to_dict()))
    assert d["size_ratio"] >= 3.0 and len(d["layers"]) == len(digits_q.report.layers)


@pytest.mark.parametrize("mode,in_dtype", [("float16", "FLOAT32"), ("dynamic", "FLOAT32"), ("int16x8", "FLOAT32")])
def test_host_comparison_modes(mode, in_dtype):
    calib = np.load(DIGITS / "calib.npy")[:50]
    g = parse_tflite(quantize_keras(DIGITS / "model.keras", calib, mode=mode))
    assert g.input_tensors[0].dtype == in_dtype


def test_wrong_calibration_shape():
    with pytest.raises(CalibrationError, match=r"\(8, 8, 1\)"):
        quantize_keras(DIGITS / "model.keras", np.zeros((10, 28, 28, 1), np.float32))


def test_op_that_cannot_be_quantized():
    import keras

    inp = keras.Input((16,))
    # erf has no TFLite builtin at all: the conversion must fail and name the op.
    out = keras.layers.Lambda(keras.ops.erf)(keras.layers.Dense(16)(inp))
    model = keras.Model(inp, out)
    with pytest.raises(QuantizationError, match="Erf") as e:
        quantize_keras(model, np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32))
    assert "\n" not in e.value.message and "Erf" in e.value.hint


def test_unknown_mode():
    with pytest.raises(QuantizationError, match="unknown mode"):
        quantize_keras(DIGITS / "model.keras", np.load(DIGITS / "calib.npy"), mode="int4")
