"""Reductions, int8: REDUCE_MAX, REDUCE_MIN, SUM, ARG_MAX, ARG_MIN and L2_NORMALIZATION, as TFLM computes them.

MEAN keeps its lowering (tinyq.compile.ops.lower_ops.lower_mean, tq_mean_s8): it takes any axes of a tensor
of rank up to 4, negative or repeated, with or without keep_dims (which changes the output's shape, not
its bytes). SUM is the same kernel without 1/count in the multiplier: TFLM's QuantizedMeanOrSum with
compute_sum. REDUCE_MAX / REDUCE_MIN (TFLM's ReduceGeneric, which requires the output's quantization to be
the input's) and ARG_MAX / ARG_MIN (reference_ops::ArgMinMax: the first index of the extreme value, int32 or
int64 indices) run in firmware/kernels/tq_reduce.c, with L2_NORMALIZATION (reference_integer_ops::
L2Normalization: the inverse square root of each row's sum of squares by gemmlowp's Newton-Raphson, at run time).
"""

from __future__ import annotations

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator, Tensor
from tinyq.compile.ops import KernelCall, Operands, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.lower_ops import mean_call
from tinyq.compile.ops.quant import quantize_multiplier

MINMAX = struct(Struct("tq_reduce_params_t", (
    F("uint16_t", "in[4]", "input shape (4-D)"),
    F("uint32_t", "out_stride[4]", "output index step per input axis, 0 on reduced axes"),
    F("uint32_t", "outputs"),
    F("uint8_t", "is_max", "1: REDUCE_MAX, 0: REDUCE_MIN"),
), doc="REDUCE_MAX / REDUCE_MIN (TFLM's ReduceGeneric): the output's quantization is the input's, so the\n"
       "extreme int8 value is the output byte."))

ARG = struct(Struct("tq_arg_params_t", (
    F("uint32_t", "outer, axis, inner", "the input as [outer][axis][inner]"),
    F("uint8_t", "is_max", "1: ARG_MAX, 0: ARG_MIN"),
    F("uint8_t", "wide", "1: int64 indices, 0: int32"),
), doc="ARG_MAX / ARG_MIN (TFLM's ArgMinMax): out[o][i] is the first index along the axis of the largest\n"
       "(smallest) in[o][.][i]."))

L2 = struct(Struct("tq_l2norm_params_t", (
    F("uint32_t", "outer, depth", "rows, and elements a row (the last axis)"),
    F("int32_t", "input_zp"),
), doc="L2_NORMALIZATION (TFLM's reference_integer_ops::L2Normalization): each row times 1/sqrt(its sum of\n"
       "squares) in Q0.7, whatever the output's quantization says (TFLite's is 1/128, zero point 0)."))

MINMAX_KERNEL = kernel(Kernel("tq_reduce_minmax_s8", "reduce", MINMAX.name, "const int8_t *in, int8_t *out",
                              opcodes=("REDUCE_MAX", "REDUCE_MIN"), doc="REDUCE_MAX / REDUCE_MIN, int8."))
ARG_KERNEL = kernel(Kernel("tq_arg_minmax_s8", "reduce", ARG.name, "const int8_t *in, void *out",
                           opcodes=("ARG_MAX", "ARG_MIN"),
                           doc="ARG_MAX / ARG_MIN of int8: int32 or int64 indices (out is int32_t or int64_t)."))
L2_KERNEL = kernel(Kernel("tq_l2norm_s8", "reduce", L2.name, "const int8_t *in, int8_t *out",
                          opcodes=("L2_NORMALIZATION",), doc="L2_NORMALIZATION, int8 (out may be in)."))


def _shape4(shape) -> tuple[int, ...]:
    return (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)


def _c_array(values) -> str:
    return "{" + ", ".join(f"{int(v)}u" for v in values) + "}"


def reduced_axes(op: Operator, x: Tensor, axes: Tensor) -> set[int]:
    """TFLM's ResolveAxis: each axis (negative counts from the end) once, as an axis of ``x`` padded to 4-D."""
    rank = len(x.shape)
    if rank > 4:
        raise UnsupportedModelError(f"op {op.index} {op.opcode} of a rank-{rank} tensor",
                                    hint="reduce over fixed axes of a tensor of at most 4 dimensions (NHWC)")
    if any(d > 0xFFFF for d in x.shape):
        raise UnsupportedModelError(f"op {op.index} {op.opcode} of shape {list(x.shape)}: an axis over 65,535",
                                    hint="reshape the tensor so that no axis is that long")
    return {int(a) % rank + 4 - rank for a in np.asarray(axes.data).ravel()}


def reduce_geometry(shape4: tuple[int, ...], axes: set[int]) -> tuple[tuple[int, ...], int]:
    """The output index step of each input axis (0 on reduced ones) and the inputs each output sums."""
    strides, step = [0] * 4, 1
    for d in reversed([d for d in range(4) if d not in axes]):
        strides[d] = step
        step *= shape4[d]
    return tuple(strides), int(np.prod([shape4[d] for d in axes], dtype=np.int64))


@lowering("REDUCE_MAX", "REDUCE_MIN", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,)))
def lower_reduce_minmax(graph: Graph, op: Operator) -> KernelCall:
    x, axes_t, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    if (float(np.float32(x.quant.scale[0])) != float(np.float32(y.quant.scale[0]))
            or x.quant.zero_point[0] != y.quant.zero_point[0]):
        # TFLM's EvalMinMaxHelper refuses it (TF_LITE_ENSURE_EQ): the converter always gives both one scale
        raise UnsupportedModelError(f"op {op.index} {op.opcode} changes the quantization (TFLM's kernel requires "
                                    "the output's scale and zero point to be the input's)",
                                    hint="re-convert the model with TensorFlow's converter")
    shape = _shape4(x.shape)
    strides, _ = reduce_geometry(shape, reduced_axes(op, x, axes_t))
    return KernelCall(
        function=MINMAX_KERNEL.symbol,
        params_type=MINMAX.name,
        params=(("in", _c_array(shape)), ("out_stride", _c_array(strides)), ("outputs", y.size),
                ("is_max", int(op.opcode == "REDUCE_MAX"))),
        args=(x.index, y.index),
    )


@lowering("SUM", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,)))
def lower_sum(graph: Graph, op: Operator) -> KernelCall:
    """TFLM's QuantizedMeanOrSum with compute_sum: int32 sums less zp * count, one requantization by
    in_scale / out_scale (QuantizeMultiplier of the double ratio), through MEAN's kernel."""
    x, axes_t, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    shape = _shape4(x.shape)
    strides, count = reduce_geometry(shape, reduced_axes(op, x, axes_t))
    mult, shift = quantize_multiplier(float(x.quant.scale[0]) / float(y.quant.scale[0]))
    return mean_call(x, y, shape, strides, count, mult, shift)


@lowering("ARG_MAX", "ARG_MIN", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), index_output=True))
def lower_arg_minmax(graph: Graph, op: Operator) -> KernelCall:
    x, axis_t, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    if y.dtype not in ("INT32", "INT64"):
        raise UnsupportedModelError(f"op {op.index} {op.opcode} with {y.dtype} indices",
                                    hint="take the indices as int32 or int64 (output_type)")
    rank = len(x.shape)
    axis = int(np.asarray(axis_t.data).ravel()[0])
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} of a rank-{rank} input")
    axis %= rank
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    return KernelCall(
        function=ARG_KERNEL.symbol,
        params_type=ARG.name,
        params=(("outer", outer), ("axis", int(x.shape[axis])), ("inner", inner),
                ("is_max", int(op.opcode == "ARG_MAX")), ("wide", int(y.dtype == "INT64"))),
        args=(x.index, y.index),
    )


@lowering("L2_NORMALIZATION")
def lower_l2norm(graph: Graph, op: Operator) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    act = op.options.get("fused_activation_function", "NONE")
    if act != "NONE":  # TFLM's L2NormPrepare refuses any
        raise UnsupportedModelError(f"op {op.index} L2_NORMALIZATION with a fused {act}",
                                    hint="TFLite's int8 L2_NORMALIZATION takes no fused activation")
    if len(x.shape) > 4:
        raise UnsupportedModelError(f"op {op.index} L2_NORMALIZATION of a rank-{len(x.shape)} tensor",
                                    hint="normalize a tensor of at most 4 dimensions")
    depth = int(x.shape[-1]) if x.shape else 1
    return KernelCall(
        function=L2_KERNEL.symbol,
        params_type=L2.name,
        params=(("outer", x.size // max(depth, 1)), ("depth", depth), ("input_zp", x.quant.zero_point[0])),
        args=(x.index, y.index),
        overwrites=(x.index,),
    )
