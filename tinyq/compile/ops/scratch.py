"""The scratch the kernels ask for, in bytes: each formula stated once, here (tinyq.compile.ops.cexpr).

The planner evaluates them (through tinyq.compile.ops.lower_ops' conv_scratch_bytes and the like); tq_params.h
carries each as a generated C function of the same name, which the device calls where it needs the
figure (tq_depthwise3x3_plane_s8 fills its planes) and tests/test_plan.py's harness compares.
"""

from __future__ import annotations

from tinyq.compile.ops.cexpr import both, formula, select, smaller


@formula("tq_conv2d_wino_scratch_bytes", "tq_conv_params_t", args=("add",),
         doc="The Winograd conv (w16 = 3): a group of 8 output pixels' transformed inputs, 4 phases of\n"
             "3 * in_c / 2 K-pairs of 4 columns (96 bytes an input channel), and with a fused ADD the group's\n"
             "output before the sum.")
def conv_wino(v, add):
    return 96 * v.in_c + select(add, 8 * v.out_c, 0)


@formula("tq_conv2d_scratch_bytes", "tq_conv_params_t",
         doc="tq_conv2d_s8: 4 int16 columns a K-pair, for unaligned channel counts 4 byte patches (one a pixel of a\n"
             "group) and 4 bytes of slack, and the output of a partial group of pixels.")
def conv(v):
    return select(v.w16 == 3, conv_wino(v, 0), 16 * v.k_pairs + select(v.in_c % 4, 8 * v.k_pairs + 4, 0)
                  + select((v.out_h * v.out_w) % 4, 4 * v.out_c, 0))


@formula("tq_conv2d_add_scratch_bytes", "tq_conv_params_t",
         doc="tq_conv2d_add_s8: as tq_conv2d_s8, every group of 4 pixels going through the tail buffer.")
def conv_add(v):
    return select(v.w16 == 3, conv_wino(v, 1), 16 * v.k_pairs + select(v.in_c % 4, 8 * v.k_pairs + 4, 0) + 4 * v.out_c)


@formula("tq_depthwise3x3_scratch_bytes", "tq_conv_params_t",
         doc="tq_depthwise3x3_s8: the sums (unless requantized in the inner loop: the fast path with the full\n"
             "int8 range), a 3x3 patch and a row of zero points as long as a kernel row reaches; with\n"
             "small_patch = G, a patch of 9 words a group for G groups of 4 channels instead of both.")
def depthwise3x3(v):
    fused = v.let("fused", both(v.fast, v.act_min == -128, v.act_max == 127))
    return select(fused, 0, 4 * v.in_c) + select(v.small_patch, 36 * v.small_patch,
                                                 9 * v.in_c + (2 * v.dil_w + 1) * v.in_c)


@formula("tq_dw_plane_width", args=("out", "stride"),
         doc="The channel-planar 3x3 depthwise (tq_depthwise3x3_plane_s8) works along plane rows: the output's\n"
             "width, or its height when `transposed`. Each plane row holds the inputs one output row's window\n"
             "slides over, as int16, padded with the zero point: (out - 1) * stride + 3 of them, rounded up so\n"
             "that every window's two-word load stays inside the row.")
def dw_plane_width(out, stride):
    return select(stride == 1, out + 2 + (out & 1), 2 * out + 2)


@formula("tq_dw_plane_share", "tq_conv_params_t", args=("rows",),
         doc="Its planes: each (out_v - 1) * stride_v + 3 rows of tq_dw_plane_width; with planes 2, the second\n"
             "starts at the first's last row (tq_dw_plane_share: 1) where both rows are zero points.")
def dw_plane_share(v, rows):
    t = v.let("t", v.transposed)
    in_v = v.let("in_v", select(t, v.in_w, v.in_h))
    pad_v = v.let("pad_v", select(t, v.pad_w, v.pad_h))
    n_v = v.let("n_v", smaller(in_v, rows - pad_v))  # the rows gathered
    return both(v.planes == 2, pad_v >= 1, pad_v + n_v < rows)


@formula("tq_depthwise3x3_plane_scratch_bytes", "tq_conv_params_t",
         doc="tq_depthwise3x3_plane_s8: one channel's plane, or with planes 2 two, the second sharing the\n"
             "first's last row where both are zero points.")
def dw_plane(v):
    t = v.let("t", v.transposed)
    out_u = v.let("out_u", select(t, v.out_h, v.out_w))
    out_v = v.let("out_v", select(t, v.out_w, v.out_h))
    s_u = v.let("s_u", select(t, v.stride_h, v.stride_w))
    s_v = v.let("s_v", select(t, v.stride_w, v.stride_h))
    rows = v.let("rows", (out_v - 1) * s_v + 3)
    return 2 * select(v.planes == 2, 2 * rows - dw_plane_share(v, rows), rows) * dw_plane_width(out_u, s_u)
