"""The descriptors of tinyq's kernels (see tinyq.compile.ops.kernel): their parameter structs, in the order
tq_params.h declares them, and every kernel a lowering calls."""

from __future__ import annotations

from tinyq.compile.ops import lower_ops as lo
from tinyq.compile.ops import scratch
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct


def _s(*args, **kw) -> Struct:
    return struct(Struct(*args, **kw))


# ---- parameter structs ----

_s('tq_chan_t', (
    F('int32_t', 'bias'),
    F('int32_t', 'rnd'),
    F('int32_t', 'mult'),
    F('int32_t', 'shift'),
), doc="Requantization of one output channel, precomputed on the host.\n\nThe accumulator the kernels compute is sum(w * x) over the raw int8 inputs (padded\ntaps read the input zero point): TFLite's sum(w * (x - zp_in)) + bias is that plus\nbias - zp_in * sum(w), folded into `bias` here.\n\nfast (the layer's tq_*_params_t.fast is 1): TFLite's two roundings (the doubling\nhigh multiply, then the rounding right shift) and the output zero point collapse\ninto one SMMLAR and one arithmetic shift, exactly (see tq_rq_fast):\n  bias = 2 * folded bias, rnd = 2^(shift-1) + (zp_out << shift) (the -1 for\n  negative sums is added at run time), shift = the right shift (1..22).\nThe host enables it only where it proved that no intermediate can overflow;\notherwise (fast = 0) bias is the folded bias, shift is TFLite's signed shift, and\ntq_requant computes it the long way.", asm='TQ_CHAN'),
_s('tq_conv_params_t', (
    F('uint16_t', 'in_h, in_w, in_c'),
    F('uint16_t', 'out_h, out_w, out_c'),
    F('uint16_t', 'k_h, k_w'),
    F('uint16_t', 'stride_h, stride_w'),
    F('uint16_t', 'dil_h, dil_w'),
    F('uint16_t', 'pad_h, pad_w'),
    F('uint16_t', 'depth_multiplier', 'depthwise only'),
    F('uint16_t', 'k_pairs', 'conv: the patch length K padded to a multiple of 4, halved'),
    F('int8_t', 'pad_value', 'the input zero point: what a padded tap reads'),
    F('uint8_t', 'fast', 'requantization: 1 the fast path, 0 the exact long way'),
    F('int32_t', 'output_offset', 'output zero point'),
    F('int32_t', 'act_min, act_max'),
    F('const tq_chan_t', '*chan', 'per output channel'),
    F('void', '*scratch', 'conv: 4 im2col columns (+ a byte row); depthwise 3x3: sums + patch'),
    F('uint8_t', 'w16', "conv: weights stored as int16 pairs (twice the flash, no SXTB16); 2: the biased tile stream (tinyq.compile.ops.layout.tile_stream): each channel pair's weights doubled, after 8 words of its biases; 3: a 3x3 stride-1 conv by Winograd F(2, 3) along the rows (tinyq.compile.ops.layout.winograd_stream, tq_wino_tile)"),
    F('uint8_t', 'small_patch', '3x3 depthwise: border pixels this many groups of 4 channels at a time through a 36-byte-a-group patch (0: all; less scratch, a little slower)'),
    F('const uint32_t', '*w_left, *w_right', before="3x3 depthwise requantizing in its inner loop: the weight streams of its left and right border columns (NULL: none), for a window shifted to the input's first / last 3 columns with the tap that would fall outside weighted 0 and its zero-point term in the bias (tinyq.compile.ops.layout.depthwise3x3_edge), so those pixels need no patch."),
    F('uint8_t', 'transposed', before="tq_depthwise3x3_plane_s8: 1 the planes run down the columns (the sliding window's long axis is the height), 0 along the rows."),
    F('uint8_t', 'planes', before='tq_depthwise3x3_plane_s8: 2 two channels gathered together into two planes (an even channel count: each input halfword read gives both), else 1.'),
    F('uint16_t', 'const_tail', before='conv (1x1): the last const_tail output channels hold one value for every input (tinyq.dead_channels puts them last), written from `tail` instead of computed; the weights, biases and chan rows are those of the out_c - const_tail channels computed. A multiple of 4, at most out_c - 4.'),
    F('const int8_t', '*tail'),
)),
_s('tq_fc_params_t', (
    F('uint16_t', 'rows', 'batch rows of the input'),
    F('uint16_t', 'in_depth, out_depth'),
    F('uint16_t', 'k_pairs', 'in_depth padded to a multiple of 4, halved'),
    F('uint8_t', 'fast'),
    F('int32_t', 'output_offset'),
    F('int32_t', 'act_min, act_max'),
    F('const tq_chan_t', '*chan', 'per output channel (per-tensor: all equal multipliers)'),
    F('int32_t', '*scratch', 'k_pairs words: the input row as int16 pairs'),
    F('uint8_t', 'w16', 'weights stored as int16 pairs (twice the flash, no SXTB16)'),
)),
_s('tq_pool_params_t', (
    F('uint16_t', 'in_h, in_w, c'),
    F('uint16_t', 'out_h, out_w'),
    F('uint16_t', 'k_h, k_w'),
    F('uint16_t', 'stride_h, stride_w'),
    F('uint16_t', 'pad_h, pad_w'),
    F('int32_t', 'act_min, act_max'),
)),
_s('tq_addtab_params_t', (
    F('uint32_t', 'size'),
    F('const int32_t', '*t1, *t2'),
    F('tq_chan_t', 'out'),
    F('uint8_t', 'fast'),
    F('int32_t', 'output_offset'),
    F('int32_t', 'act_min, act_max'),
), doc="Same-shape ADD by tables: TFLite scales each input on its own before the sum, so input k's\nscaled value is tk[x] (x in -128..127; the pointers point at entry 0). The sum is then\nrequantized by `out` (bias 0): on the fast path the tables hold doubled values and `out`\nis tq_rq_fast's rnd/mult/shift with the zero point inside, otherwise TFLite's mult/shift.", asm='TQ_ADDTAB'),
_s('tq_softmax_params_t', (
    F('uint16_t', 'rows, depth'),
    F('int32_t', 'input_mult, input_left_shift, diff_min'),
)),
_s('tq_mul_params_t', (
    F('uint16_t', 'out[4]', 'output shape, NHWC'),
    F('uint32_t', 'stride1[4], stride2[4]', 'input strides per output axis, 0 where broadcast'),
    F('int32_t', 'input1_offset, input2_offset, output_offset'),
    F('int32_t', 'mult, shift', 'MUL: one requantization of the product'),
    F('int32_t', 'act_min, act_max'),
)),
_s('tq_concat_params_t', (
    F('uint32_t', 'outer', 'product of the dims before the axis'),
    F('uint16_t', 'n', 'inputs'),
    F('const uint32_t', '*chunk', 'bytes each input contributes per outer step'),
)),
_s('tq_mean_params_t', (
    F('uint16_t', 'in[4]', 'input shape (4-D)'),
    F('uint32_t', 'out_stride[4]', 'output index step per input axis, 0 on reduced axes'),
    F('uint32_t', 'outputs, count', 'output elements; input elements per output'),
    F('int32_t', 'input_zp, output_zp'),
    F('int32_t', 'mult, shift', 'in_scale / out_scale, with 1/count folded in'),
    F('int32_t', '*sums', 'outputs int32 of scratch'),
)),
_s('tq_conv_tile_t', (
    F('const uint32_t', '*w', "the first pair's weights; the pairs follow each other"),
    F('const int32_t', '*cols, *cols_end'),
    F('const tq_chan_t', '*chan'),
    F('int8_t', '*out'),
    F('int32_t', 'out_stride'),
    F('uint32_t', 'pairs', '>= 1'),
), doc='Every channel pair of a group of 4 pixels, requantized (fast path, full int8 range) and\nstored: out[n * out_stride + c] for pixel n, channel c.', asm='TQ_CONV_TILE'),
_s('tq_wino_tile_t', (
    F('const uint32_t', '*w', "the first pair's stream (tinyq.compile.ops.layout.winograd_stream)"),
    F('const int32_t', '*cols', 'the transformed inputs, phase after phase'),
    F('uint32_t', 'k_pairs', "a phase's: 3 * in_c / 2"),
    F('int8_t', '*out'),
    F('int32_t', 'out_stride'),
    F('uint32_t', 'pairs', '>= 1'),
), doc="The Winograd tile (w16 = 3): every channel pair of a group of 4 output pixel pairs, from its\ntransformed inputs (4 phases of k_pairs K-pairs, 4 columns each: the group's pairs), requantized\nand stored: out[x * out_stride + c] for pixel x (0..7) of the group, channel c.", asm='TQ_WINO_TILE'),
_s('tq_wino_row_t', (
    F('const int8_t', '*px', 'pixel x0, input word 0'),
    F('int32_t', 'c', 'bytes a pixel'),
    F('uint32_t', 'words', 'in_c / 4'),
    F('const int8_t', '*left, *right'),
    F('int32_t', 'left_step, right_step'),
    F('int32_t', '*d[4]'),
), doc="The Winograd conv's input transform of one kernel row for a group (tq_conv.c's wino_transform):\nfor each input word, the inputs of pixels x0 - 1 .. x0 + 8 as int16 lanes (c, c+2), then\n(c+1, c+3), give each pixel pair's 4 positions, one to each phase's next word (d0..d3, moved on).\nPixels x0 .. x0 + 7 are px + c * (0 .. 7); pixel x0 - 1's word is read at left and x0 + 8's at\nright, which move on by left_step / right_step a word (4, or 0 for a padding word).", asm='TQ_WINO_ROW'),
_s('tq_fc_tile_t', (
    F('const uint32_t', '*w'),
    F('const int32_t', '*vec'),
    F('const int32_t', '*vec_end', 'vec + k_pairs'),
    F('const tq_chan_t', '*chan'),
    F('int8_t', '*out'),
    F('uint32_t', 'groups'),
), doc='Every group of 4 channels of one FULLY_CONNECTED row (groups >= 1): the tq_mv_4x1 sums,\nrequantized on the fast path with the full int8 range, stored to out[0 .. 4 * groups).', asm='TQ_FC_TILE'),
_s('tq_dw_taps_t', (
    F('const int8_t', '*rows[3]'),
    F('int32_t', 'col_step'),
), doc='3x3 depthwise sums of one output pixel, every channel: rows[ky] points at tap (ky, 0) of\nchannel 0, taps of a row are col_step bytes apart.', asm='TQ_DW_TAPS'),
_s('tq_dw_plane_t', (
    F('int32_t', 'bias, bias_again', "a channel's: 2 * the folded bias, twice (one LDRD starts both sums)"),
    F('int32_t', 'rnd, mult, shift', "a channel's: tq_rq_fast_x2"),
    F('int32_t', 'out_step', 'bytes from one output to the next along a plane row'),
    F('const int16_t', '*p', "the first output's window: its first plane row (the first plane's)"),
    F('int8_t', '*out', "the first channel's first output"),
    F('int32_t', 'rows', '>= 1'),
    F('int32_t', 'pair_bytes, single_bytes', 'plane bytes the pairs, then the single outputs, move on'),
    F('int32_t', 'next_row', "plane bytes from one output row's first window to the next's"),
    F('int32_t', 'out_next_row', "output bytes from one output row's first output to the next's"),
    F('int32_t', 'row_bytes', 'a plane row'),
    F('const uint32_t', '*w', "a channel's 6 words: the kernel rows' (k0, k1) (k2, k1), doubled"),
    F('const int8_t', '*src', "the first channel's inputs"),
    F('int32_t', 'du, dv'),
    F('int16_t', '*dst'),
    F('int32_t', 'n_u, n_v', '>= 1'),
    F('int32_t', 'gather2', '0, or two planes: the second this many bytes after the first'),
    F('const uint32_t', '*filter', "each channel's 10 words: bias, rnd, mult, shift, its 6 weight words"),
    F('int32_t', 'channels', '>= 1 (even with gather2)'),
), doc='The channels of tq_depthwise3x3_plane_s8 (tq_m4_dw_plane.S on a Cortex-M4, tq_dw_plane.c elsewhere), one after\nanother: each one\'s inputs gathered into the plane (n_v rows of n_u, from src, du / dv bytes apart\nalong / across a plane row, to dst, row_bytes apart), then `rows` output rows of pair_bytes / 4\npairs of outputs (stride 1) and single_bytes / 4 single outputs (stride 1: the odd last one;\nstride 2: all). With gather2, an even channel gathers the next one too, into the plane gather2\nbytes on, where that one\'s outputs are then computed without a gather. The layout is the\nassembly\'s stack frame, copied whole (tq_offsets.h gives its offsets); the fields marked "a\nchannel\'s" are the kernel\'s own (it sets them from filter and the first channel\'s).', asm='TQ_DW_PLANE')


# ---- kernels ----

_IO = "const int8_t *in, int8_t *out"
_IO2 = "const int8_t *in1, const int8_t *in2, int8_t *out"
_PLANE_COSTS = ("PLANE_QUAD", "PLANE_QUAD_ROW", "PLANE_QUINT", "PLANE_PAIR", "PLANE_SINGLE", "PLANE_SINGLES_ROW",
                "PLANE_ROW", "PLANE_GATHER4", "PLANE_GATHER1", "PLANE_GATHER_ROW", "PLANE_GATHER4_2",
                "PLANE_GATHER1_2", "PLANE_GATHER_ROW_2", "PLANE_CHANNEL", "PLANE_FILL")
_CONV_LOOPS = ("tq_mm_2x4", "tq_mm_2x4_w16", "tq_conv_tile", "tq_conv_tile_w16", "tq_conv_tile_w16b",
               "tq_conv_tile_w16b_z", "tq_conv_pixel_w16b", "tq_expand", "tq_expand4")
_WINO_LOOPS = ("tq_wino_tile", "tq_wino_row")

kernel(Kernel("tq_conv2d_s8", "conv", "tq_conv_params_t", "const int8_t *in, const uint32_t *filter, int8_t *out",
              opcodes=("CONV_2D",), scratch=scratch.conv, variants=_CONV_LOOPS + _WINO_LOOPS,
              doc="CONV_2D: im2col columns of 4 pixels through the tile kernels (w16 0: int8 weights, 1: int16 "
                  "pairs, 2: the biased tile stream, 3: Winograd F(2, 3) along the rows, tq_winograd.c)."))
kernel(Kernel("tq_conv2d_add_s8", "conv", "tq_conv_params_t",
              "const int8_t *in, const uint32_t *filter, const int8_t *skip, int8_t *out",
              params2="tq_addtab_params_t", scratch=scratch.conv_add, variants=_CONV_LOOPS + _WINO_LOOPS,
              doc="CONV_2D then a same-shape ADD of `skip` (the conv's output is the ADD's in1), written to\n"
                  "out, which may be skip itself: the conv's output is never stored whole (the planner fuses them)."))
kernel(Kernel("tq_fully_connected_s8", "fc", "tq_fc_params_t", "const int8_t *in, const uint32_t *filter, int8_t *out",
              opcodes=("FULLY_CONNECTED",), variants=("tq_mv_4x1", "tq_mv_4x1_w16", "tq_fc_tile", "tq_fc_tile_w16"),
              doc="FULLY_CONNECTED: each row's input as int16 pairs in scratch (k_pairs words), 4 channels a turn."))
kernel(Kernel("tq_depthwise_conv2d_s8", "depthwise", "tq_conv_params_t",
              "const int8_t *in, const int8_t *filter, int8_t *out", opcodes=("DEPTHWISE_CONV_2D",),
              doc="DEPTHWISE_CONV_2D, any kernel and depth multiplier: TFLite's [1, k_h, k_w, out_c] weights."))
kernel(Kernel("tq_depthwise3x3_s8", "depthwise", "tq_conv_params_t",
              "const int8_t *in, const uint32_t *filter, int8_t *out", opcodes=("DEPTHWISE_CONV_2D",),
              scratch=scratch.depthwise3x3, cost=lo.depthwise3x3_windowed_instructions,
              cost_constants=("WINDOWED_GROUP", "WINDOWED_PATCH"),
              variants=("tq_dw3x3_sums", "tq_dw3x3_rq", "tq_dw3x3_rq_z", "tq_dw3x3_rq_row", "tq_dw3x3_rq_row_z"),
              doc="3x3 depthwise (depth multiplier 1, channels a multiple of 4), a pixel's channels 4 at a time."))
kernel(Kernel("tq_depthwise3x3_plane_s8", "dw_plane", "tq_conv_params_t",
              "const int8_t *in, const uint32_t *filter, int8_t *out", opcodes=("DEPTHWISE_CONV_2D",),
              scratch=scratch.dw_plane, cost=lo.depthwise3x3_plane_instructions,
              cost_constants=_PLANE_COSTS, variants=("tq_dw3x3_plane", "tq_dw3x3_plane_z"),
              doc="3x3 depthwise, one channel at a time (dilation 1, stride 1 or 2, the fast path with the full int8\n"
                  "range): the channel's inputs are gathered into an int16 plane in scratch, zero points around, and\n"
                  "the window slides along its rows two outputs at a time, a kernel row of both in one two-word load\n"
                  "and four MACs (tq_dw3x3_plane). Its weights (tinyq.compile.ops.layout.depthwise3x3_planes) are per channel:\n"
                  "bias, rnd, mult, shift, then for each kernel row (a kernel column when transposed) the doubled taps\n"
                  "as int16 pairs (k0, k1) (k2, k1). `out` may be `in`: channel c's outputs land only on channel c's\n"
                  "bytes, which its plane already holds."))
kernel(Kernel("tq_max_pool_s8", "pool", "tq_pool_params_t", _IO, opcodes=("MAX_POOL_2D",)))
kernel(Kernel("tq_avg_pool_s8", "pool", "tq_pool_params_t", _IO, opcodes=("AVERAGE_POOL_2D",)))
kernel(Kernel("tq_subsample_s8", "pool", "tq_pool_params_t", _IO,
              doc="out = in[::stride_h, ::stride_w] (k_h = k_w = 1, no padding): a strided 1x1 conv's input."))
kernel(Kernel("tq_add_s8", "pool", "tq_addtab_params_t", _IO2, opcodes=("ADD",), variants=("tq_add_fast",),
              doc="Same-shape ADD by tables."))
kernel(Kernel("tq_mul_s8", "elementwise", "tq_mul_params_t", _IO2, opcodes=("MUL",)))
kernel(Kernel("tq_clamp_s8", "elementwise", None, "uint32_t size, int32_t lo, int32_t hi, const int8_t *in, int8_t *out",
              opcodes=("RELU6",)))
kernel(Kernel("tq_concat_s8", "elementwise", "tq_concat_params_t", "const int8_t *const *ins, int8_t *out",
              opcodes=("CONCATENATION", "PACK")))
kernel(Kernel("tq_mean_s8", "elementwise", "tq_mean_params_t", _IO, opcodes=("MEAN", "SUM"),
              doc="MEAN (1/count folded into the multiplier) and SUM (tinyq.compile.ops.kernels.reduce)."))
kernel(Kernel("tq_softmax_s8", "softmax", "tq_softmax_params_t", _IO, opcodes=("SOFTMAX",)))
kernel(Kernel("tq_copy_s8", "pool", None, "uint32_t size, const int8_t *in, int8_t *out", opcodes=("RESHAPE", "EXPAND_DIMS", "SQUEEZE"),
              variants=("tq_copy_words",)))
