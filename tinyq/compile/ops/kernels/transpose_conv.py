"""TRANSPOSE_CONV, int8: TFLM's reference_integer_ops::TransposeConv, by gathering instead of scattering.

TFLM scatters: each input pixel times the whole kernel, added into an int32 copy of the output (a scratch of
4 bytes an output element), then requantized per channel. The sums are integers, so any order gives the same
int32; tinyq gathers. Output pixel (oy, ox) of a stride-s layer receives taps of one residue class of the
kernel: with r = (oy + pad) mod s, only the kernel rows r, r + s, r + 2s... land on it. So the output splits
into s_h * s_w phases (oy mod s_h, ox mod s_w), and each phase is an ordinary stride-1 convolution of the input
with its own sub-kernel (ceil((k - r) / s) taps a side, flipped). Each phase runs as tq_conv2d_s8 runs: four
output pixels of a phase row (s_w * out_c bytes apart in the output) gathered into im2col columns, and every
channel pair through the conv's SMLAD tile (tq_conv_tile: each weight word meets 4 pixels). That computes only
the taps that land (the scatter computes every tap and throws away those past the border), needs no int32
accumulator of the whole output, and requantizes each sum the moment it is complete.

Taps that fall outside the input read the input zero point, whose contribution each phase's folded bias takes
out (tq_chan_t): the sum is TFLM's sum over the taps in range, exactly. A layer whose kernel is smaller than
its stride leaves some phases no tap at all: their outputs are the requantized bias.
"""

from __future__ import annotations

import numpy as np

from tinyq.graph import Graph, Operator
from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering, op_macs
from tinyq.compile.ops.cexpr import formula, select
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.layout import channel_params, padded_k, pair_rows
from tinyq.compile.ops.quant import activation_range, compute_padding, per_channel_multipliers

PHASE = struct(Struct("tq_tconv_phase_t", (
    F("int32_t", "taps_h, taps_w", "the sub-kernel: taps down and across (0: no tap lands on this phase)"),
    F("int32_t", "y0, x0", "the flipped sub-kernel's tap (u, v) of output (m, n) reads input (m + y0 + u, n + x0 + v)"),
    F("int32_t", "k_pairs", "its patch taps_h * taps_w * in_c, padded to a multiple of 4, halved"),
    F("int32_t", "w_off", "where its weights (pair_rows) start in the filter, in words"),
    F("int32_t", "fast", "its chan rows take the fast requantization"),
), doc="One output phase of TRANSPOSE_CONV (tq_tconv_params_t.phases)."))

PARAMS = struct(Struct("tq_tconv_params_t", (
    F("uint16_t", "in_h, in_w, in_c"),
    F("uint16_t", "out_h, out_w, out_c"),
    F("uint16_t", "stride_h, stride_w"),
    F("uint16_t", "k_pairs", "the longest phase's patch, padded to a multiple of 4, halved"),
    F("uint16_t", "taps_w", "the widest phase's taps across"),
    F("int8_t", "pad_value", "the input zero point: what a tap outside the input reads"),
    F("int32_t", "output_offset", "output zero point"),
    F("int32_t", "act_min, act_max"),
    F("const tq_tconv_phase_t", "*phases", "stride_h * stride_w, row-major: phase (oy % stride_h, ox % stride_w)"),
    F("const tq_chan_t", "*chan", "out_c rows a phase, phase after phase (each folds its own taps' zero-point term)"),
    F("void", "*scratch", "4 im2col columns, then 4 byte patches (in_c % 4) or a strip, or a group's output"),
), doc="TRANSPOSE_CONV as stride_h * stride_w stride-1 convolutions, one an output phase (oy % stride_h,\n"
       "ox % stride_w): see tinyq/compile/ops/kernels/transpose_conv.py."))


@formula("tq_tconv_scratch_bytes", PARAMS.name,
         doc="tq_transpose_conv_s8: 4 int16 columns a K-pair (the longest phase's), then one area that holds, while\n"
             "the columns are built, the 4 pixels' byte patches (a channel count not a multiple of 4) or a border\n"
             "group's strip (the 4 pixels' runs of a kernel row: taps_w + 3 pixels), and after, a group\n"
             "of 4 output pixels (a phase row's last group).")
def tconv_scratch(v):
    build = v.let("build", select(v.in_c % 4, 8 * v.k_pairs, (v.taps_w + 3) * v.in_c))
    return 16 * v.k_pairs + select(build > 4 * v.out_c, build, 4 * v.out_c)


KERNEL = kernel(Kernel("tq_transpose_conv_s8", "transpose_conv", PARAMS.name,
                       "const int8_t *in, const uint32_t *filter, int8_t *out", opcodes=("TRANSPOSE_CONV",),
                       scratch=tconv_scratch,
                       doc="TRANSPOSE_CONV, int8, per-channel: each output phase a stride-1 conv (tq_conv_tile)."))


def phase_taps(out_index: int, pad: int, stride: int, k: int) -> tuple[int, int, int]:
    """(r, q, taps) of the output phase ``out_index`` (0 .. stride-1) along one axis: output o = out_index + s*m
    receives kernel taps r, r + s, ... (``taps`` of them, r = (out_index + pad) mod s), tap t from input
    m + q - t (q = (out_index + pad) div s), as TFLM's scatter out = in * s - pad + tap gives."""
    r, q = (out_index + pad) % stride, (out_index + pad) // stride
    return r, q, max(0, -(-(k - r) // stride))


def transpose_padding(stride: int, out_size: int, k: int, padding: str) -> int:
    """TFLM's transpose-conv padding: ComputePaddingHeightWidth with the *output* as the image size."""
    unused = (out_size + stride - 1) // stride if padding == "SAME" else (out_size + stride - k) // stride
    return compute_padding(stride, 1, out_size, k, unused)


@lowering("TRANSPOSE_CONV", operands=Operands(inputs=(3, 4), constant=(0, 1, 3), integer=(0,), bias=3))
def lower_transpose_conv(graph: Graph, op: Operator) -> KernelCall:
    t = graph.tensors
    w, x, y = t[op.inputs[1]], t[op.inputs[2]], t[op.outputs[0]]
    bias = t[op.inputs[3]] if len(op.inputs) > 3 and op.inputs[3] >= 0 else None
    _, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    _, k_h, k_w, _ = w.shape
    o = op.options
    s_h, s_w = o.get("stride_h", 1), o.get("stride_w", 1)
    pad = o.get("padding", "SAME")
    pad_h, pad_w = transpose_padding(s_h, out_h, k_h, pad), transpose_padding(s_w, out_w, k_w, pad)
    mult, shift = per_channel_multipliers(x.quant.scale[0], w.quant.scale, y.quant.scale[0], out_c)
    act_min, act_max = activation_range(o.get("fused_activation_function", "NONE"), y.quant.scale[0],
                                        y.quant.zero_point[0])
    zp_in, zp_out = int(x.quant.zero_point[0]), int(y.quant.zero_point[0])
    kernel4 = w.data.astype(np.int8)  # (out_c, k_h, k_w, in_c), TFLite's OHWI
    phases, chans, words = [], [], []
    for py in range(s_h):
        r_h, q_h, n_h = phase_taps(py, pad_h, s_h, k_h)
        for px in range(s_w):
            r_w, q_w, n_w = phase_taps(px, pad_w, s_w, k_w)
            # Tap (th, tw), kernel element (r_h + s_h th, r_w + s_w tw), reads input (m + q_h - th, n + q_w - tw):
            # flipped, the sub-kernel is an ordinary conv's, each kernel row one run of input pixels.
            sub = kernel4[:, r_h::s_h, r_w::s_w, :][:, :n_h, :n_w, :][:, ::-1, ::-1, :].reshape(out_c, -1)
            fast, chan = channel_params(sub, None if bias is None else bias.data, zp_in, mult, shift, zp_out)
            kp = padded_k(sub.shape[1]) // 2
            phases.append((n_h, n_w, q_h - (n_h - 1), q_w - (n_w - 1), kp, len(words), int(fast)))
            chans += chan
            words += pair_rows(sub, 2) if kp else ()
    k_pairs, taps_w = max(p[4] for p in phases), max(p[1] for p in phases)
    params = (("in_h", in_h), ("in_w", in_w), ("in_c", in_c), ("out_h", out_h), ("out_w", out_w), ("out_c", out_c),
              ("stride_h", s_h), ("stride_w", s_w), ("k_pairs", k_pairs), ("taps_w", taps_w), ("pad_value", zp_in),
              ("output_offset", zp_out), ("act_min", act_min), ("act_max", act_max),
              ("phases", "@phases"), ("chan", "@chan"), ("scratch", "$scratch"))
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=params,
        args=(x.index, "@w", y.index),
        arrays=(ConstArray("phases", PHASE.name, tuple(phases)),
                ConstArray("chan", "tq_chan_t", tuple(chans)),
                ConstArray("w", "uint32_t", tuple(words) or (0,))),
        macs=op_macs(graph, op),
        scratch_bytes=tconv_scratch.eval(dict(params)),
        consumes=(w.index,) + ((bias.index,) if bias is not None else ()),
    )

