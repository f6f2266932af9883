"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR, int8: TFLM's kernels (reference_ops::ResizeNearestNeighbor,
reference_ops::ResizeBilinearInteger), every source row and column computed here, on the host.

Both ops map each output row to input rows and each output column to input columns the same way for
every pixel, so the lowering computes those maps once, exactly as TFLM's loops do (nearest: float32
arithmetic; bilinear: TFLM's integer 10-bit fractions), and the kernels (firmware/kernels/tq_resize.c)
only gather, or blend four pixels with the integer weights. The output's quantization is never read:
TFLM moves (nearest) or blends (bilinear) the raw int8 values.
"""

from __future__ import annotations

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator, Tensor
from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import tflite_round

NEAREST = struct(Struct("tq_resize_nn_params_t", (
    F("uint16_t", "batches, out_h, out_w"),
    F("uint16_t", "c", "channels: bytes a pixel"),
    F("uint32_t", "in_batch", "bytes of one input image"),
    F("const uint32_t", "*rows", "out_h: the input row's byte offset of each output row"),
    F("const uint32_t", "*cols", "out_w: the input pixel's byte offset (in its row) of each output column"),
), doc="RESIZE_NEAREST_NEIGHBOR: out[y][x] = in[rows[y] + cols[x]], a pixel (c bytes) at a time."))

BILINEAR = struct(Struct("tq_resize_bl_params_t", (
    F("uint16_t", "batches, out_h, out_w"),
    F("uint16_t", "c", "channels: bytes a pixel"),
    F("uint32_t", "in_batch", "bytes of one input image"),
    F("const int32_t", "*rows", "out_h triples: byte offsets of input rows y0, y1, and wy (y in 1/1024, less 1024 y0)"),
    F("const int32_t", "*cols", "out_w triples: byte offsets of input pixels x0, x1 in a row, and wx"),
), doc="RESIZE_BILINEAR (TFLM's ResizeBilinearInteger): the four pixels' sum weighted in 1/1024 per axis,\n"
       "then divided by 2^20 rounding half away from zero."))

NN_KERNEL = kernel(Kernel("tq_resize_nearest_s8", "resize", NEAREST.name, "const int8_t *in, int8_t *out",
                          opcodes=("RESIZE_NEAREST_NEIGHBOR",),
                          doc="RESIZE_NEAREST_NEIGHBOR, int8: a gather of whole pixels (an output row that repeats "
                              "the one before is copied whole)."))
BL_KERNEL = kernel(Kernel("tq_resize_bilinear_s8", "resize", BILINEAR.name, "const int8_t *in, int8_t *out",
                          opcodes=("RESIZE_BILINEAR",), doc="RESIZE_BILINEAR, int8, TFLM's integer arithmetic."))


def _shapes(graph: Graph, op: Operator) -> tuple[Tensor, Tensor, tuple[int, int, int, int], tuple[int, int]]:
    x, size, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise UnsupportedModelError(f"op {op.index} {op.opcode} of a rank-{len(x.shape)} input",
                                    hint="TFLite resizes 4-D NHWC tensors only")
    out_h, out_w = (int(v) for v in np.asarray(size.data).ravel()[:2])
    if (out_h, out_w) != tuple(y.shape[1:3]):
        raise ValueError(f"size {[out_h, out_w]} for an output of shape {list(y.shape)}")
    return x, y, tuple(int(d) for d in x.shape), (out_h, out_w)


def _flags(op: Operator) -> tuple[bool, bool]:
    align, half = bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))
    if align and half:  # TFLM's Prepare refuses the pair (bilinear); TFLite's converter never writes it
        raise UnsupportedModelError(f"op {op.index} {op.opcode} has both align_corners and half_pixel_centers",
                                    hint="TFLite takes one or the other: re-convert the model")
    return align, half


def nearest_map(in_size: int, out_size: int, align: bool, half: bool) -> list[int]:
    """TFLM's GetNearestNeighbor for every output index: its float32 arithmetic, step by step."""
    f32 = np.float32
    scale = (f32(in_size - 1) / f32(out_size - 1)) if align and out_size > 1 else f32(in_size) / f32(out_size)
    offset = f32(0.5) if half else f32(0.0)
    out = []
    for v in range(out_size):
        s = (f32(v) + offset) * scale
        i = tflite_round(float(s)) if align else int(np.floor(s))  # TfLiteRound: roundf, half away from zero
        i = min(i, in_size - 1)
        out.append(max(0, i) if half else i)
    return out


def bilinear_map(in_size: int, out_size: int, align: bool, half: bool) -> list[tuple[int, int, int]]:
    """(i0, i1, w) for every output index: TFLM's ComputeInterpolationValuesInteger (C's truncating
    division), w the position past i0 in 1/1024 (negative left of the first input with half-pixel centres)."""
    def cdiv(a: int, b: int) -> int:  # C's int division: toward zero
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b > 0) else -q

    scale = cdiv((1 << 10) * in_size + out_size // 2, out_size)
    if align and out_size > 1:
        scale = cdiv((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    out = []
    for v in range(out_size):
        s = v * scale + cdiv(scale, 2) - (1 << 9) if half else v * scale
        lo = max(cdiv(s, 1 << 10), 0)
        hi = min(cdiv(s + (1 << 10) - 1, 1 << 10), in_size - 1)
        out.append((lo, hi, s - (1 << 10) * lo))
    return out


@lowering("RESIZE_NEAREST_NEIGHBOR", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,)))
def lower_resize_nearest(graph: Graph, op: Operator) -> KernelCall:
    x, y, (n, in_h, in_w, c), (out_h, out_w) = _shapes(graph, op)
    align, half = _flags(op)
    rows = [r * in_w * c for r in nearest_map(in_h, out_h, align, half)]
    cols = [q * c for q in nearest_map(in_w, out_w, align, half)]
    return KernelCall(
        function=NN_KERNEL.symbol,
        params_type=NEAREST.name,
        params=(("batches", n), ("out_h", out_h), ("out_w", out_w), ("c", c), ("in_batch", in_h * in_w * c),
                ("rows", "@rows"), ("cols", "@cols")),
        args=(x.index, y.index),
        arrays=(ConstArray("rows", "uint32_t", tuple(rows)), ConstArray("cols", "uint32_t", tuple(cols))),
        consumes=(op.inputs[1],),
    )


@lowering("RESIZE_BILINEAR", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,)))
def lower_resize_bilinear(graph: Graph, op: Operator) -> KernelCall:
    x, y, (n, in_h, in_w, c), (out_h, out_w) = _shapes(graph, op)
    align, half = _flags(op)
    ys, xs = bilinear_map(in_h, out_h, align, half), bilinear_map(in_w, out_w, align, half)
    for axis, m, size in (("height", ys, in_h), ("width", xs, in_w)):
        if any(lo >= size for lo, _, _ in m):
            # TFLM's rounded 1/1024 step overshoots the input (a resize of 1 to thousands): it reads past the
            # input there, which no kernel can reproduce.
            raise UnsupportedModelError(f"op {op.index} RESIZE_BILINEAR from {size} to {len(m)} along the {axis}: "
                                        "TFLM's integer kernel reads past the input there",
                                        hint="resize in two steps, or by a smaller factor")
    rows = tuple(v for lo, hi, w in ys for v in (lo * in_w * c, hi * in_w * c, w))
    cols = tuple(v for lo, hi, w in xs for v in (lo * c, hi * c, w))
    return KernelCall(
        function=BL_KERNEL.symbol,
        params_type=BILINEAR.name,
        params=(("batches", n), ("out_h", out_h), ("out_w", out_w), ("c", c), ("in_batch", in_h * in_w * c),
                ("rows", "@rows"), ("cols", "@cols")),
        args=(x.index, y.index),
        arrays=(ConstArray("rows", "int32_t", rows), ConstArray("cols", "int32_t", cols)),
        consumes=(op.inputs[1],),
    )
