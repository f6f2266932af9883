"""The lowerings of each supported TFLite opcode to a tinyq kernel call."""

from __future__ import annotations

import numpy as np

from tinyq.graph import Graph, Operator, Tensor
from tinyq.compile.ops import ConstArray, KernelCall, MANY, Operands, lowering, scratch
from tinyq.compile.ops.layout import (channel_constant, channel_params, depthwise3x3_edge, depthwise3x3_planes,
                              depthwise3x3_words, fast_ok, fast_rnd, padded_k, pair_rows)
from tinyq.compile.ops.quant import (
    activation_range,
    tflite_round,
    compute_padding,
    multiply_by_quantized_multiplier,
    per_channel_multipliers,
    per_tensor_fc_multiplier,
    quantize_multiplier,
    softmax_params,
)


def _io(graph: Graph, op: Operator) -> tuple[list[Tensor | None], Tensor]:
    ins = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
    return ins, graph.tensors[op.outputs[0]]


def _hwc(t: Tensor) -> tuple[int, int, int]:
    _, h, w, c = t.shape
    return h, w, c


def _act(op: Operator, out: Tensor) -> tuple[int, int]:
    return activation_range(op.options.get("fused_activation_function", "NONE"), out.quant.scale[0], out.quant.zero_point[0])


def conv_scratch_bytes(in_c: int, out_c: int, k_pairs: int, out_pixels: int, add: bool = False,
                       wino: bool = False) -> int:
    """tq_conv2d_s8's scratch (tq_add: tq_conv2d_add_s8's; ``wino``: the Winograd conv's, w16 = 3) for a layer
    of ``out_pixels`` output pixels: the formulas of tinyq.compile.ops.scratch, which tq_params.h states in C."""
    f = scratch.conv_add if add else scratch.conv
    return f.eval(dict(in_c=in_c, out_c=out_c, k_pairs=k_pairs, out_h=out_pixels, out_w=1, w16=3 if wino else 0))


def conv_end_overlay(p: dict, in_bytes: int, out_bytes: int, group: int = 4) -> int:
    """Where tq_conv2d_s8's input may sit inside its own output buffer (the displacement, 4-aligned), or 0.

    The kernel takes output pixels four at a time, reads their whole input windows into its
    columns, then writes their outputs. With the input in the output buffer's last bytes, that
    is safe when no group's outputs reach an input row a later group reads. A model whose first
    layer widens a small input (KWS: 490 B in, 8,000 B out) then needs only the output's room.
    """
    d = (out_bytes - in_bytes) & ~3
    if d <= 0:
        return 0
    n = p["out_h"] * p["out_w"]
    row = p["in_w"] * p["in_c"]
    groups = range(0, n, group)  # the Winograd conv takes 8 (conv_winograd_ok)
    # The first input row each group's windows read (rows, not bytes: conservative).
    # Groups go in pixel order, so these never decrease: the next group's is the least any later reads.
    lo = [max(0, (g // p["out_w"]) * p["stride_h"] - p["pad_h"]) for g in groups]
    for i, g in enumerate(groups[:-1]):
        if min(g + group, n) * p["out_c"] > d + lo[i + 1] * row:
            return 0
    return d


def depthwise3x3_fused(params: dict) -> bool:
    """Whether tq_depthwise3x3_s8 requantizes in its inner loop (the parameters ride in the weight
    stream): the fast path with the full int8 range, the rule tq_depthwise3x3_s8 applies too."""
    return bool(params["fast"]) and (params["act_min"], params["act_max"]) == (-128, 127)


def conv_tile_biased(params: dict) -> bool:
    """Whether a conv with int16 weights takes the biased tile stream (layout.tile_stream, w16 = 2):
    every channel pair goes through the requantizing tile (the fast path with the full int8 range,
    an even channel count), the rule conv_body applies too."""
    return depthwise3x3_fused(params) and params["out_c"] % 2 == 0


def conv_winograd_ok(params: dict) -> bool:
    """Whether a conv can run as Winograd F(2, 3) along its rows (w16 = 3, layout.winograd_stream): 3x3,
    stride and dilation 1, one column of padding each side (the width kept), a width that is a
    multiple of 8 (the tile's 4 pairs of pixels), input channels a multiple of 4 (whole words), and
    the biased tile's requantization (conv_tile_biased)."""
    p = params
    return ((p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p["dil_h"], p["dil_w"]) == (3, 3, 1, 1, 1, 1)
            and p["pad_w"] == 1 and p["in_w"] == p["out_w"] and p["out_w"] % 8 == 0 and p["in_c"] % 4 == 0
            and p["depth_multiplier"] in (0, 1) and conv_tile_biased(p))


#: Border columns get weight streams of their own (depthwise3x3_edge) up to this output width: there
#: they are at least 1 pixel in 8, and the stream costs the layer's weight flash again.
EDGE_STREAM_MAX_W = 16
#: Each side's tq_conv_params_t field and the name of the call's ConstArray holding its stream.
EDGE_STREAMS = {"left": ("w_left", "wl"), "right": ("w_right", "wr")}


def has_edge_streams(call: KernelCall) -> bool:
    """Whether ``call`` carries weight streams for border columns (depthwise3x3_edge)."""
    return any(f == field for f, _ in call.params for field, _ in EDGE_STREAMS.values())


def depthwise3x3_edges(params: dict) -> tuple[str, ...]:
    """The sides ("left", "right") whose border column a fused 3x3 depthwise reads through a stream of
    its own: one kernel column outside the input, dilation 1, an input at least 3 wide, an output
    at least 2 wide (one pixel is not both) and at most EDGE_STREAM_MAX_W."""
    p = params
    if not depthwise3x3_fused(p) or p["dil_w"] != 1 or p["in_w"] < 3 or not 2 <= p["out_w"] <= EDGE_STREAM_MAX_W:
        return ()
    right_out = (p["out_w"] - 1) * p["stride_w"] - p["pad_w"] + 3 - p["in_w"]
    return tuple(side for side, ok in (("left", p["pad_w"] == 1), ("right", right_out == 1)) if ok)


def depthwise3x3_scratch_bytes(in_c: int, dil_w: int, fused: bool, small_patch: int = 0) -> int:
    """tq_depthwise3x3_s8's scratch (tinyq.compile.ops.scratch.depthwise3x3): ``fused``, it requantizes in its inner
    loop; ``small_patch`` = G, a patch of 9 words a group for G groups of 4 channels."""
    return scratch.depthwise3x3.eval(dict(in_c=in_c, dil_w=dil_w, fast=int(fused), act_min=-128 if fused else 0,
                                          act_max=127, small_patch=small_patch))


def depthwise3x3_plane_ok(params: dict) -> bool:
    """Whether a 3x3 depthwise (depth multiplier 1) runs channel-planar (tq_depthwise3x3_plane_s8): the
    fast path with the full int8 range, dilation 1, strides 1 or 2."""
    p = params
    return (depthwise3x3_fused(p) and (p["dil_h"], p["dil_w"]) == (1, 1)
            and p["stride_h"] in (1, 2) and p["stride_w"] in (1, 2))


#: Instructions on the M4 (QEMU), for the planner's choice of depthwise kernel. tq_dw3x3_plane
#: (tq_m4_dw_plane.S): four outputs of a stride-1 plane row (rows of two quads or more) and what such a row
#: adds to its setup; a row's last quad and a single after it as five outputs (less the setup of
#: the pairs and singles it skips); two outputs, one output (stride 2, or a stride-1 row's odd last
#: one) and what a row of singles adds, a plane row's setup; four gathered inputs, a gathered row's
#: setup; a channel (its setup in the kernel, which runs a layer's channels in one call); a zero point
#: written around the planes once a call.
PLANE_QUAD, PLANE_QUAD_ROW, PLANE_QUINT = 63, 8, 59
PLANE_PAIR, PLANE_SINGLE, PLANE_SINGLES_ROW, PLANE_ROW = 33, 20, 1, 24
PLANE_GATHER4, PLANE_GATHER1, PLANE_GATHER_ROW = 11, 5, 11
#: The same for two channels gathered together (planes 2): four inputs of each, one of each, a row.
PLANE_GATHER4_2, PLANE_GATHER1_2, PLANE_GATHER_ROW_2 = 17, 9, 12
PLANE_CHANNEL, PLANE_FILL = 43, 3
#: tq_depthwise3x3_s8 with its inner loop requantizing: a pixel's group of 4 channels (measured on the
#: official KWS and VWW layers: 105-121), and in a border column that has no weight stream of its
#: own, through a patch (the compact layout; measured on a 25x5x64 layer: about 300).
WINDOWED_GROUP, WINDOWED_PATCH = 110, 300


def _uv(p: dict, transposed: bool) -> tuple[dict, dict]:
    """A depthwise layer's (out, in, stride, pad) along a plane row (u) and across (v)."""
    h = dict(out=p["out_h"], inp=p["in_h"], s=p["stride_h"], pad=p["pad_h"])
    w = dict(out=p["out_w"], inp=p["in_w"], s=p["stride_w"], pad=p["pad_w"])
    return (h, w) if transposed else (w, h)


def rq_z(params: dict) -> bool:
    """Whether a layer's requantizing kernels take their _z form (tq_rq_z in tq_kernels.h): its output zero point
    is -128."""
    return params.get("output_offset") == -128


def depthwise3x3_plane_instructions(params: dict, transposed: bool | None = None) -> int:
    """The instructions tq_depthwise3x3_plane_s8 takes for one inference of a layer (a model of the code,
    within 1 % of QEMU's count on KWS). ``transposed``: as given, or the layer's own setting."""
    t = bool(params.get("transposed", 0)) if transposed is None else transposed
    p = dict(params, transposed=int(t))
    u, v = _uv(p, t)
    pw, ph = dw_plane_width(u["out"], u["s"]), (v["out"] - 1) * v["s"] + 3
    n_u, n_v = min(u["inp"], pw - u["pad"]), min(v["inp"], ph - v["pad"])
    pairs, singles = (u["out"] // 2, u["out"] % 2) if u["s"] == 1 else (0, u["out"])
    quads = pairs // 2 if pairs >= 4 else 0
    pairs -= 2 * quads
    quint = bool(quads) and pairs == 0 and singles == 1
    if quint:
        quads, singles = quads - 1, 0
    if p.get("planes", 1) == 2:  # a channel's share of a pair's gather
        gather = n_v * (PLANE_GATHER_ROW_2 + n_u // 4 * PLANE_GATHER4_2 + n_u % 4 * PLANE_GATHER1_2) / 2
    else:
        gather = n_v * (PLANE_GATHER_ROW + n_u // 4 * PLANE_GATHER4 + n_u % 4 * PLANE_GATHER1)
    z = rq_z(p)  # tq_dw3x3_plane_z: an instruction less an output, 3 less a pair
    rows = v["out"] * (PLANE_ROW + (quads * (PLANE_QUAD - 4 * z) + PLANE_QUAD_ROW if quads else 0)
                       + quint * (PLANE_QUINT - 5 * z) + pairs * (PLANE_PAIR - 3 * z) + singles * (PLANE_SINGLE - z)
                       + (PLANE_SINGLES_ROW if singles else 0))
    fill = depthwise3x3_plane_scratch_bytes(p) // 2  # every int16 of the planes, once a call
    return int(PLANE_FILL * fill + p["in_c"] * (PLANE_CHANNEL + gather + rows))


def depthwise3x3_windowed_instructions(params: dict) -> int:
    """The same for tq_depthwise3x3_s8 (fused: the fast path with the full int8 range; a fitted figure,
    within 15 %): border columns without a stream of their own (``params`` has no w_left / w_right)
    go through a patch."""
    p = params
    edges = depthwise3x3_edges(p)
    left = sum(1 for ox in range(p["out_w"]) if ox * p["stride_w"] - p["pad_w"] < 0)
    right = sum(1 for ox in range(left, p["out_w"])
                if ox * p["stride_w"] - p["pad_w"] + 2 * p["dil_w"] >= p["in_w"])
    patched = (0 if "w_left" in p and "left" in edges else left) + (0 if "w_right" in p and "right" in edges else right)
    groups = p["out_h"] * -(-p["in_c"] // 4)
    z = 4 * rq_z(p)  # tq_dw3x3_rq_row_z: an instruction less an output
    return groups * ((WINDOWED_GROUP - z) * (p["out_w"] - patched) + WINDOWED_PATCH * patched)


def depthwise3x3_plane_transposed(params: dict) -> bool:
    """Whether the planes of a channel-planar depthwise run down the columns: where that takes fewer
    instructions (KWS's 25x5 maps: rows of 25 outputs, 12 pairs and one single, not of 5)."""
    return depthwise3x3_plane_instructions(params, True) < depthwise3x3_plane_instructions(params, False)


def dw_plane_width(out: int, stride: int) -> int:
    """A plane row's int16 inputs (tinyq.compile.ops.scratch.dw_plane_width): every window of the row, and every
    two-word load."""
    return scratch.dw_plane_width.eval(None, out, stride)


def depthwise3x3_plane_scratch_bytes(params: dict) -> int:
    """tq_depthwise3x3_plane_s8's scratch (tinyq.compile.ops.scratch.dw_plane): one channel's plane, or with
    ``planes`` 2 two, the second sharing the first's last row where both are zero points."""
    return scratch.dw_plane.eval(params)


def depthwise3x3_plane_call(graph: Graph, op: Operator, planes: int = 1) -> KernelCall | None:
    """``op`` (a DEPTHWISE_CONV_2D) lowered to the channel-planar kernel, or None where it does not apply.
    The planner picks between it and the windowed tq_depthwise3x3_s8 (tinyq.compile.plan.planar_depthwise).
    ``planes`` 2: two channels gathered together into two planes (an even channel count; None otherwise)."""
    if op.opcode != "DEPTHWISE_CONV_2D":
        return None
    call = lower_conv(graph, op, planar=True, planes=planes)
    return call if call.function == "tq_depthwise3x3_plane_s8" and dict(call.params)["planes"] == planes else None


@lowering("CONV_2D", "DEPTHWISE_CONV_2D", operands=Operands(inputs=(2, 3), constant=(1, 2), bias=2))
def lower_conv(graph: Graph, op: Operator, planar: bool = False, planes: int = 1) -> KernelCall:
    (x, w, *rest), y = _io(graph, op)
    bias = rest[0] if rest else None
    in_h, in_w, in_c = _hwc(x)
    out_h, out_w, out_c = _hwc(y)
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    k_h, k_w = (w.shape[1], w.shape[2])
    o = op.options
    s_h, s_w = o.get("stride_h", 1), o.get("stride_w", 1)
    d_h, d_w = o.get("dilation_hfactor", 1), o.get("dilation_wfactor", 1)
    mult, shift = per_channel_multipliers(x.quant.scale[0], w.quant.scale, y.quant.scale[0], out_c)
    act_min, act_max = _act(op, y)
    zp_in, zp_out = x.quant.zero_point[0], y.quant.zero_point[0]
    dm = out_c // in_c if depthwise else 1
    # The weights each output channel sums over: (out_c, taps).
    w_rows = w.data.reshape(k_h * k_w, out_c).T if depthwise else w.data.reshape(out_c, -1)
    b_all = bias.data if bias is not None else None
    tail = () if depthwise or (k_h, k_w) != (1, 1) else const_tail(w_rows, b_all, zp_in, mult, shift, zp_out,
                                                                      act_min, act_max)
    run = out_c - len(tail)  # the channels computed; the rest are written as the constants they are
    fast, chan = channel_params(w_rows[:run], None if b_all is None else b_all[:run], zp_in, mult[:run], shift[:run],
                                zp_out)
    k_pairs = 0 if depthwise else padded_k(w_rows.shape[1]) // 2
    params = (
        ("in_h", in_h), ("in_w", in_w), ("in_c", in_c),
        ("out_h", out_h), ("out_w", out_w), ("out_c", out_c),
        ("k_h", k_h), ("k_w", k_w), ("stride_h", s_h), ("stride_w", s_w),
        ("dil_h", d_h), ("dil_w", d_w),
        ("pad_h", compute_padding(s_h, d_h, in_h, k_h, out_h)),
        ("pad_w", compute_padding(s_w, d_w, in_w, k_w, out_w)),
        ("depth_multiplier", dm), ("k_pairs", k_pairs), ("pad_value", zp_in), ("fast", int(fast)),
        ("output_offset", zp_out), ("act_min", act_min), ("act_max", act_max),
        ("chan", "@chan"), ("scratch", "$scratch"),
    ) + ((("const_tail", len(tail)), ("tail", "@tail")) if tail else ())
    macs = out_h * out_w * run * k_h * k_w * (1 if depthwise else in_c)
    # A pointwise conv that does not widen reads each group of 4 pixels into its columns
    # before writing their outputs, which never reach past that group's input bytes.
    inplace = (not depthwise and (k_h, k_w, s_h, s_w) == (1, 1, 1, 1) and (out_h, out_w) == (in_h, in_w)
               and in_c % 4 == 0 and out_c <= in_c)
    inplace_scratch = 0
    end_overlay = 0
    edge_arrays: tuple[ConstArray, ...] = ()
    chan_array = ConstArray("chan", "tq_chan_t", chan)
    consumed = (bias.index,) if bias is not None else ()
    if planar and depthwise and (k_h, k_w, dm) == (3, 3, 1) and depthwise3x3_plane_ok(dict(params)):
        # One channel at a time through an int16 plane: in place whatever the stride (a channel's
        # outputs land only on its own bytes, which its plane already holds).
        transposed = int(depthwise3x3_plane_transposed(dict(params)))
        params += (("transposed", transposed), ("planes", planes if planes == 2 and in_c % 2 == 0 else 1))
        params = tuple((f, "NULL" if f == "chan" else v) for f, v in params)
        function, chan_array, inplace = "tq_depthwise3x3_plane_s8", None, True
        filt = ConstArray("w", "uint32_t", depthwise3x3_planes(w.data, chan, bool(transposed)))
        scratch = depthwise3x3_plane_scratch_bytes(dict(params))
    elif depthwise and (k_h, k_w, dm) == (3, 3, 1) and in_c % 4 == 0:
        # Fast path with the full int8 range: the parameters ride in the weight stream.
        fused = depthwise3x3_fused(dict(params))
        words = depthwise3x3_words(w.data, chan if fused else None)
        # Sums (unless requantized in the inner loop), a 3x3 patch, and a row of zero points
        # as long as a kernel row reaches.
        scratch = depthwise3x3_scratch_bytes(in_c, d_w, fused)
        # Stride 1, same size: it can run in place, output rows held back in a ring of
        # dil_h + 1 rows until no later output row reads the input row they replace.
        if (s_h, s_w) == (1, 1) and (out_h, out_w) == (in_h, in_w):
            inplace, inplace_scratch = True, (d_h + 1) * out_w * out_c
        function, filt = "tq_depthwise3x3_s8", ConstArray("w", "uint32_t", words)
        if fused:
            chan_array = None
            params = tuple((f, "NULL" if f == "chan" else v) for f, v in params)
            edges = depthwise3x3_edges(dict(params))
            edge_arrays = tuple(ConstArray(EDGE_STREAMS[side][1], "uint32_t",
                                           depthwise3x3_edge(w.data, chan, zp_in, side)) for side in edges)
            params += tuple((EDGE_STREAMS[side][0], "@" + EDGE_STREAMS[side][1]) for side in edges)
    elif depthwise:
        function, filt, scratch = "tq_depthwise_conv2d_s8", None, 0
    else:
        # 4 int16 columns a K-pair, then a byte row for border rows of unaligned channel
        # counts, then the output of a partial pixel group (see conv_body).
        function, filt = "tq_conv2d_s8", ConstArray("w", "uint32_t", pair_rows(w_rows[:run], 2))
        scratch = conv_scratch_bytes(in_c, out_c, k_pairs, out_h * out_w)
        prm = dict(params)
        end_overlay = conv_end_overlay(prm, x.nbytes, y.nbytes) if not inplace else 0
    return KernelCall(
        function=function,
        params_type="tq_conv_params_t",
        params=params if scratch else tuple((f, "NULL" if f == "scratch" else v) for f, v in params),
        args=(x.index, "@w" if filt else w.index, y.index),
        arrays=tuple(a for a in (chan_array, filt) if a is not None) + edge_arrays
        + ((ConstArray("tail", "int8_t", tail),) if tail else ()),
        macs=macs,
        scratch_bytes=scratch,
        consumes=consumed + ((w.index,) if filt else ()),
        overwrites=(x.index,) if inplace else (),
        inplace_scratch=inplace_scratch,
        end_overlay=end_overlay if function == "tq_conv2d_s8" else 0,
    )


#: A 1x1 conv writes its trailing constant channels (tinyq.compile.dead_channels puts a space's constant channels
#: last) without computing them, this many at a time (whole words) and leaving at least this many computed.
CONST_TAIL_UNIT = 4


def const_tail(w_rows, bias, zp_in: int, mult, shift, zp_out: int, act_min: int, act_max: int) -> tuple[int, ...]:
    """The values of a conv's trailing output channels that hold one value for every input
    (layout.channel_constant), a multiple of CONST_TAIL_UNIT of them, at least that many left computed."""
    out_c = len(w_rows)
    vals = []
    for c in range(out_c - 1, CONST_TAIL_UNIT - 1, -1):
        v = channel_constant(w_rows[c], 0 if bias is None else bias[c], zp_in, int(mult[c]), int(shift[c]), zp_out,
                             act_min, act_max)
        if v is None:
            break
        vals.append(v)
    n = len(vals) // CONST_TAIL_UNIT * CONST_TAIL_UNIT
    return tuple(reversed(vals[:n]))


@lowering("FULLY_CONNECTED", operands=Operands(inputs=(2, 3), constant=(1, 2), bias=2))
def lower_fc(graph: Graph, op: Operator) -> KernelCall:
    (x, w, *rest), y = _io(graph, op)
    bias = rest[0] if rest else None
    out_depth, depth = w.shape
    rows = x.size // depth
    if len(w.quant.scale) > 1:
        mult, shift = per_channel_multipliers(x.quant.scale[0], w.quant.scale, y.quant.scale[0], out_depth)
    else:
        m, s = per_tensor_fc_multiplier(x.quant.scale[0], w.quant.scale[0], y.quant.scale[0])
        mult, shift = [m] * out_depth, [s] * out_depth
    act_min, act_max = _act(op, y)
    fast, chan = channel_params(w.data, bias.data if bias is not None else None, x.quant.zero_point[0], mult, shift,
                                y.quant.zero_point[0])
    k_pairs = padded_k(depth) // 2
    return KernelCall(
        function="tq_fully_connected_s8",
        params_type="tq_fc_params_t",
        params=(
            ("rows", rows), ("in_depth", depth), ("out_depth", out_depth), ("k_pairs", k_pairs), ("fast", int(fast)),
            ("output_offset", y.quant.zero_point[0]), ("act_min", act_min), ("act_max", act_max),
            ("chan", "@chan"), ("scratch", "$scratch"),
        ),
        args=(x.index, "@w", y.index),
        arrays=(ConstArray("chan", "tq_chan_t", chan), ConstArray("w", "uint32_t", pair_rows(w.data, 4))),
        macs=rows * out_depth * depth,
        scratch_bytes=4 * k_pairs,
        consumes=(w.index,) + ((bias.index,) if bias is not None else ()),
    )


@lowering("MAX_POOL_2D", "AVERAGE_POOL_2D")
def lower_pool(graph: Graph, op: Operator) -> KernelCall:
    (x,), y = _io(graph, op)
    in_h, in_w, c = _hwc(x)
    out_h, out_w, _ = _hwc(y)
    o = op.options
    k_h, k_w, s_h, s_w = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
    act_min, act_max = _act(op, y)
    return KernelCall(
        function="tq_max_pool_s8" if op.opcode == "MAX_POOL_2D" else "tq_avg_pool_s8",
        params_type="tq_pool_params_t",
        params=(
            ("in_h", in_h), ("in_w", in_w), ("c", c), ("out_h", out_h), ("out_w", out_w),
            ("k_h", k_h), ("k_w", k_w), ("stride_h", s_h), ("stride_w", s_w),
            ("pad_h", compute_padding(s_h, 1, in_h, k_h, out_h)),
            ("pad_w", compute_padding(s_w, 1, in_w, k_w, out_w)),
            ("act_min", act_min), ("act_max", act_max),
        ),
        args=(x.index, y.index),
    )


def strided_pointwise(graph: Graph, op: Operator) -> bool:
    """A CONV_2D with a 1x1 kernel and a stride above 1: it reads only every stride-th pixel of
    its input (a 1x1 window never pads), so it can run at stride 1 on those pixels."""
    if op.opcode != "CONV_2D":
        return False
    w = graph.tensors[op.inputs[1]]
    o = op.options
    return tuple(w.shape[1:3]) == (1, 1) and (o.get("stride_h", 1), o.get("stride_w", 1)) != (1, 1)


def subsample_call(x: Tensor, y: Tensor, s_h: int, s_w: int) -> KernelCall:
    """``y = x[::s_h, ::s_w]`` (tq_subsample_s8): the pixels a strided 1x1 conv reads."""
    in_h, in_w, c = _hwc(x)
    out_h, out_w, _ = _hwc(y)
    return KernelCall(
        function="tq_subsample_s8",
        params_type="tq_pool_params_t",
        params=(
            ("in_h", in_h), ("in_w", in_w), ("c", c), ("out_h", out_h), ("out_w", out_w),
            ("k_h", 1), ("k_w", 1), ("stride_h", s_h), ("stride_w", s_w), ("pad_h", 0), ("pad_w", 0),
            ("act_min", -128), ("act_max", 127),
        ),
        args=(x.index, y.index),
    )


def _shape4(shape) -> tuple[int, ...]:
    return (1,) * (4 - len(shape)) + tuple(shape)


def _c_array(values) -> str:
    return "{" + ", ".join(f"{int(v)}u" for v in values) + "}"


def broadcast_strides(in_shape, out_shape) -> tuple[int, ...]:
    """Element strides of an input per output axis (4-D, NHWC), 0 where the input is broadcast."""
    s_in, s_out = _shape4(in_shape), _shape4(out_shape)
    strides, step = [0] * 4, 1
    for ax in range(3, -1, -1):
        strides[ax] = 0 if s_in[ax] == 1 and s_out[ax] != 1 else step
        step *= s_in[ax]
    return tuple(strides)


def _bcast_fields(a: Tensor, b: Tensor, y: Tensor) -> tuple[tuple[str, object], ...]:
    return (("out", _c_array(_shape4(y.shape))), ("stride1", _c_array(broadcast_strides(a.shape, y.shape))),
            ("stride2", _c_array(broadcast_strides(b.shape, y.shape))))


def _add_multipliers(a: Tensor, b: Tensor, y: Tensor):
    left_shift = 20
    s1, s2, so = a.quant.scale[0], b.quant.scale[0], y.quant.scale[0]
    # add_common.cc: the max is taken over the float32 scales, then doubled in double.
    twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(so)))
    return left_shift, (m1, sh1), (m2, sh2), (mo, sho)


def add_table_params(graph: Graph, op: Operator, first: int) -> tuple[tuple, tuple[ConstArray, ...]]:
    """Fields of ``tq_addtab_params_t`` and its two tables for a same-shape ADD, input ``first`` as in1.

    TFLite scales each input on its own (offset, << 20, one multiplier) before the sum, so
    each input's scaled value is a function of its byte: a 256-entry table per input, and
    one requantization of the sum (the fast path where proven, tables then doubled).
    """
    (a, b), y = _io(graph, op)
    left_shift, (m1, sh1), (m2, sh2), (mo, sho) = _add_multipliers(a, b, y)

    def table(t: Tensor, mult: int, shift: int) -> list[int]:
        return [multiply_by_quantized_multiplier((v - t.quant.zero_point[0]) << left_shift, mult, shift)
                for v in range(-128, 128)]

    t1, t2 = table(a, m1, sh1), table(b, m2, sh2)
    if first != a.index:
        t1, t2 = t2, t1
    zp = y.quant.zero_point[0]
    fast = fast_ok(max(map(abs, t1)) + max(map(abs, t2)), mo, sho, zp)
    if fast:
        t1, t2 = [2 * v for v in t1], [2 * v for v in t2]
        out = (0, fast_rnd(sho, zp), mo, -sho)
    else:
        out = (0, 0, mo, sho)
    act_min, act_max = _act(op, y)
    fields = (("size", y.size), ("t1", "@t1 + 128"), ("t2", "@t2 + 128"), ("out", "{" + ", ".join(map(str, out)) + "}"),
              ("fast", int(fast)), ("output_offset", zp), ("act_min", act_min), ("act_max", act_max))
    return fields, (ConstArray("t1", "int32_t", tuple(t1)), ConstArray("t2", "int32_t", tuple(t2)))


#: The smallest same-shape ADD that takes the table kernel: its two 256-entry int32 tables are 2 KB of flash, more
#: than the direct kernel's few instructions an element save on a smaller tensor (an unrolled GRU has hundreds
#: of 16- to 128-element ADDs: tinyq.model.recurrent).
ADD_TABLE_MIN_SIZE = 256


@lowering("ADD", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_add(graph: Graph, op: Operator) -> KernelCall:
    """A same-shape ADD by tables (tq_add_s8); a broadcasting one by the binary ops' broadcast loop
    (tinyq.compile.ops.kernels.binary, tq_add_bcast_s8)."""
    (a, b), y = _io(graph, op)
    if tuple(a.shape) == tuple(b.shape) and y.size >= ADD_TABLE_MIN_SIZE:
        fields, arrays = add_table_params(graph, op, a.index)
        return KernelCall(overwrites=(a.index, b.index), function="tq_add_s8", params_type="tq_addtab_params_t", params=fields,
                          args=(a.index, b.index, y.index), arrays=arrays)
    from dataclasses import replace

    from tinyq.compile.ops.kernels.binary import lower_add_broadcast

    call = lower_add_broadcast(graph, op)
    # Same shapes: element o reads only element o of each input, so it runs in place as the table kernel does.
    return replace(call, overwrites=(a.index, b.index)) if tuple(a.shape) == tuple(b.shape) else call


@lowering("RESHAPE", operands=Operands(inputs=(1, 2), integer=(1,), max_rank=None, any_batch=True))
def lower_reshape(graph: Graph, op: Operator) -> KernelCall:
    # NHWC data is the same bytes in any shape: the planner gives the output the
    # input's buffer, and the copy kernel returns at once when the pointers match.
    # Bytes, not elements: a reshaped tensor of int32 indices (ARG_MAX's) is 4 bytes an element.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return KernelCall("tq_copy_s8", None, (), (x.index, y.index), lead_args=(f"{y.nbytes}u",), alias=True)


@lowering("SOFTMAX")
def lower_softmax(graph: Graph, op: Operator) -> KernelCall:
    (x,), y = _io(graph, op)
    depth = x.shape[-1]
    mult, left_shift, diff_min = softmax_params(float(op.options.get("beta", 1.0)), x.quant.scale[0])
    return KernelCall(
        function="tq_softmax_s8",
        params_type="tq_softmax_params_t",
        params=(("rows", x.size // depth), ("depth", depth), ("input_mult", mult),
                ("input_left_shift", left_shift), ("diff_min", diff_min)),
        args=(x.index, y.index),
    )


@lowering("MUL", operands=Operands(inputs=(2, 2), broadcast=True))
def lower_mul(graph: Graph, op: Operator) -> KernelCall:
    (a, b), y = _io(graph, op)
    # mul_common.cc: double(s1) * double(s2) / double(s_out)
    mult, shift = quantize_multiplier(float(a.quant.scale[0]) * float(b.quant.scale[0]) / float(y.quant.scale[0]))
    act_min, act_max = _act(op, y)
    return KernelCall(
        overwrites=(a.index, b.index) if tuple(a.shape) == tuple(b.shape) else (),
        function="tq_mul_s8",
        params_type="tq_mul_params_t",
        params=(*_bcast_fields(a, b, y), ("input1_offset", -a.quant.zero_point[0]),
                ("input2_offset", -b.quant.zero_point[0]), ("output_offset", y.quant.zero_point[0]),
                ("mult", mult), ("shift", shift), ("act_min", act_min), ("act_max", act_max)),
        args=(a.index, b.index, y.index),
    )


@lowering("RELU6")
def lower_relu6(graph: Graph, op: Operator) -> KernelCall:
    """TFLM's Relu6: a clamp to [zero point, quantized 6] of the input's scale (output shares it)."""
    (x,), y = _io(graph, op)
    zp, scale = x.quant.zero_point[0], x.quant.scale[0]
    six = max(-128, min(127, tflite_round(float(np.float32(6.0) / np.float32(scale))) + zp))
    return KernelCall("tq_clamp_s8", None, (), (x.index, y.index), lead_args=(f"{y.size}u", str(zp), str(six)),
                      overwrites=(x.index,))


@lowering("CONCATENATION", operands=Operands(inputs=(1, MANY), max_rank=6, any_batch=True))
def lower_concat(graph: Graph, op: Operator) -> KernelCall:
    # TFLM concatenates int8 tensors as bytes (the converter gives them one scale).
    ins = [graph.tensors[i] for i in op.inputs]
    y = graph.tensors[op.outputs[0]]
    axis = op.options.get("axis", 0) % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = tuple(int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins)
    act_min, act_max = _act(op, y)
    if (act_min, act_max) != (-128, 127):
        raise ValueError("fused activation on CONCATENATION")
    for t in ins:  # TFLM's Prepare refuses an int8 input quantized otherwise than the output (no requantization)
        if t.quant is None or y.quant is None or (t.quant.scale[0], t.quant.zero_point[0]) != \
                (y.quant.scale[0], y.quant.zero_point[0]):
            from tinyq.errors import UnsupportedModelError

            raise UnsupportedModelError(
                f"op {op.index} CONCATENATION: input '{t.name}' is quantized "
                f"{None if t.quant is None else (t.quant.scale[0], t.quant.zero_point[0])} (scale, zero point), the "
                f"output {None if y.quant is None else (y.quant.scale[0], y.quant.zero_point[0])}",
                hint="TFLM concatenates int8 inputs of the output's quantization only (TFLite's converter gives them "
                     "it): re-convert the model")
    return KernelCall(
        function="tq_concat_s8",
        params_type="tq_concat_params_t",
        params=(("outer", outer), ("n", len(ins)), ("chunk", "@chunk")),
        args=(*(t.index for t in ins), y.index),
        arrays=(ConstArray("chunk", "uint32_t", chunks),),
        pack_inputs=True,
    )


@lowering("MEAN", operands=Operands(inputs=(2, 2), constant=(1,), integer=(1,)))
def lower_mean(graph: Graph, op: Operator) -> KernelCall:
    """QuantizedMeanOrSum: multiplier in/out scale, then 1/count folded in as TFLite does."""
    x, axes_t, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    shape = _shape4(x.shape)
    pad = 4 - len(x.shape)
    axes = {int(a) % len(x.shape) + pad for a in np.asarray(axes_t.data).ravel()}
    kept = [d for d in range(4) if d not in axes]
    strides, step = [0] * 4, 1
    for d in reversed(kept):
        strides[d] = step
        step *= shape[d]
    count = int(np.prod([shape[d] for d in axes], dtype=np.int64))
    mult, shift = quantize_multiplier(float(x.quant.scale[0]) / float(y.quant.scale[0]))
    sh = min(count.bit_length() - 1, 32, 31 + shift)
    return mean_call(x, y, shape, strides, count, (mult << sh) // count, shift - sh)


def mean_call(x: Tensor, y: Tensor, shape, strides, count: int, mult: int, shift: int) -> KernelCall:
    """tq_mean_s8 over ``x`` (4-D ``shape``; ``strides``: the output step of each input axis, 0 on reduced
    ones) into ``y``: int32 sums of ``count`` inputs less their zero points, one requantization (MEAN: 1/count
    folded in; SUM: none)."""
    return KernelCall(
        function="tq_mean_s8",
        params_type="tq_mean_params_t",
        params=(("in", _c_array(shape)), ("out_stride", _c_array(strides)), ("outputs", y.size), ("count", count),
                ("input_zp", x.quant.zero_point[0]), ("output_zp", y.quant.zero_point[0]), ("mult", mult),
                ("shift", shift), ("sums", "$scratch")),
        args=(x.index, y.index),
        scratch_bytes=4 * y.size,
    )
