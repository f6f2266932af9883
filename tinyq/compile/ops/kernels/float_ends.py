"""QUANTIZE and DEQUANTIZE: int8 -> int8 requantization, and the float ends of an int8 model.

TensorFlow's converter without ``inference_input_type`` / ``inference_output_type`` gives an int8 model with
float32 input and output: a QUANTIZE (float -> int8) first and a DEQUANTIZE (int8 -> float) last. The device
takes and gives those floats as the model does (the Cortex-M4F has an FPU), converting them as the tflite_micro
interpreter does: q = zp + round-half-away(x / scale) with the division in float32 (a double division rounds
differently on some boundaries: tests/test_model_io.py), x = scale * (q - zp). The C is
firmware/kernels/tq_float_ends.c.
"""

from __future__ import annotations

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator
from tinyq.compile.ops import KernelCall, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.kernels.unary import lower_requant

PARAMS = struct(Struct("tq_float_end_params_t", (
    F("uint32_t", "size"),
    F("int32_t", "zero_point"),
    F("float", "scale", "the int8 tensor's scale (float32, as the model stores it)"),
), doc="QUANTIZE float -> int8 and DEQUANTIZE int8 -> float: the int8 side's scale and zero point."))

QUANTIZE = kernel(Kernel("tq_quantize_f32_s8", "float_ends", PARAMS.name, "const void *in, int8_t *out",
                         opcodes=("QUANTIZE",), doc="QUANTIZE float32 -> int8 (TFLM's AffineQuantize)."))
DEQUANTIZE = kernel(Kernel("tq_dequantize_s8_f32", "float_ends", PARAMS.name, "const int8_t *in, void *out",
                           opcodes=("DEQUANTIZE",), doc="DEQUANTIZE int8 -> float32 (TFLM's Dequantize)."))


def _float_end(graph: Graph, op: Operator, side: str) -> tuple:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    q = y if side == "quantize" else x
    if q.dtype != "INT8" or q.quant is None or len(q.quant.scale) != 1:
        raise UnsupportedModelError(f"op {op.index} {op.opcode} converts {x.dtype} to {y.dtype}",
                                    hint="tinyq runs QUANTIZE float32 -> int8 and int8 -> int8, DEQUANTIZE int8 -> float32")
    return x, y, q


@lowering("QUANTIZE")
def lower_quantize(graph: Graph, op: Operator) -> KernelCall:
    """int8 -> int8: a requantization (a table, tinyq.compile.ops.kernels.unary); float32 -> int8: the model's
    float input end."""
    if graph.tensors[op.inputs[0]].dtype == "INT8":
        return lower_requant(graph, op)
    x, y, q = _float_end(graph, op, "quantize")
    if x.dtype != "FLOAT32":
        raise UnsupportedModelError(f"op {op.index} QUANTIZE takes {x.dtype}", hint="tinyq quantizes float32 input")
    return KernelCall(QUANTIZE.symbol, PARAMS.name,
                      (("size", y.size), ("zero_point", q.quant.zero_point[0]), ("scale", _c_float(q.quant.scale[0]))),
                      (x.index, y.index))


@lowering("DEQUANTIZE")
def lower_dequantize(graph: Graph, op: Operator) -> KernelCall:
    """int8 -> float32: the model's float output end."""
    x, y, q = _float_end(graph, op, "dequantize")
    if y.dtype != "FLOAT32" or x.is_constant:
        raise UnsupportedModelError(f"op {op.index} DEQUANTIZE of {'a constant' if x.is_constant else x.dtype} to {y.dtype}",
                                    hint="tinyq runs DEQUANTIZE only at a model's float output end")
    return KernelCall(DEQUANTIZE.symbol, PARAMS.name,
                      (("size", y.size), ("zero_point", q.quant.zero_point[0]), ("scale", _c_float(q.quant.scale[0]))),
                      (x.index, y.index))


def _c_float(v: float) -> str:
    """A float32 as a C literal that reads back as the same float32 (9 significant digits)."""
    import numpy as np

    return f"{float(np.float32(v)):.9g}f"


#: Float ops tinyq runs between a DEQUANTIZE and a QUANTIZE, where TensorFlow's int8 converter leaves an op it has
#: no int8 kernel for in float (LayerNormalization's NEG): exact in float32, as TFLM computes them
#: (tinyq.compile.analyze.float_islands).
FLOAT_OPS = ("NEG",)

NEG = kernel(Kernel("tq_neg_f32", "float_ends", None, "uint32_t size, const void *in, void *out",
                    opcodes=("NEG",), doc="NEG float32 (inside a float island: tinyq.compile.analyze.float_islands)."))


@lowering("NEG")
def lower_neg(graph: Graph, op: Operator) -> KernelCall:
    """NEG where the converter left it in float, between a DEQUANTIZE and a QUANTIZE (LayerNormalization): the sign
    flipped, exact, as TFLM's float kernel. (An int8 NEG has no kernel in TFLM or TFLite.)"""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.dtype != "FLOAT32" or y.dtype != "FLOAT32":
        raise UnsupportedModelError(f"op {op.index} NEG of {x.dtype}", hint="tinyq runs NEG on float32 only, where "
                                    "TensorFlow's converter leaves it in float between int8 ops")
    return KernelCall(NEG.symbol, None, (), (x.index, y.index), lead_args=(f"{y.size}u",), overwrites=(x.index,))
