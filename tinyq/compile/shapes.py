"""Shape inference for the ops tinyq runs: the output shape each op's inputs and options give.

A .tflite states every tensor's shape; the planner and the kernels trust those declarations
(a buffer's size, a loop's bound). A file whose declared output disagrees with what its op
computes (an edited or damaged file: TFLM refuses to allocate it, or reads past a buffer) is
refused by the analyze stage with the op named, before anything is planned or run.
"""

from __future__ import annotations

import numpy as np

from tinyq.graph import Graph, Operator


from tinyq.compile.ops.kernel import ShapeError  # noqa: F401  (the op modules' own shape rules raise it too)


def _window(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """TFLite's ComputeOutSize: the output length of a window along one axis."""
    if stride < 1 or dilation < 1 or k < 1:
        raise ShapeError(f"window {k}, stride {stride}, dilation {dilation}: each must be at least 1")
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        out = (size - eff + stride) // stride
        if out < 1:
            raise ShapeError(f"a window of {eff} over {size} elements leaves no output (VALID padding)")
        return out
    raise ShapeError(f"padding {padding!r}")


def _nhwc(shape, what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise ShapeError(f"{what} of shape {list(shape)} is not NHWC")
    return tuple(shape)


def broadcast(a, b) -> tuple[int, ...]:
    """NumPy's (and TFLite's) broadcast of two shapes."""
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError as e:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not broadcast") from e


def expected_output(graph: Graph, op: Operator) -> tuple[int, ...] | int | None:
    """The output shape ``op`` computes from its inputs (an int: only its element count is fixed; None: an op
    this module does not know)."""
    t = graph.tensors
    ins = [t[i] if i >= 0 else None for i in op.inputs]
    o, code = op.options, op.opcode
    x = ins[0]
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        n, h, w, c = _nhwc(x.shape, "input")
        oc, kh, kw, wc = _nhwc(ins[1].shape, "weights")
        if code == "CONV_2D":
            if wc != c:
                raise ShapeError(f"weights for {wc} input channels, input has {c}")
        else:
            oc = wc
            dm = o.get("depth_multiplier", oc // c if c else 0)
            if oc % c or dm * c != oc:  # TFLM's kernels loop over the option's multiplier, not the weights'
                raise ShapeError(f"depth multiplier {dm} for {c} input and {oc} output channels")
        bias = ins[2] if len(ins) > 2 else None
        if bias is not None and bias.size != oc:
            raise ShapeError(f"a bias of {bias.size} for {oc} output channels")
        pad = o.get("padding", "SAME")
        return (n, _window(h, kh, o.get("stride_h", 1), o.get("dilation_hfactor", 1), pad),
                _window(w, kw, o.get("stride_w", 1), o.get("dilation_wfactor", 1), pad), oc)
    if code == "TRANSPOSE_CONV":  # inputs: the output shape, the weights (OHWI), the input, the bias
        n, _, _, c = _nhwc(ins[2].shape, "input")
        oc, _, _, wc = _nhwc(ins[1].shape, "weights")
        if wc != c:
            raise ShapeError(f"weights for {wc} input channels, input has {c}")
        bias = ins[3] if len(ins) > 3 else None
        if bias is not None and bias.size != oc:
            raise ShapeError(f"a bias of {bias.size} for {oc} output channels")
        if ins[0].data is None or ins[0].data.size != 4:
            raise ShapeError("an output shape that is not 4 stored integers")
        out = tuple(int(d) for d in np.asarray(ins[0].data).ravel())
        if out[0] != n or out[3] != oc or min(out) < 1:
            raise ShapeError(f"output shape {list(out)} for {n} images of {oc} channels")
        return out
    if code == "BATCH_MATMUL":
        a, b = x.shape, ins[1].shape
        if len(a) < 2 or len(b) < 2:
            raise ShapeError(f"operands of shapes {list(a)} and {list(b)}: each needs 2 dimensions at least")
        m, ka = (a[-1], a[-2]) if o.get("adj_x") else (a[-2], a[-1])
        kb, n = (b[-1], b[-2]) if o.get("adj_y") else (b[-2], b[-1])
        if ka != kb:
            raise ShapeError(f"a depth of {ka} against {kb}")
        return broadcast(a[:-2], b[:-2]) + (m, n)
    if code in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        n, h, w, c = _nhwc(x.shape, "input")
        pad = o.get("padding", "SAME")
        return (n, _window(h, o.get("filter_height", 0), o.get("stride_h", 0), 1, pad),
                _window(w, o.get("filter_width", 0), o.get("stride_w", 0), 1, pad), c)
    if code == "FULLY_CONNECTED":
        units, depth = (ins[1].shape + (0, 0))[:2] if len(ins[1].shape) == 2 else (0, 0)
        if depth < 1 or x.size % depth:
            raise ShapeError(f"weights {list(ins[1].shape)} for an input of {x.size} elements")
        bias = ins[2] if len(ins) > 2 else None
        if bias is not None and bias.size != units:
            raise ShapeError(f"a bias of {bias.size} for {units} units")
        return (x.size // depth) * units
    if code in ("ADD", "MUL", "SUB", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "DIV", "PRELU"):
        return broadcast(x.shape, ins[1].shape)
    if code == "RESHAPE":
        return x.size
    if code in ("SOFTMAX", "RELU", "RELU6", "QUANTIZE", "LOGISTIC", "TANH", "LEAKY_RELU", "L2_NORMALIZATION"):
        return tuple(x.shape)
    if code in ("HARD_SWISH", "ELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "GELU", "LOG_SOFTMAX"):  # tables, log-softmax
        return tuple(x.shape)
    if code == "PAD":
        pads = np.asarray(ins[1].data).reshape(-1, 2) if ins[1].data is not None else None
        if pads is None or len(pads) != len(x.shape) or (pads < 0).any():
            raise ShapeError(f"paddings {None if pads is None else pads.tolist()} for a rank-{len(x.shape)} input")
        return tuple(int(d + p.sum()) for d, p in zip(x.shape, pads))
    if code == "CONCATENATION":
        rank = len(x.shape)
        axis = o.get("axis", 0)
        if not -rank <= axis < rank:
            raise ShapeError(f"axis {axis} of rank-{rank} inputs")
        axis %= rank
        parts = [s.shape for s in ins]
        if any(len(p) != rank or tuple(p[:axis]) + tuple(p[axis + 1:]) != tuple(x.shape[:axis]) + tuple(x.shape[axis + 1:])
               for p in parts):
            raise ShapeError(f"inputs {[list(p) for p in parts]} differ off the axis {axis}")
        return tuple(x.shape[:axis]) + (sum(p[axis] for p in parts),) + tuple(x.shape[axis + 1:])
    if code in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        rank = len(x.shape)
        axes = [int(a) for a in np.asarray(ins[1].data).ravel()]
        if any(not -rank <= a < rank for a in axes):
            raise ShapeError(f"axes {axes} of a rank-{rank} input")
        axes = {a % rank for a in axes}
        return int(np.prod([d for i, d in enumerate(x.shape) if i not in axes], dtype=np.int64))
    from tinyq.compile.ops.kernels.move import output_shapes

    shapes = output_shapes(graph, op)  # the data-movement ops, one shape an output
    if shapes is not None:
        return shapes[0] if len(shapes) == 1 else shapes
    if code in ("ARG_MAX", "ARG_MIN"):
        rank = len(x.shape)
        axis = np.asarray(ins[1].data).ravel()
        if axis.size != 1 or not -rank <= int(axis[0]) < rank:
            raise ShapeError(f"axis {axis.tolist()} of a rank-{rank} input")
        a = int(axis[0]) % rank
        return tuple(x.shape[:a]) + tuple(x.shape[a + 1:])
    if code in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        n, _, _, c = _nhwc(x.shape, "input")
        size = np.asarray(ins[1].data).ravel()
        if size.size != 2 or (size < 1).any():
            raise ShapeError(f"size {size.tolist()}: TFLite resizes to [height, width], each at least 1")
        return (n, int(size[0]), int(size[1]), c)
    return None  # an op this table does not know: its kernel's lowering checks what it needs


def shape_problem(graph: Graph, op: Operator) -> str | None:
    """Why ``op``'s declared output shape is not the one it computes, or None when it is."""
    y = graph.tensors[op.outputs[0]]
    try:
        want = expected_output(graph, op)
        if isinstance(want, list):  # one shape an output
            if len(want) != len(op.outputs):
                return f"{len(op.outputs)} outputs where it computes {len(want)}"
            bad = [(graph.tensors[o], w) for o, w in zip(op.outputs, want) if tuple(graph.tensors[o].shape) != w]
            y, want = bad[0] if bad else (y, tuple(y.shape))
    except ShapeError as e:
        return str(e)
    except (IndexError, TypeError, AttributeError) as e:  # an operand missing or of the wrong kind
        return f"operands TFLite's {op.opcode} cannot take ({type(e).__name__})"
    if want is None:
        return None
    if isinstance(want, int):
        return None if y.size == want else f"an output of {y.size} elements where its input gives {want}"
    return None if tuple(y.shape) == want else f"declared output shape {list(y.shape)}, where it computes {list(want)}"
