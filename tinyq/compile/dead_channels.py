"""Constant channels dropped from the int8 graph, exactly (a pass of the plan stage).

A trained network can carry output channels that hold one value whatever the input: weights that
quantized to 0, or a per-channel scale of ~1e-9. Official MLPerf Tiny VWW has 971 of them in its
pointwise layers, up to 234 of 256 in one layer: 42 % of its MACs compute constants. TFLM (and
every engine that runs the graph as given) still multiplies them out.

Here such a channel leaves every tensor it runs through, and its value goes where it was read:

- a CONV_2D or FULLY_CONNECTED that reads it adds ``w * (v - zp)`` to its int32 bias, for every
  output channel, and loses that input column. Exact when every tap reads ``v`` (no padding), or
  when ``v`` is the input zero point (a padded tap reads that too: the term is 0 everywhere);
- a 3x3 (any) DEPTHWISE_CONV_2D, a pooling op or a RESHAPE that keeps the channel axis passes it on:
  their channel ``c`` is constant too (a depthwise channel whose input is its zero point is its
  requantized bias everywhere, padding included), so it leaves their output as well.

A channel goes only where every tensor it passes through is constant in it, none is a model input
or output, and every reader is one of the above; the producer at the head is a CONV_2D, whose
filter row is dropped. The readers' results are bit for bit TFLite's: the integer sums are the
same sums, regrouped. The host check of every build (the generated C against TFLM on the original
.tflite) holds the pass to that. Channel counts stay multiples of 4 (a few constant channels are
kept where needed) so the layers keep their fast kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinyq.graph import Graph, Operator, Quantization, Tensor
from tinyq.compile.ops.layout import channel_constant
from tinyq.compile.ops.quant import activation_range, multiply_by_quantized_multiplier, per_channel_multipliers

#: Ops a channel passes through on its own (no mixing with other channels), when they keep the count.
_PASS = ("DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE")
#: Ops that read every channel and can take a constant one into their bias.
_ABSORB = ("CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class DroppedChannels:
    """One channel space's constant channels, dropped: the tensors that lose them, which, of how many, and
    the order the channels left keep (original indices: those the head computes, then its constant ones)."""

    tensors: tuple[int, ...]
    channels: tuple[int, ...]  # the original indices
    of: int
    order: tuple[int, ...] = ()


def drop_constant_channels(graph: Graph) -> tuple[Graph, tuple[DroppedChannels, ...]]:
    """``graph`` without the constant channels it can lose exactly (see the module docstring), and
    what went. A graph with none is returned as it is."""
    uses: dict[int, int] = {}
    readers: dict[int, list[Operator]] = {}
    producer: dict[int, Operator] = {}
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                uses[i] = uses.get(i, 0) + 1
                readers.setdefault(i, []).append(op)
        for o in op.outputs:
            producer[o] = op
    const = _constants(graph)

    # Channel spaces: tensors joined by the ops a channel passes through unchanged in count.
    parent = {t.index: t.index for t in graph.tensors}

    def find(t: int) -> int:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for op in graph.operators:
        if _passes(graph, op):
            parent[find(op.outputs[0])] = find(op.inputs[0])
    spaces: dict[int, list[int]] = {}
    for t in const:
        spaces.setdefault(find(t), []).append(t)

    dropped = []
    for members in spaces.values():
        members = sorted(members)
        head = _head(graph, members, uses, readers, producer)
        if head is None:
            continue
        c_all = graph.tensors[head].shape[-1]
        channels = _droppable(graph, members, const, readers)
        # The head's other constant channels go last, where its conv writes them without computing them
        # (tq_conv_params_t.const_tail); its readers take the same order.
        left = [c for c in range(c_all) if c not in channels]
        order = tuple([c for c in left if const[head][c] is None] + [c for c in left if const[head][c] is not None])
        if channels or order != tuple(left):
            dropped.append(DroppedChannels(tuple(members), channels, c_all, order))
    if not dropped:
        return graph, ()
    return _rewrite(graph, dropped, const, readers, producer), tuple(d for d in dropped if d.channels)


def _single(graph: Graph, op: Operator, uses: dict[int, int]) -> bool:
    """Whether ``op``'s constant inputs (filter, bias) are its own: a pass may rewrite them."""
    return all(uses.get(i, 0) == 1 for i in op.inputs[1:] if i >= 0 and graph.tensors[i].is_constant)


def _no_padding(op: Operator, x: Tensor, y: Tensor, k_h: int, k_w: int) -> bool:
    """Whether every tap of every output reads inside ``x`` (TFLite pads SAME at the end first)."""
    o = op.options
    for size_in, size_out, k, s, d in ((x.shape[1], y.shape[1], k_h, o.get("stride_h", 1), o.get("dilation_hfactor", 1)),
                                       (x.shape[2], y.shape[2], k_w, o.get("stride_w", 1), o.get("dilation_wfactor", 1))):
        if (size_out - 1) * s + (k - 1) * d + 1 > size_in:
            return False
    return True


def _passes(graph: Graph, op: Operator) -> bool:
    """Whether ``op`` carries each channel of its input into the same channel of its output alone."""
    if op.opcode not in _PASS or not op.inputs or op.inputs[0] < 0 or len(op.outputs) != 1:
        return False
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.dtype != "INT8" or y.dtype != "INT8" or not x.shape or not y.shape or x.shape[-1] != y.shape[-1]:
        return False
    if op.opcode == "DEPTHWISE_CONV_2D":
        w = graph.tensors[op.inputs[1]]
        return len(x.shape) == 4 and w.is_constant and w.shape[-1] == x.shape[-1]
    if op.opcode == "RESHAPE":
        return True
    return len(x.shape) == 4 and x.quant == y.quant  # pooling: the same scale and zero point in and out


def _act_range(op: Operator, y: Tensor) -> tuple[int, int]:
    """The int8 range ``op``'s fused activation leaves its output ``y``."""
    return activation_range(op.options.get("fused_activation_function", "NONE"), y.quant.scale[0], y.quant.zero_point[0])


def _constants(graph: Graph) -> dict[int, list[int | None]]:
    """Each int8 activation tensor's channels: the value a channel holds for every model input, or None."""
    const: dict[int, list[int | None]] = {}
    for op in graph.operators:
        if not op.inputs or op.inputs[0] < 0 or len(op.outputs) != 1:
            continue
        x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if y.dtype != "INT8" or y.quant is None or x.quant is None or not y.shape:
            continue
        c_out = y.shape[-1]
        vals: list[int | None] = [None] * c_out
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1 and len(x.shape) == 4:
            w = graph.tensors[op.inputs[1]]
            b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            if not w.is_constant or w.quant is None or any(w.quant.zero_point):
                continue
            depthwise = op.opcode == "DEPTHWISE_CONV_2D"
            if depthwise and (not _passes(graph, op)):
                continue
            k_h, k_w = w.shape[1], w.shape[2]
            rows = (w.data.reshape(k_h * k_w, c_out).T if depthwise else w.data.reshape(c_out, -1)).astype(np.int64)
            bias = [0] * c_out if b is None else [int(v) for v in b.data.ravel()]
            mult, shift = per_channel_multipliers(x.quant.scale[0], w.quant.scale, y.quant.scale[0], c_out)
            zp_in, zp_out = x.quant.zero_point[0], y.quant.zero_point[0]
            inside = _no_padding(op, x, y, k_h, k_w)
            lo, hi = _act_range(op, y)
            src = const.get(x.index)
            for c in range(c_out):
                v = src[c] if depthwise and src else None
                if v is not None and (v == zp_in or inside):
                    # Every tap reads v (or a pad, worth 0 when v is the zero point).
                    acc = bias[c] + (v - zp_in) * int(rows[c].sum())
                    y8 = multiply_by_quantized_multiplier(acc, int(mult[c]), int(shift[c])) + zp_out
                    vals[c] = max(lo, min(hi, y8))  # the activation's range is inside int8
                    continue
                vals[c] = channel_constant(rows[c], bias[c], zp_in, int(mult[c]), int(shift[c]), zp_out, lo, hi)
        elif op.opcode in _PASS and _passes(graph, op) and x.index in const:
            lo, hi = _act_range(op, y) if op.opcode != "RESHAPE" else (-128, 127)
            vals = [None if v is None else max(lo, min(hi, v)) for v in const[x.index]]
        else:
            continue
        const[y.index] = vals
    return const


def _absorbs(graph: Graph, op: Operator, t: int, v: int) -> bool:
    """Whether ``op``, a conv or dense layer reading tensor ``t`` as its data input (the space's _head has
    checked that), can take a channel worth ``v`` into its bias."""
    x, w, y = graph.tensors[t], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    if not w.is_constant or w.quant is None or any(w.quant.zero_point):
        return False  # a filter zero point the term would miss (int8 filters are symmetric)
    return op.opcode == "FULLY_CONNECTED" or (
        len(x.shape) == 4 and (v == x.quant.zero_point[0] or _no_padding(op, x, y, w.shape[1], w.shape[2])))


def _head(graph: Graph, members: list[int], uses, readers, producer) -> int | None:
    """The tensor a channel space starts from (a CONV_2D's output), when the space's channels may be dropped
    or reordered: no model input or output among its tensors, each read only by ops that carry a channel
    on (within the space) or sum over all of them (a conv or dense layer's data input), and every filter
    concerned the op's own. Else None."""
    c_all = graph.tensors[members[0]].shape[-1]
    if c_all % 4 or c_all < 8 or (set(graph.inputs) | set(graph.outputs)) & set(members):
        return None
    heads = [t for t in members if t not in producer or not _passes(graph, producer[t])]
    if len(heads) != 1 or heads[0] not in producer:
        return None
    head = producer[heads[0]]
    if head.opcode != "CONV_2D" or not _single(graph, head, uses):
        return None
    inner = [producer[t] for t in members if t in producer and _passes(graph, producer[t])]
    if any(not _single(graph, op, uses) for op in inner if op.opcode == "DEPTHWISE_CONV_2D"):
        return None
    for t in members:
        for op in readers.get(t, []):
            if op.outputs[0] in members and _passes(graph, op):
                continue
            x = graph.tensors[t]
            if (op.opcode not in _ABSORB or op.inputs[0] != t or list(op.inputs).count(t) != 1
                    or not _single(graph, op, uses) or graph.tensors[op.inputs[1]].shape[-1] != c_all
                    or (op.opcode == "FULLY_CONNECTED" and x.size != c_all)):
                return None
    return heads[0]


def _droppable(graph: Graph, members: list[int], const, readers) -> tuple[int, ...]:
    """The channels one channel space (whose _head is known) can lose, a multiple of 4 kept (the fast
    kernels' unit)."""
    c_all = graph.tensors[members[0]].shape[-1]
    out = []
    for c in range(c_all):
        if all(const[t][c] is not None for t in members) and all(
                (op.outputs[0] in members and _passes(graph, op)) or _absorbs(graph, op, t, const[t][c])
                for t in members for op in readers.get(t, [])):
            out.append(c)
    keep = -(-(c_all - len(out)) // 4) * 4
    keep = max(4, keep)
    return tuple(out[:max(0, c_all - keep)])


def _sliced(q: Quantization | None, keep: list[int], n: int) -> Quantization | None:
    if q is None or len(q.scale) != n:
        return q
    return replace(q, scale=tuple(q.scale[i] for i in keep), zero_point=tuple(q.zero_point[i] for i in keep))


def _rewrite(graph: Graph, dropped, const, readers, producer) -> Graph:
    tensors = list(graph.tensors)
    operators = list(graph.operators)

    def with_data(i: int, data: np.ndarray, quant=None) -> None:
        t = tensors[i]
        tensors[i] = replace(t, shape=tuple(data.shape), data=data, quant=quant if quant is not None else t.quant)

    for d in dropped:
        c_all = d.of
        keep = list(d.order)
        for t in d.tensors:
            tensors[t] = replace(tensors[t], shape=tensors[t].shape[:-1] + (len(keep),))
            op = producer[t]
            # The current tensors throughout: a layer may lose input columns to one space and filter
            # rows to the next.
            if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = tensors[op.inputs[1]]
                axis = 0 if op.opcode == "CONV_2D" else 3  # the head's filter rows, a depthwise layer's channels
                with_data(w.index, np.ascontiguousarray(np.take(w.data, keep, axis=axis)), _sliced(w.quant, keep, c_all))
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    b = tensors[op.inputs[2]]
                    with_data(b.index, np.ascontiguousarray(b.data[keep]), _sliced(b.quant, keep, c_all))
            elif op.opcode == "RESHAPE" and len(op.inputs) > 1 and op.inputs[1] >= 0:
                s = tensors[op.inputs[1]]
                if s.is_constant and s.data.size and int(s.data.ravel()[-1]) == c_all:
                    data = s.data.copy()
                    data.reshape(-1)[-1] = len(keep)
                    with_data(s.index, data)
            for r in readers.get(t, []):
                if r.opcode not in _ABSORB or r.inputs[0] != t:
                    continue
                r = operators[r.index]
                if d.channels:  # their values into the bias
                    if len(r.inputs) < 3 or r.inputs[2] < 0:
                        r = operators[r.index] = _with_bias(r, tensors)  # the converter drops a bias of zeros
                    rw, rb = tensors[r.inputs[1]], tensors[r.inputs[2]]
                    zp = graph.tensors[t].quant.zero_point[0]
                    wd = rw.data.astype(np.int64)
                    taps = wd.reshape(wd.shape[0], -1, c_all)  # (out, taps, in): a conv's kh * kw, an FC's 1
                    v = np.array([const[t][c] - zp for c in d.channels], dtype=np.int64)
                    bias = rb.data.astype(np.int64) + (taps[:, :, list(d.channels)].sum(axis=1) * v).sum(axis=1)
                    # |term| <= 255 * 127 * taps * channels: far inside int32 for any real layer.
                    if bias.min() < -(1 << 31) or bias.max() >= 1 << 31:
                        raise AssertionError("a folded bias left int32")
                    with_data(rb.index, bias.astype(np.int32))
                rw = tensors[r.inputs[1]]
                with_data(rw.index, np.ascontiguousarray(np.take(rw.data, keep, axis=-1)))
    return replace(graph, tensors=tuple(tensors), operators=tuple(operators))


def _with_bias(op: Operator, tensors: list[Tensor]) -> Operator:
    """``op`` (a conv or dense layer without a bias) with an int32 bias of zeros, appended to ``tensors``: the
    same sums, and a place for the folded terms. Its scale is TFLite's (input scale times filter scale)."""
    x, w = tensors[op.inputs[0]], tensors[op.inputs[1]]
    n = w.shape[0]
    scales = w.quant.scale if len(w.quant.scale) == n else w.quant.scale * n
    b = Tensor(len(tensors), f"{tensors[op.outputs[0]].name}/bias", (n,), "INT32",
               Quantization(tuple(x.quant.scale[0] * s for s in scales), (0,) * n), np.zeros(n, dtype=np.int32))
    tensors.append(b)
    return replace(op, inputs=(*op.inputs[:2], b.index, *op.inputs[3:]))
