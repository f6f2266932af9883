"""Data movement, int8: ops that copy bytes and compute nothing (STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, UNPACK,
PACK, TRANSPOSE, GATHER, EXPAND_DIMS, SQUEEZE, DEPTH_TO_SPACE, SPACE_TO_DEPTH, BATCH_TO_SPACE_ND,
SPACE_TO_BATCH_ND, TILE, MIRROR_PAD, PADV2).

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
from tinyq.compile.ops import ConstArray, KernelCall, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.shapes import ShapeError

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
    F("uint32_t", "fill_bytes", "bytes of outs[0] set to fill_value before the views run (0: none)"),
    F("int32_t", "fill_value"),
), doc="Several views of one input, each into one of the outputs (SPLIT, UNPACK), or into one output after\n"
       "it is filled with a constant (SPACE_TO_BATCH_ND, PADV2)."))

_OPCODES = ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK")

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
    return KernelCall(function=MOVE_N.symbol, params_type=MULTI.name,
                      params=(("n", len(vs)), ("views", "@views" if vs else "NULL"),
                              ("fill_bytes", outs[0].nbytes if fill is not None else 0),
                              ("fill_value", 0 if fill is None else int(fill))),
                      args=(x.index, *(t.index for t in outs)),
                      arrays=(ConstArray("views", "int32_t", words),) if vs else (),
                      pack_outputs=True)


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
        out.append((start, len(range(start, stop, stride)), stride, shrunk))
    return out


def strided_slice_shape(graph: Graph, op: Operator) -> tuple[int, ...]:
    """STRIDED_SLICE's output shape: the count of each axis not shrunk."""
    return tuple(n for _, n, _, shrunk in strided_slice_axes(graph, op) if not shrunk)


@lowering("STRIDED_SLICE")
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


@lowering("SLICE")
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


@lowering("SPLIT", "SPLIT_V", "UNPACK")
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

@lowering("PACK")
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


@lowering("EXPAND_DIMS", "SQUEEZE")
def lower_expand_squeeze(graph: Graph, op: Operator) -> KernelCall:
    """The same bytes in another shape: the planner gives the output the input's buffer (as for RESHAPE)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    same_quantization(op, x, [y])
    _check_shape(op, y, _reshape_view_shape(graph, op))
    return KernelCall("tq_copy_s8", None, (), (x.index, y.index), lead_args=(f"{y.size}u",), alias=True)
