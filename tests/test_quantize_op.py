"""QUANTIZE int8 -> int8 (a requantization, as a table: tq_lut_s8), bit-exact with TFLM.

The converter emits it where a tensor must change scale (before a CONCATENATION whose inputs TFLM wants in one
scale, at an int8 output given another scale); TensorFlow gives no Keras layer that reliably makes one, so the
one-op models are written with the flatbuffer object API. Every int8 value goes through each, over ratios of
the scales below and above one, far from it, and zero points at both ends.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host


def _quant(scale: float, zp: int):
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def quantize_tflite(shape, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> bytes:
    """A model of one QUANTIZE from int8 (in_scale, in_zp) to int8 (out_scale, out_zp)."""
    m = schema.ModelT()
    m.version, m.description = 3, "tinyq QUANTIZE test"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
    code.version = 2
    m.operatorCodes, m.buffers = [code], [schema.BufferT(), schema.BufferT(), schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []
    for k, (name, q) in enumerate((("input", _quant(in_scale, in_zp)), ("output", _quant(out_scale, out_zp)))):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.quantization, t.buffer = name, list(shape), schema.TensorType.INT8, q, k + 1
        sg.tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg.operators, sg.inputs, sg.outputs = [op], [0], [1]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


#: (input scale, zero point, output scale, zero point)
CASES = [
    (0.05, 0, 0.1, 0),          # halve
    (0.1, -3, 0.05, 7),         # double, saturating
    (0.0235, -1, 0.0705, -128),  # a third, the zero point at the low end
    (0.02, 127, 0.021, -20),    # nearly one
    (0.5, 10, 0.5, -10),        # same scale, zero point moved
    (1e-3, 0, 0.9, 0),          # tiny ratio: almost everything to the zero point
    (0.9, 0, 1e-3, 5),          # huge ratio: everything saturates but the zero point
]


@pytest.mark.parametrize("case", CASES, ids=[f"{a}:{b}->{c}:{d}" for a, b, c, d in CASES])
def test_quantize_int8_to_int8_bit_exact_with_tflm(case):
    tflite = quantize_tflite((1, 4, 4, 16), *case)
    g = parse_tflite(tflite)
    assert [op.opcode for op in g.operators] == ["QUANTIZE"]
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 4, 4, 16)  # every int8 value
    x = np.concatenate([x, np.random.default_rng(0).integers(-128, 128, (3, 1, 4, 4, 16)).astype(np.int8)])
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))
