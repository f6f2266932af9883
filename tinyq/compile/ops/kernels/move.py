"""Data movement, int8: ops that copy bytes and compute nothing (STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, UNPACK,
PACK, TRANSPOSE, GATHER, EXPAND_DIMS, SQUEEZE, DEPTH_TO_SPACE, SPACE_TO_DEPTH, BATCH_TO_SPACE_ND,
SPACE_TO_BATCH_ND, TILE, MIRROR_PAD, PAD, PADV2).

Every one of them is a list of *views*: an N-D strided copy (up to 6 axes; per axis an input stride in bytes,
0 for a repeat or negative for a reversal, an output stride, and a start in each), computed here on the host.
The kernel (firmware/kernels/tq_move.c) walks a view with an odometer and copies its innermost axis as one
block of words where both sides are contiguous there; the host merges adjacent axes first so that this block
is as long as the layout allows (a slice of whole rows is one copy a row, a split along the first axis one
copy an output). tq_move_s8 runs one view (its params are the view), tq_move_n_s8 several, each into one of
several outputs (SPLIT, UNPACK), optionally after filling the first output with a constant (the padding ops).

TFLite gives these ops the input's quantization on their outputs (its converter does; TFLM's kernels copy
bytes without looking): a file where they differ is refused rather than run as bytes that mean something else.
"""

from __future__ import annotations

import itertools

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator, Tensor
from tinyq.compile.ops import MANY, ConstArray, KernelCall, Operands, lowering
from tinyq.compile.ops.kernel import ShapeError, F, Kernel, Struct, kernel, struct

#: Axes a view has (after merging); more are split into several views.
MAX_DIMS = 6

VIEW = struct(Struct("tq_move_view_t", (
    F("int32_t", "dst", "tq_move_n_s8: the output it writes (outs[dst])"),
    F("int32_t", "in_start, out_start", "bytes from the tensor's start to the view's first element"),
    F("int32_t", "dims[6]", "the view's axes, outermost first (1 on unused outer axes)"),
    F("int32_t", "in_stride[6]", "input bytes from one element to the next along each axis (0: a repeat, < 0: reversed)"),
    F("int32_t", "out_stride[6]", "output bytes from one element to the next along each axis"),
), doc="One N-D strided copy: out[out_start + sum(i_k * out_stride[k])] = in[in_start + sum(i_k * in_stride[k])]\n"
       "for every index (i_0 .. i_5) below dims. Where the innermost strides are both 1, that axis is copied as one\n"
       "block (words). Every field is a word: tq_move_n_s8 reads an array of views from int32 words."))

MULTI = struct(Struct("tq_move_n_params_t", (
    F("uint32_t", "n", "views"),
    F("const int32_t", "*views", "n tq_move_view_t, laid out as words"),
    F("uint32_t", "fill_n", "byte ranges of outs[0] set to fill_value before the views run (0: none)"),
    F("const uint32_t", "*fill", "fill_n (offset, length) pairs: the bytes no view writes"),
    F("int32_t", "fill_value"),
), doc="Several views of one input, each into one of the outputs (SPLIT, UNPACK), or into one output after\n"
       "it is filled with a constant (SPACE_TO_BATCH_ND, PAD, PADV2)."))

_OPCODES = ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK", "TRANSPOSE", "GATHER", "DEPTH_TO_SPACE",
            "SPACE_TO_DEPTH", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE", "MIRROR_PAD", "PAD", "PADV2")

MOVE = kernel(Kernel("tq_move_s8", "move", VIEW.name, "const int8_t *in, int8_t *out", opcodes=_OPCODES,
                     doc="One strided view of in copied to out (out never overlaps in)."))
MOVE_N = kernel(Kernel("tq_move_n_s8", "move", MULTI.name, "const int8_t *in, int8_t *const *outs", opcodes=_OPCODES,
                       doc="Several strided views of in, each to outs[view.dst], after the optional fill of outs[0]."))


# ---- views ----

def contiguous_strides(shape) -> tuple[int, ...]:
    """Element (= byte, int8) strides of a row-major tensor of ``shape``."""
    out, step = [], 1
    for d in reversed(tuple(shape)):
        out.append(step)
        step *= int(d)
    return tuple(reversed(out))


def merge_axes(dims, in_stride, out_stride) -> list[tuple[int, int, int]]:
    """(dim, in_stride, out_stride) of each axis, size-1 axes dropped and each axis merged into the one inside
    it where both strides continue it (so the innermost contiguous block is as long as it can be)."""
    out: list[list[int]] = []
    for d, si, so in zip(dims, in_stride, out_stride):
        d = int(d)
        if d == 1:
            continue
        if out and out[-1][1] == si * d and out[-1][2] == so * d:
            out[-1] = [out[-1][0] * d, si, so]
        else:
            out.append([d, int(si), int(so)])
    return [tuple(a) for a in out]


def views(dims, in_stride, out_stride, in_start: int = 0, out_start: int = 0, dst: int = 0) -> list[tuple]:
    """The copy of ``dims`` elements (strides and starts in bytes) as views of at most MAX_DIMS axes, each a
    tuple (dst, in_start, out_start, dims, in_stride, out_stride) padded to MAX_DIMS axes at the outside.
    An empty copy (a dim of 0) gives no view."""
    if any(int(d) == 0 for d in dims):
        return []
    axes = merge_axes(dims, in_stride, out_stride) or [(1, 1, 1)]
    if len(axes) > 1 and axes[-1][1:] != (1, 1) and axes[-1][0] < 8:
        # No run to copy by words, and a short innermost axis (a gather of a few channels): the longest axis
        # innermost instead, so the kernel's inner loop, not its odometer, walks most of the bytes. The order
        # in which the bytes are copied changes, not where they go (input and output never overlap).
        k = max(range(len(axes)), key=lambda a: axes[a][0])
        axes = axes[:k] + axes[k + 1:] + [axes[k]]
    outer, inner = axes[:-MAX_DIMS], axes[-MAX_DIMS:]
    pad = [(1, 0, 0)] * (MAX_DIMS - len(inner))
    d, si, so = zip(*(pad + inner))
    out = []
    for idx in itertools.product(*(range(a[0]) for a in outer)):
        i0 = in_start + sum(i * a[1] for i, a in zip(idx, outer))
        o0 = out_start + sum(i * a[2] for i, a in zip(idx, outer))
        out.append((dst, i0, o0, d, si, so))
    return out


def _c_ints(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _view_words(v: tuple) -> list[int]:
    dst, i0, o0, d, si, so = v
    return [dst, i0, o0, *d, *si, *so]


def move_call(x: Tensor, outs: list[Tensor], vs: list[tuple], fill: int | None = None) -> KernelCall:
    """The call running views ``vs`` of ``x`` into ``outs``: tq_move_s8 for one view into one output that
    fills it, else tq_move_n_s8 (``fill``: outs[0] is first set to this value)."""
    if len(outs) == 1 and len(vs) == 1 and fill is None:
        dst, i0, o0, d, si, so = vs[0]
        return KernelCall(function=MOVE.symbol, params_type=VIEW.name,
                          params=(("dst", 0), ("in_start", i0), ("out_start", o0), ("dims", _c_ints(d)),
                                  ("in_stride", _c_ints(si)), ("out_stride", _c_ints(so))),
                          args=(x.index, outs[0].index))
    words = tuple(w for v in vs for w in _view_words(v))
    ranges = fill_ranges(outs[0].nbytes, [v for v in vs if v[0] == 0]) if fill is not None else []
    arrays = (ConstArray("views", "int32_t", words),) if vs else ()
    if ranges:
        arrays += (ConstArray("fill", "uint32_t", tuple(w for r in ranges for w in r)),)
    return KernelCall(function=MOVE_N.symbol, params_type=MULTI.name,
                      params=(("n", len(vs)), ("views", "@views" if vs else "NULL"),
                              ("fill_n", len(ranges)), ("fill", "@fill" if ranges else "NULL"),
                              ("fill_value", 0 if fill is None else int(fill))),
                      args=(x.index, *(t.index for t in outs)),
                      arrays=arrays,
                      pack_outputs=True)


#: More gaps than this between the views' bytes, and the whole output is filled (the list would cost more
#: flash than the time it saves).
MAX_FILL_RANGES = 64


def fill_ranges(nbytes: int, vs: list[tuple]) -> list[tuple[int, int]]:
    """The (offset, length) ranges of an output of ``nbytes`` that views ``vs`` leave unwritten, which the
    padding ops fill; the whole output when they are more than MAX_FILL_RANGES (and nothing when none)."""
    covered = np.zeros(nbytes, bool)
    for _, _, o0, d, _, so in vs:
        idx = np.full(1, o0, np.int64)
        for n, st in zip(d, so):
            idx = (idx[:, None] + np.arange(n, dtype=np.int64)[None, :] * st).ravel()
        covered[idx] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[1], covered.astype(np.int8), [1]])))
    ranges = [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]
    return ranges if len(ranges) <= MAX_FILL_RANGES else [(0, nbytes)]


# ---- operands and checks ----

def _ints(t: Tensor) -> list[int]:
    """A constant shape/axis operand's values."""
    if t.data is None:
        raise UnsupportedModelError(f"tensor '{t.name}' is computed at run time; tinyq needs it stored in the model",
                                    hint="convert with TensorFlow's converter, which stores shapes and axes as constants")
    return [int(v) for v in np.asarray(t.data).ravel()]


def same_quantization(op: Operator, x: Tensor, outs) -> None:
    """Refuse ``op`` unless every output has the input's quantization (what TFLite gives these ops)."""
    for y in outs:
        if y.quant is None or x.quant is None or (float(np.float32(y.quant.scale[0])), y.quant.zero_point[0]) != \
                (float(np.float32(x.quant.scale[0])), x.quant.zero_point[0]):
            qx = None if x.quant is None else (x.quant.scale[0], x.quant.zero_point[0])
            qy = None if y.quant is None else (y.quant.scale[0], y.quant.zero_point[0])
            raise UnsupportedModelError(
                f"op {op.index} {op.opcode}: output '{y.name}' is quantized {qy} (scale, zero point), its input "
                f"'{x.name}' {qx}", hint=f"{op.opcode} moves bytes: TFLite's converter gives its outputs the input's "
                                         "quantization; re-convert the model")


def _axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} of a rank-{rank} tensor")
    return axis % rank


def _check_shape(op: Operator, y: Tensor, want) -> None:
    if tuple(y.shape) != tuple(want):
        raise ShapeError(f"output '{y.name}' declared {list(y.shape)}, the op computes {list(want)}")


# ---- STRIDED_SLICE and SLICE ----

def strided_slice_axes(graph: Graph, op: Operator) -> list[tuple[int, int, int, bool]]:
    """(start, count, stride, shrunk) of each input axis, as TFLM's reference StridedSlice computes them
    (strided_slice_logic.h: StridedSliceStartForAxis / StridedSliceEndForAxis)."""
    x = graph.tensors[op.inputs[0]]
    begin, end, strides = (_ints(graph.tensors[i]) for i in op.inputs[1:4])
    o = op.options
    rank = len(x.shape)
    if not len(begin) == len(end) == len(strides) == rank:
        raise ShapeError(f"begin/end/strides of {len(begin)}/{len(end)}/{len(strides)} values for a rank-{rank} input")
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0):
        # TFLite's converter folds both into begin/end and a RESHAPE; TFLM's kernel reads them as 0 (its
        # Prepare sets them so), TFLite's own expands them: the two disagree, so no output can be checked.
        raise UnsupportedModelError(
            f"op {op.index} STRIDED_SLICE has an ellipsis or new-axis mask ({o.get('ellipsis_mask', 0)}, "
            f"{o.get('new_axis_mask', 0)})", hint="TFLM ignores these masks; TFLite's converter never writes them: "
                                                  "convert the model with it")
    if o.get("offset", False):
        raise UnsupportedModelError(f"op {op.index} STRIDED_SLICE has offset=true (end relative to begin)",
                                    hint="TFLM does not implement it; convert the slice with fixed ends")
    out = []
    for a in range(rank):
        size, stride = x.shape[a], strides[a]
        if stride == 0:
            raise ShapeError("a stride of 0")
        bit = 1 << a
        start = begin[a] + (size if begin[a] < 0 else 0)
        start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
        if o.get("begin_mask", 0) & bit:
            start = 0 if stride > 0 else size - 1
        shrunk = bool(o.get("shrink_axis_mask", 0) & bit)
        if shrunk:
            stop = start if start >= size else start + 1
        else:
            stop = end[a] + (size if end[a] < 0 else 0)
            stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
            if o.get("end_mask", 0) & bit:
                stop = size if stride > 0 else -1
        n = len(range(start, stop, stride))  # TFLM's loop: while index < stop (stride > 0) or > stop (< 0)
        if shrunk and n != 1:
            # A shrunk axis left empty (a begin past the axis, or a negative stride): TFLM writes nothing at all.
            raise UnsupportedModelError(f"op {op.index} STRIDED_SLICE shrinks axis {a} to no element (begin "
                                        f"{begin[a]}, stride {stride})", hint="TFLM leaves such an output unwritten")
        out.append((start, n, stride, shrunk))
    return out


def strided_slice_shape(graph: Graph, op: Operator) -> tuple[int, ...]:
    """STRIDED_SLICE's output shape: the count of each axis not shrunk."""
    return tuple(n for _, n, _, shrunk in strided_slice_axes(graph, op) if not shrunk)


@lowering("STRIDED_SLICE",
           operands=Operands(inputs=(4, 4), constant=(1, 2, 3), integer=(1, 2, 3), max_rank=6, any_batch=True))
def lower_strided_slice(graph: Graph, op: Operator) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    axes = strided_slice_axes(graph, op)
    _check_shape(op, y, tuple(n for _, n, _, shrunk in axes if not shrunk))
    st = contiguous_strides(x.shape)
    dims = [n for _, n, _, _ in axes]
    return move_call(x, [y], views(dims, [s * k for (_, _, k, _), s in zip(axes, st)], contiguous_strides(dims),
                                   in_start=sum(a[0] * s for a, s in zip(axes, st))))


def slice_box(graph: Graph, op: Operator) -> tuple[list[int], list[int]]:
    """SLICE's (begin, size) per axis, a size of -1 meaning 'to the end' (TFLite's slice.cc)."""
    x = graph.tensors[op.inputs[0]]
    begin, size = _ints(graph.tensors[op.inputs[1]]), _ints(graph.tensors[op.inputs[2]])
    if not len(begin) == len(size) == len(x.shape):
        raise ShapeError(f"begin/size of {len(begin)}/{len(size)} values for a rank-{len(x.shape)} input")
    size = [d - b if s == -1 else s for b, s, d in zip(begin, size, x.shape)]
    if any(b < 0 or s < 0 or b + s > d for b, s, d in zip(begin, size, x.shape)):
        raise ShapeError(f"begin {begin} and size {size} outside the input {list(x.shape)}")
    return begin, size


@lowering("SLICE", operands=Operands(inputs=(3, 3), constant=(1, 2), integer=(1, 2), max_rank=6, any_batch=True))
def lower_slice(graph: Graph, op: Operator) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    begin, size = slice_box(graph, op)
    _check_shape(op, y, size)
    st = contiguous_strides(x.shape)
    return move_call(x, [y], views(size, st, contiguous_strides(size), in_start=sum(b * s for b, s in zip(begin, st))))


# ---- SPLIT, SPLIT_V, UNPACK ----

def split_parts(graph: Graph, op: Operator) -> tuple[Tensor, int, list[int]]:
    """SPLIT / SPLIT_V / UNPACK: (input, axis, the size of each output along it)."""
    n = len(op.outputs)
    if op.opcode == "SPLIT":
        x = graph.tensors[op.inputs[1]]
        (axis,) = _ints(graph.tensors[op.inputs[0]])
        axis = _axis(axis, len(x.shape), "axis")
        if n != op.options.get("num_splits", n) or x.shape[axis] % n:
            raise ShapeError(f"{n} outputs, num_splits {op.options.get('num_splits')}, an axis of {x.shape[axis]}")
        return x, axis, [x.shape[axis] // n] * n
    x = graph.tensors[op.inputs[0]]
    if op.opcode == "UNPACK":
        axis = _axis(op.options.get("axis", 0), len(x.shape), "axis")
        if x.shape[axis] != n or op.options.get("num", n) != n:
            raise ShapeError(f"{n} outputs from an axis of {x.shape[axis]}")
        return x, axis, [1] * n
    (axis,) = _ints(graph.tensors[op.inputs[2]])
    axis = _axis(axis, len(x.shape), "axis")
    sizes = _ints(graph.tensors[op.inputs[1]])
    if len(sizes) != n or sum(s == -1 for s in sizes) > 1:
        raise ShapeError(f"size_splits {sizes} for {n} outputs")
    if -1 in sizes:  # one size may be -1: the rest of the axis
        sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
    if sum(sizes) != x.shape[axis] or min(sizes) < 0:
        raise ShapeError(f"size_splits {sizes} of an axis of {x.shape[axis]}")
    return x, axis, sizes


@lowering("SPLIT", "SPLIT_V", "UNPACK", operands={
    "SPLIT": Operands(inputs=(2, 2), outputs=(1, MANY), constant=(0,), integer=(0,), max_rank=6, any_batch=True),
    "SPLIT_V": Operands(inputs=(3, 3), outputs=(1, MANY), constant=(1, 2), integer=(1, 2), max_rank=6, any_batch=True),
    "UNPACK": Operands(outputs=(1, MANY), max_rank=6, any_batch=True),
})
def lower_split(graph: Graph, op: Operator) -> KernelCall:
    """Output k is the input's slice [offset_k, offset_k + size_k) along the axis (UNPACK: without that axis),
    one view each."""
    x, axis, sizes = split_parts(graph, op)
    outs = [graph.tensors[i] for i in op.outputs]
    same_quantization(op, x, outs)
    st = contiguous_strides(x.shape)
    vs, offset = [], 0
    for k, (y, n) in enumerate(zip(outs, sizes)):
        dims = list(x.shape)
        dims[axis] = n
        _check_shape(op, y, dims if op.opcode != "UNPACK" else dims[:axis] + dims[axis + 1:])
        vs += views(dims, st, contiguous_strides(dims), in_start=offset * st[axis], dst=k)
        offset += n
    return move_call(x, outs, vs)


# ---- PACK ----

@lowering("PACK", operands=Operands(inputs=(1, MANY), max_rank=6, any_batch=True))
def lower_pack(graph: Graph, op: Operator) -> KernelCall:
    """PACK is a CONCATENATION along a new axis: each input gives prod(shape[axis:]) bytes per step of the axes
    before it, which tq_concat_s8 (tinyq.compile.ops.lower_ops) copies."""
    ins = [graph.tensors[i] for i in op.inputs]
    y = graph.tensors[op.outputs[0]]
    x = ins[0]
    for t in ins:
        same_quantization(op, t, [y])
    axis = _axis(op.options.get("axis", 0), len(x.shape) + 1, "axis")
    if any(tuple(t.shape) != tuple(x.shape) for t in ins):
        raise ShapeError(f"inputs of shapes {[list(t.shape) for t in ins]}")
    _check_shape(op, y, tuple(x.shape[:axis]) + (len(ins),) + tuple(x.shape[axis:]))
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    chunk = int(np.prod(x.shape[axis:], dtype=np.int64))
    return KernelCall(function="tq_concat_s8", params_type="tq_concat_params_t",
                      params=(("outer", outer), ("n", len(ins)), ("chunk", "@chunk")),
                      args=(*(t.index for t in ins), y.index),
                      arrays=(ConstArray("chunk", "uint32_t", (chunk,) * len(ins)),), pack_inputs=True)


# ---- TRANSPOSE ----

def transpose_perm(graph: Graph, op: Operator) -> list[int]:
    x = graph.tensors[op.inputs[0]]
    perm = [_axis(p, len(x.shape), "perm axis") for p in _ints(graph.tensors[op.inputs[1]])]
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError(f"perm {perm} of a rank-{len(x.shape)} input")
    return perm


@lowering("TRANSPOSE", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True))
def lower_transpose(graph: Graph, op: Operator) -> KernelCall:
    """Output axis k walks input axis perm[k]: one view (axes that stay together merge into one run)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    perm = transpose_perm(graph, op)
    dims = [x.shape[p] for p in perm]
    _check_shape(op, y, dims)
    st = contiguous_strides(x.shape)
    return move_call(x, [y], views(dims, [st[p] for p in perm], contiguous_strides(dims)))


# ---- GATHER ----

def gather_parts(graph: Graph, op: Operator) -> tuple[int, int, int, int, list[int], tuple[int, ...]]:
    """GATHER (TFLM's gather.cc): (batches, outer, axis size, inner, the indices, the output shape)."""
    x, idx_t = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    rank, irank = len(x.shape), len(idx_t.shape)
    axis = _axis(op.options.get("axis", 0), rank, "axis")
    bd = op.options.get("batch_dims", 0)
    bd = bd + irank if bd < 0 else bd
    if not 0 <= bd <= min(axis, irank) or tuple(x.shape[:bd]) != tuple(idx_t.shape[:bd]):
        raise ShapeError(f"batch_dims {op.options.get('batch_dims', 0)} for params {list(x.shape)}, "
                         f"indices {list(idx_t.shape)}, axis {axis}")
    idx = _ints(idx_t)
    if any(not 0 <= i < x.shape[axis] for i in idx):
        # TFLM only DCHECKs the range (reads out of bounds in a release build); TFLite's kernel fails.
        raise UnsupportedModelError(f"op {op.index} GATHER has indices outside 0..{x.shape[axis] - 1} "
                                    f"({min(idx)}..{max(idx)})", hint="gather with indices inside the axis")
    prod = lambda s: int(np.prod(s, dtype=np.int64))  # noqa: E731
    shape = tuple(x.shape[:axis]) + tuple(idx_t.shape[bd:]) + tuple(x.shape[axis + 1:])
    return prod(x.shape[:bd]), prod(x.shape[bd:axis]), x.shape[axis], prod(x.shape[axis + 1:]), idx, shape


@lowering("GATHER", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True))
def lower_gather(graph: Graph, op: Operator) -> KernelCall:
    """Constant indices: each run of indices in arithmetic progression (consecutive, repeated, reversed...) is
    one view of (outer, run, inner) elements."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    batches, outer, axis_size, inner, idx, shape = gather_parts(graph, op)
    _check_shape(op, y, shape)
    coords = len(idx) // batches
    vs = []
    for b in range(batches):
        ib = idx[b * coords:(b + 1) * coords]
        k = 0
        while k < coords:
            step = ib[k + 1] - ib[k] if k + 1 < coords else 1
            n = 1
            while k + n < coords and ib[k + n] - ib[k + n - 1] == step:
                n += 1
            vs += views((outer, n, inner), (axis_size * inner, step * inner, 1), (coords * inner, inner, 1),
                        in_start=((b * outer) * axis_size + ib[k]) * inner, out_start=((b * outer) * coords + k) * inner)
            k += n
    return move_call(x, [y], vs)


# ---- DEPTH_TO_SPACE, SPACE_TO_DEPTH ----

def _block(op: Operator, x: Tensor) -> tuple[int, int, int, int, int]:
    if len(x.shape) != 4:
        raise ShapeError(f"a rank-{len(x.shape)} input (NHWC needed)")
    b = op.options.get("block_size", 0)
    if b < 1:
        raise ShapeError(f"block size {b}")
    return (b, *x.shape)


def depth_space_shape(graph: Graph, op: Operator) -> tuple[int, ...]:
    x = graph.tensors[op.inputs[0]]
    b, n, h, w, c = _block(op, x)
    if op.opcode == "DEPTH_TO_SPACE":
        if c % (b * b):
            raise ShapeError(f"{c} channels for block {b}")
        return (n, h * b, w * b, c // (b * b))
    if h % b or w % b:
        raise ShapeError(f"{h}x{w} for block {b}")
    return (n, h // b, w // b, c * b * b)


@lowering("DEPTH_TO_SPACE", "SPACE_TO_DEPTH", operands=Operands(max_rank=6, any_batch=True))
def lower_depth_space(graph: Graph, op: Operator) -> KernelCall:
    """DEPTH_TO_SPACE: out[n, h*b + i, w*b + j, c] = in[n, h, w, (i*b + j)*C' + c], walked as the output axes
    (n, h, i, w, j, c); SPACE_TO_DEPTH: out[n, h, w, (i*b + j)*C + c] = in[n, h*b + i, w*b + j, c], walked as
    (n, h, w, i, j, c)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    b, n, h, w, c = _block(op, x)
    _check_shape(op, y, depth_space_shape(graph, op))
    if op.opcode == "DEPTH_TO_SPACE":
        co = c // (b * b)
        dims = (n, h, b, w, b, co)
        ist = (h * w * c, w * c, b * co, c, co, 1)
    else:
        dims = (n, h // b, w // b, b, b, c)
        ist = (h * w * c, b * w * c, b * c, w * c, c, 1)
    return move_call(x, [y], views(dims, ist, contiguous_strides(dims)))


# ---- BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND ----

def _space_batch(graph: Graph, op: Operator) -> tuple[Tensor, list[int], list[tuple[int, int]], tuple[int, ...]]:
    """(input, block shape, (before, after) crops or paddings per spatial axis, the output shape)."""
    x = graph.tensors[op.inputs[0]]
    block = _ints(graph.tensors[op.inputs[1]])
    pads = _ints(graph.tensors[op.inputs[2]])
    m = len(block)
    # TFLM and TFLite take NHC (one block axis) and NHWC (two).
    if len(x.shape) not in (3, 4) or m != len(x.shape) - 2 or len(pads) != 2 * m or min(block) < 1 or min(pads) < 0:
        raise ShapeError(f"block {block}, crops/paddings {pads} for an input {list(x.shape)}")
    pairs = [(pads[2 * k], pads[2 * k + 1]) for k in range(m)]
    nb = int(np.prod(block))
    sp = x.shape[1:1 + m]
    if op.opcode == "BATCH_TO_SPACE_ND":
        if x.shape[0] % nb or any(s * k - a - z < 0 for s, k, (a, z) in zip(sp, block, pairs)):
            raise ShapeError(f"batch {x.shape[0]} for block {block}, crops {pads}")
        out = (x.shape[0] // nb, *(s * k - a - z for s, k, (a, z) in zip(sp, block, pairs)))
    else:
        if any((s + a + z) % k for s, k, (a, z) in zip(sp, block, pairs)):
            raise ShapeError(f"padded dims not multiples of block {block}")
        out = (x.shape[0] * nb, *((s + a + z) // k for s, k, (a, z) in zip(sp, block, pairs)))
    return x, block, pairs, out + tuple(x.shape[1 + m:])


@lowering("BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
           operands=Operands(inputs=(3, 3), constant=(1, 2), integer=(1, 2), max_rank=6, any_batch=True))
def lower_space_batch(graph: Graph, op: Operator) -> KernelCall:
    """One view per block phase p (TFLite's batch order: phase-major, row-major over the block): batch
    b + p*B of the batched tensor holds the pixels at (s*block + p - before) of batch b of the spatial one.
    BATCH_TO_SPACE_ND drops what the crops cut; SPACE_TO_BATCH_ND fills its output with the zero point
    first (TFLite's pad value: the output offset) and copies the pixels that are not padding."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    x, block, pairs, shape = _space_batch(graph, op)
    _check_shape(op, y, shape)
    to_space = op.opcode == "BATCH_TO_SPACE_ND"
    spatial, batched = (y, x) if to_space else (x, y)
    m = len(block)
    sst, bst = contiguous_strides(spatial.shape), contiguous_strides(batched.shape)
    n_b = spatial.shape[0]
    rest = tuple(spatial.shape[1 + m:])
    vs = []
    for k, phase in enumerate(itertools.product(*(range(b) for b in block))):
        lo, counts = [], []
        for p, b, (a, _), s_sp, s_b in zip(phase, block, pairs, spatial.shape[1:], batched.shape[1:]):
            # batched index t <-> spatial index t*b + p - a, both inside their tensors
            first = max(0, -(-(a - p) // b))
            last = min(s_b, -(-(s_sp + a - p) // b))
            lo.append(first)
            counts.append(max(0, last - first))
        dims = (n_b, *counts, *rest)
        b_strides = (bst[0], *bst[1:1 + m], *bst[1 + m:])
        s_strides = (sst[0], *(b * s for b, s in zip(block, sst[1:1 + m])), *sst[1 + m:])
        b_start = k * n_b * bst[0] + sum(t * s for t, s in zip(lo, bst[1:]))
        s_start = sum((t * b + p - a) * s for t, b, p, (a, _), s in zip(lo, block, phase, pairs, sst[1:]))
        if to_space:
            vs += views(dims, b_strides, s_strides, in_start=b_start, out_start=s_start)
        else:
            vs += views(dims, s_strides, b_strides, in_start=s_start, out_start=b_start)
    return move_call(x, [y], vs, fill=None if to_space else y.quant.zero_point[0])


# ---- TILE ----

def tile_multiples(graph: Graph, op: Operator) -> list[int]:
    x = graph.tensors[op.inputs[0]]
    mult = _ints(graph.tensors[op.inputs[1]])
    if len(mult) != len(x.shape) or min(mult, default=1) < 1:
        raise ShapeError(f"multiples {mult} for a rank-{len(x.shape)} input")
    return mult


@lowering("TILE", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True))
def lower_tile(graph: Graph, op: Operator) -> KernelCall:
    """Each axis split into (repeat, size): the repeat reads the same input again (input stride 0). No TFLM
    kernel: TFLite's reference tile is what it matches."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    mult = tile_multiples(graph, op)
    _check_shape(op, y, [m * d for m, d in zip(mult, x.shape)])
    st, ost = contiguous_strides(x.shape), contiguous_strides(y.shape)
    dims, ist, outst = [], [], []
    for m, d, s, o in zip(mult, x.shape, st, ost):
        dims += [m, d]
        ist += [0, s]
        outst += [d * o, o]
    return move_call(x, [y], views(dims, ist, outst))


# ---- MIRROR_PAD, PAD, PADV2 ----

def _paddings(graph: Graph, op: Operator) -> list[tuple[int, int]]:
    x = graph.tensors[op.inputs[0]]
    pads = _ints(graph.tensors[op.inputs[1]])
    if len(pads) != 2 * len(x.shape) or min(pads, default=0) < 0:
        raise ShapeError(f"paddings {pads} for a rank-{len(x.shape)} input")
    return [(pads[2 * k], pads[2 * k + 1]) for k in range(len(x.shape))]


def padded_shape(graph: Graph, op: Operator) -> tuple[int, ...]:
    x = graph.tensors[op.inputs[0]]
    return tuple(d + a + z for d, (a, z) in zip(x.shape, _paddings(graph, op)))


@lowering("MIRROR_PAD", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True))
def lower_mirror_pad(graph: Graph, op: Operator) -> KernelCall:
    """Each axis in three segments: the mirrored 'before' (input stride -1), the input, the mirrored 'after';
    one view per combination. REFLECT leaves the edge out (offset 1), SYMMETRIC repeats it (offset 0), as
    TFLM's GetInputDimension."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    pads = _paddings(graph, op)
    _check_shape(op, y, padded_shape(graph, op))
    mode = op.options.get("mode", 0)
    if mode not in (0, 1):
        raise ShapeError(f"mirror mode {mode}")
    offset = 1 if mode == 0 else 0  # REFLECT, SYMMETRIC
    for d, (a, z) in zip(x.shape, pads):
        if max(a, z) > d - offset:
            raise UnsupportedModelError(f"op {op.index} MIRROR_PAD pads {a}, {z} an axis of {d} "
                                        f"({'REFLECT' if offset else 'SYMMETRIC'} mirrors at most {d - offset})",
                                        hint="TensorFlow refuses these paddings too: pad less")
    # per axis: (count, input start, input direction, output start)
    segs = [[s for s in ((a, a - 1 + offset, -1, 0), (d, 0, 1, a), (z, d - 1 - offset, -1, a + d)) if s[0]]
            for d, (a, z) in zip(x.shape, pads)]
    st, ost = contiguous_strides(x.shape), contiguous_strides(y.shape)
    vs = []
    for combo in itertools.product(*segs):
        vs += views([c[0] for c in combo], [c[2] * s for c, s in zip(combo, st)], ost,
                    in_start=sum(c[1] * s for c, s in zip(combo, st)), out_start=sum(c[3] * o for c, o in zip(combo, ost)))
    return move_call(x, [y], vs)


@lowering("PAD", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True))
def lower_pad(graph: Graph, op: Operator) -> KernelCall:
    """PAD: PADV2 with the output's zero point (TFLM's pad value for int8 without a constant)."""
    return _pad_call(graph, op, int(graph.tensors[op.outputs[0]].quant.zero_point[0]))


@lowering("PADV2", operands=Operands(inputs=(3, 3), constant=(1, 2), integer=(1,), max_rank=6, any_batch=True))
def lower_padv2(graph: Graph, op: Operator) -> KernelCall:
    """PAD with an explicit constant: the output filled with it, then the input copied inside (one view).
    TFLM requires the constant's quantization to be the output's."""
    y, value = graph.tensors[op.outputs[0]], graph.tensors[op.inputs[2]]
    same_quantization(op, value, [y])
    if value.dtype != "INT8" or value.size != 1 or value.data is None:
        raise UnsupportedModelError(f"op {op.index} PADV2's constant_values is not one stored int8",
                                    hint="pad with a constant stored in the model")
    return _pad_call(graph, op, int(np.asarray(value.data).ravel()[0]))


def _pad_call(graph: Graph, op: Operator, fill: int) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    pads = _paddings(graph, op)
    _check_shape(op, y, padded_shape(graph, op))
    ost = contiguous_strides(y.shape)
    vs = views(x.shape, contiguous_strides(x.shape), ost, out_start=sum(a * o for (a, _), o in zip(pads, ost)))
    return move_call(x, [y], vs, fill=fill)


# ---- output shapes (tinyq.compile.shapes) ----

def output_shapes(graph: Graph, op: Operator) -> list[tuple[int, ...]] | None:
    """The shape of each of ``op``'s outputs as it computes them, for the ops of this module (None: another op,
    or one its lowering refuses for another reason)."""
    try:
        return _output_shapes(graph, op)
    except UnsupportedModelError:
        return None


def _output_shapes(graph: Graph, op: Operator) -> list[tuple[int, ...]] | None:
    t = graph.tensors
    x = t[op.inputs[0]]
    code = op.opcode
    if code == "STRIDED_SLICE":
        return [strided_slice_shape(graph, op)]
    if code == "SLICE":
        return [tuple(slice_box(graph, op)[1])]
    if code in ("SPLIT", "SPLIT_V", "UNPACK"):
        x, axis, sizes = split_parts(graph, op)
        return [tuple(x.shape[:axis]) + ((n,) if code != "UNPACK" else ()) + tuple(x.shape[axis + 1:]) for n in sizes]
    if code == "TRANSPOSE":
        return [tuple(x.shape[p] for p in transpose_perm(graph, op))]
    if code == "GATHER":
        return [gather_parts(graph, op)[-1]]
    if code in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
        return [depth_space_shape(graph, op)]
    if code in ("BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND"):
        return [_space_batch(graph, op)[-1]]
    if code == "TILE":
        return [tuple(m * d for m, d in zip(tile_multiples(graph, op), x.shape))]
    if code in ("MIRROR_PAD", "PADV2"):
        return [padded_shape(graph, op)]
    if code in ("EXPAND_DIMS", "SQUEEZE"):
        return [_reshape_view_shape(graph, op)]
    if code == "PACK":
        axis = _axis(op.options.get("axis", 0), len(x.shape) + 1, "axis")
        return [tuple(x.shape[:axis]) + (len(op.inputs),) + tuple(x.shape[axis:])]
    return None


# ---- EXPAND_DIMS, SQUEEZE ----

def _reshape_view_shape(graph: Graph, op: Operator) -> tuple[int, ...]:
    x = graph.tensors[op.inputs[0]]
    if op.opcode == "EXPAND_DIMS":
        (axis,) = _ints(graph.tensors[op.inputs[1]])
        axis = _axis(axis, len(x.shape) + 1, "axis")
        return tuple(x.shape[:axis]) + (1,) + tuple(x.shape[axis:])
    dims = op.options.get("squeeze_dims", ()) or ()
    drop = {_axis(a, len(x.shape), "squeeze dim") for a in dims} if dims else {i for i, d in enumerate(x.shape) if d == 1}
    if any(x.shape[a] != 1 for a in drop):
        raise ShapeError(f"squeeze dims {list(dims)} of shape {list(x.shape)}")
    return tuple(d for i, d in enumerate(x.shape) if i not in drop)


@lowering("EXPAND_DIMS", "SQUEEZE", operands={
    "EXPAND_DIMS": Operands(inputs=(2, 2), constant=(1,), integer=(1,), max_rank=6, any_batch=True),
    "SQUEEZE": Operands(max_rank=6, any_batch=True),
})
def lower_expand_squeeze(graph: Graph, op: Operator) -> KernelCall:
    """The same bytes in another shape: the planner gives the output the input's buffer (as for RESHAPE)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    _check_shape(op, y, _reshape_view_shape(graph, op))
    return KernelCall("tq_copy_s8", None, (), (x.index, y.index), lead_args=(f"{y.size}u",), alias=True)
