/*
 * tinyq int8 kernels: NHWC, batch 1, per-channel weights.
 *
 * Every kernel computes exactly what TensorFlow Lite Micro's reference kernels
 * compute (same fixed-point requantization, same rounding), so outputs are
 * bit-identical with the tflite_micro interpreter. All parameters (multipliers,
 * shifts, paddings, activation ranges) are computed ahead of time on the host and
 * live in flash as const structs; kernels never allocate.
 */
#ifndef TQ_KERNELS_H
#define TQ_KERNELS_H

#include <stdint.h>

#include "tq_simd.h"
#include "tq_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fixed-point helpers (TFLite's double-rounding requantization) ---- */

static inline int32_t tq_sat_rdh_mul(int32_t a, int32_t b) {
    /* SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded.
     * TFLite writes it as trunc((ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31); that equals
     * floor((ab + 2^30) / 2^31) for every ab (the two nudges differ exactly by the
     * truncation's correction), which is one SMLAL and a shift on the M4. */
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + (1LL << 30)) >> 31);
}

static inline int32_t tq_rdiv_pot(int32_t x, int exponent) {
    /* RoundingDivideByPOT: x / 2^exponent, rounding half away from zero. */
    /* 32-bit mask: exponent is at most 31 here, and a 64-bit shift costs several instructions. */
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

static inline int32_t tq_requant(int32_t x, int32_t multiplier, int32_t shift) {
    /* MultiplyByQuantizedMultiplier; the left shift wraps like TFLite's int32 math. */
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return tq_rdiv_pot(tq_sat_rdh_mul(shifted, multiplier), right);
}

static inline int32_t tq_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- parameters ---- */

/* Requantization of one output channel, precomputed on the host.
 *
 * The accumulator the kernels compute is sum(w * x) over the raw int8 inputs (padded
 * taps read the input zero point): TFLite's sum(w * (x - zp_in)) + bias is that plus
 * bias - zp_in * sum(w), folded into `bias` here.
 *
 * fast (the layer's tq_*_params_t.fast is 1): TFLite's two roundings (the doubling
 * high multiply, then the rounding right shift) and the output zero point collapse
 * into one SMMLAR and one arithmetic shift, exactly (see tq_rq_fast):
 *   bias = 2 * folded bias, rnd = 2^(shift-1) + (zp_out << shift) (the -1 for
 *   negative sums is added at run time), shift = the right shift (1..22).
 * The host enables it only where it proved that no intermediate can overflow;
 * otherwise (fast = 0) bias is the folded bias, shift is TFLite's signed shift, and
 * tq_requant computes it the long way. */
typedef struct {
    int32_t bias;
    int32_t rnd;
    int32_t mult;
    int32_t shift;
} tq_chan_t;

typedef struct {
    uint16_t in_h, in_w, in_c;
    uint16_t out_h, out_w, out_c;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t dil_h, dil_w;
    uint16_t pad_h, pad_w;
    uint16_t depth_multiplier;   /* depthwise only */
    uint16_t k_pairs;            /* conv: the patch length K padded to a multiple of 4, halved */
    int8_t pad_value;            /* the input zero point: what a padded tap reads */
    uint8_t fast;                /* requantization: 1 the fast path, 0 the exact long way */
    int32_t output_offset;       /* output zero point */
    int32_t act_min, act_max;
    const tq_chan_t *chan;       /* per output channel */
    void *scratch;               /* conv: 4 im2col columns (+ a byte row); depthwise 3x3: sums + patch */
    uint8_t w16;                 /* conv: weights stored as int16 pairs (twice the flash, no SXTB16);
                                  * 2: the biased tile stream (tinyq.ops.layout.tile_stream): each
                                  * channel pair's weights doubled, after 8 words of its biases;
                                  * 3: a 3x3 stride-1 conv by Winograd F(2, 3) along the rows
                                  * (tinyq.ops.layout.winograd_stream, tq_wino_tile) */
    uint8_t small_patch;         /* 3x3 depthwise: border pixels this many groups of 4 channels at
                                  * a time through a 36-byte-a-group patch (0: all; less scratch,
                                  * a little slower) */
    /* 3x3 depthwise requantizing in its inner loop: the weight streams of its left and right border
     * columns (NULL: none), for a window shifted to the input's first / last 3 columns with the
     * tap that would fall outside weighted 0 and its zero-point term in the bias
     * (tinyq.ops.layout.depthwise3x3_edge), so those pixels need no patch. */
    const uint32_t *w_left, *w_right;
    /* tq_depthwise3x3_plane_s8: 1 the planes run down the columns (the sliding window's long axis
     * is the height), 0 along the rows. */
    uint8_t transposed;
    /* tq_depthwise3x3_plane_s8: 2 two channels gathered together into two planes (an even channel
     * count: each input halfword read gives both), else 1. */
    uint8_t planes;
    /* conv (1x1): the last const_tail output channels hold one value for every input (tinyq.dead_channels
     * puts them last), written from `tail` instead of computed; the weights, biases and chan rows are
     * those of the out_c - const_tail channels computed. A multiple of 4, at most out_c - 4. */
    uint16_t const_tail;
    const int8_t *tail;
} tq_conv_params_t;

typedef struct {
    uint16_t rows;               /* batch rows of the input */
    uint16_t in_depth, out_depth;
    uint16_t k_pairs;            /* in_depth padded to a multiple of 4, halved */
    uint8_t fast;
    int32_t output_offset;
    int32_t act_min, act_max;
    const tq_chan_t *chan;       /* per output channel (per-tensor: all equal multipliers) */
    int32_t *scratch;            /* k_pairs words: the input row as int16 pairs */
    uint8_t w16;                 /* weights stored as int16 pairs (twice the flash, no SXTB16) */
} tq_fc_params_t;

typedef struct {
    uint16_t in_h, in_w, c;
    uint16_t out_h, out_w;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t pad_h, pad_w;
    int32_t act_min, act_max;
} tq_pool_params_t;

typedef struct {
    uint32_t size;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_mult, input1_shift;
    int32_t input2_mult, input2_shift;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tq_add_params_t;

/* Same-shape ADD by tables: TFLite scales each input on its own before the sum, so input k's
 * scaled value is tk[x] (x in -128..127; the pointers point at entry 0). The sum is then
 * requantized by `out` (bias 0): on the fast path the tables hold doubled values and `out`
 * is tq_rq_fast's rnd/mult/shift with the zero point inside, otherwise TFLite's mult/shift. */
typedef struct {
    uint32_t size;
    const int32_t *t1, *t2;
    tq_chan_t out;
    uint8_t fast;
    int32_t output_offset;
    int32_t act_min, act_max;
} tq_addtab_params_t;

typedef struct {
    uint16_t rows, depth;
    int32_t input_mult, input_left_shift, diff_min;
} tq_softmax_params_t;

typedef struct {
    uint32_t size;
    int32_t input_zp, output_zp;
    int32_t mult, shift;
    int32_t act_min, act_max;
} tq_requant_params_t;           /* RELU (requantizing) and QUANTIZE int8 -> int8 */

typedef struct {
    uint16_t out[4];             /* output shape, NHWC */
    uint32_t stride1[4], stride2[4]; /* input strides per output axis, 0 where broadcast */
    int32_t input1_offset, input2_offset, output_offset;
    int32_t mult, shift;         /* MUL: one requantization of the product */
    int32_t act_min, act_max;
} tq_mul_params_t;

typedef struct {
    uint16_t in[4], out[4];      /* NHWC */
    uint16_t before[4];          /* padding before each axis */
    int8_t value;                /* the pad value (the zero point) */
} tq_pad_params_t;

typedef struct {
    uint32_t outer;              /* product of the dims before the axis */
    uint16_t n;                  /* inputs */
    const uint32_t *chunk;       /* bytes each input contributes per outer step */
} tq_concat_params_t;

typedef struct {
    uint16_t in[4];              /* input shape (4-D) */
    uint32_t out_stride[4];      /* output index step per input axis, 0 on reduced axes */
    uint32_t outputs, count;     /* output elements; input elements per output */
    int32_t input_zp, output_zp;
    int32_t mult, shift;         /* in_scale / out_scale, with 1/count folded in */
    int32_t *sums;               /* outputs int32 of scratch */
} tq_mean_params_t;

typedef struct {
    uint32_t size;
    int32_t input_zp, input_range_radius;
    int32_t input_mult, input_left_shift; /* input scale * 2^27 as TFLite's frexp split */
} tq_sigmoid_params_t;           /* LOGISTIC and TANH */

/* ---- requantization of one output channel (see tq_chan_t) ---- */

/* The fast path. With x = acc + bias and e = shift >= 1, TFLite computes
 *   t = floor((x*M + 2^30) / 2^31)                       (SaturatingRoundingDoublingHighMul)
 *   y = floor((t + 2^(e-1) - [t < 0]) / 2^e) + zp        (RoundingDivideByPOT, half away from 0)
 * Nested floors merge: floor((floor(A / 2^31) + c) / 2^e) = floor((A + c 2^31) / 2^(31+e)) for
 * integer c, and [t < 0] may be replaced by [x < 0] (they differ only where t = 0, and there
 * both give 0). Doubling numerator and denominator gives
 *   y = floor((2x*M + 2^31 + (2^(e-1) + zp 2^e - [x < 0]) 2^32) / 2^(32+e)),
 * i.e. SMMLAR(2x, M, rnd - [x < 0]) >> e with rnd = 2^(e-1) + (zp << e): bit-exact whenever
 * |2x| < 2^31 and the high word cannot overflow, which the host proves per layer from the
 * weights, the bias and the int8 input range before it sets fast = 1. */
static inline int32_t tq_rq_fast_x2(int32_t x2, const tq_chan_t *q) {  /* x2 = 2 * (acc + bias) */
    return tq_smmlar(x2, q->mult, q->rnd + (x2 >> 31)) >> q->shift;
}

/* The same for an output zero point of -128 (a ReLU's, as TFLite quantizes it): with rnd's zp term at -128 << e,
 * a negative x2 gives at most -128 with or without the [x < 0], since SMMLAR's result before the shift is then
 * below rnd + 1 and (2^(e-1) + 1) >> e is 0 (e >= 1): the saturation makes both -128, and the correction is left
 * out (one instruction an output in tq_m4.S's _z kernels). Both forms fit int32 where the host proved the fast
 * path (its bound counts the +1). */
static inline int32_t tq_rq_fast_x2_z(int32_t x2, const tq_chan_t *q) {
    return tq_smmlar(x2, q->mult, q->rnd) >> q->shift;
}

/* Whether a layer's requantizing kernels take their _z form (tq_rq_fast_x2_z): its output zero point is -128. */
static inline int tq_rq_z(int32_t output_zp) { return output_zp == -128; }

static inline int32_t tq_rq_fast(int32_t acc, const tq_chan_t *q) {
    return tq_rq_fast_x2((int32_t)((uint32_t)q->bias + ((uint32_t)acc << 1)), q);
}

/* The long way, for layers the fast path cannot take (left shifts, huge sums). */
static inline int32_t tq_rq_exact(int32_t acc, const tq_chan_t *q, int32_t zp) {
    return tq_requant((int32_t)((uint32_t)acc + (uint32_t)q->bias), q->mult, q->shift) + zp;
}

/* A requantized value as int8: saturated when the activation range is all of int8 (`full`, a
 * constant at the call sites, so each loop compiles for its case), else clamped. */
static inline int8_t tq_out8(int32_t y, int full, int32_t lo, int32_t hi) {
    return (int8_t)(full ? tq_ssat8(y) : tq_clamp(y, lo, hi));
}

/* ---- kernels ----
 * CONV_2D and FULLY_CONNECTED weights are laid out by the host for the SMLAD
 * matrix product (tinyq.ops.layout.pair_rows): output channels in pairs, the patch in
 * "K-pairs" (k, k+2) and (k+1, k+3) of each group of 4, one word per (channel pair,
 * K-pair) holding w[c][ka] w[c+1][ka] w[c][kb] w[c+1][kb], so SXTB16 and SXTB16 ROR 8
 * give each channel's two weights as int16 lanes. Padding (channels, K) is zero.
 * The 3x3 depthwise weights are words of int16 pairs (w[c], w[c+2]) (w[c+1], w[c+3]) per
 * 4 channels and tap (tinyq.ops.layout.depthwise3x3_words); where the layer requantizes on
 * the fast path with the full int8 range they are doubled, between the 4 channels' biases and
 * their rnd, mult, shift. The generic depthwise takes TFLite's [1, k_h, k_w, out_c] as it is.
 */

void tq_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out);
/* CONV_2D then a same-shape ADD of `skip` (the conv's output is the ADD's in1), written to
 * out, which may be skip itself: the conv's output is never stored whole. */
void tq_conv2d_add_s8(const tq_conv_params_t *p, const tq_addtab_params_t *add, const int8_t *in,
                      const uint32_t *filter, const int8_t *skip, int8_t *out);
/* The scratch each kernel reads through p->scratch, in bytes: the C statement of what the host plans
 * (tinyq.ops.lower_ops.conv_scratch_bytes and depthwise3x3_scratch_bytes; tests/test_plan.py holds
 * them equal for every lowered op). `fused`: tq_depthwise3x3_s8 requantizes in the inner loop. */
/* The Winograd conv (w16 = 3): a group of 8 output pixels' transformed inputs, 4 phases of
 * 3 * in_c / 2 K-pairs of 4 columns (96 bytes an input channel), and with a fused ADD the group's
 * output before the sum. */
static inline uint32_t tq_conv2d_wino_scratch_bytes(const tq_conv_params_t *p, int add) {
    return 96u * p->in_c + (add ? 8u * p->out_c : 0u);
}
static inline uint32_t tq_conv2d_scratch_bytes(const tq_conv_params_t *p) {
    if (p->w16 == 3) return tq_conv2d_wino_scratch_bytes(p, 0);
    return 16u * p->k_pairs + (p->in_c % 4 ? 8u * p->k_pairs + 4u : 0u)
           + (((uint32_t)p->out_h * p->out_w) % 4 ? 4u * p->out_c : 0u);
}
/* tq_conv2d_add_s8: every group of 4 pixels goes through the tail buffer. */
static inline uint32_t tq_conv2d_add_scratch_bytes(const tq_conv_params_t *p) {
    if (p->w16 == 3) return tq_conv2d_wino_scratch_bytes(p, 1);
    return 16u * p->k_pairs + (p->in_c % 4 ? 8u * p->k_pairs + 4u : 0u) + 4u * p->out_c;
}
static inline uint32_t tq_depthwise3x3_scratch_bytes(const tq_conv_params_t *p) {
    const int fused = p->fast && p->act_min == -128 && p->act_max == 127;
    return (fused ? 0u : 4u * p->in_c) + (p->small_patch ? 36u * p->small_patch
                                                        : 9u * p->in_c + (2u * p->dil_w + 1u) * p->in_c);
}
/* The channel-planar 3x3 depthwise (tq_depthwise3x3_plane_s8) works along plane rows: the output's
 * width, or its height when `transposed`. Each plane row holds the inputs one output row's window
 * slides over, as int16, padded with the zero point: (out - 1) * stride + 3 of them, rounded up so
 * that every window's two-word load stays inside the row. */
static inline uint32_t tq_dw_plane_width(uint32_t out, uint32_t stride) {
    return stride == 1 ? out + 2u + (out & 1u) : 2u * out + 2u;
}
/* Its planes: each (out_v - 1) * stride_v + 3 rows of tq_dw_plane_width; with planes 2, the second
 * starts at the first's last row (tq_dw_plane_share: 1) where both rows are zero points. */
static inline uint32_t tq_dw_plane_share(const tq_conv_params_t *p, uint32_t rows) {
    const uint32_t t = p->transposed, in_v = t ? p->in_w : p->in_h, pad_v = t ? p->pad_w : p->pad_h;
    const uint32_t n_v = in_v < rows - pad_v ? in_v : rows - pad_v;  /* the rows gathered */
    return p->planes == 2 && pad_v >= 1u && pad_v + n_v < rows;
}
static inline uint32_t tq_depthwise3x3_plane_scratch_bytes(const tq_conv_params_t *p) {
    const uint32_t t = p->transposed, out_u = t ? p->out_h : p->out_w, out_v = t ? p->out_w : p->out_h;
    const uint32_t s_u = t ? p->stride_h : p->stride_w, s_v = t ? p->stride_w : p->stride_h;
    const uint32_t rows = (out_v - 1u) * s_v + 3u;
    return 2u * (p->planes == 2 ? 2u * rows - tq_dw_plane_share(p, rows) : rows) * tq_dw_plane_width(out_u, s_u);
}
void tq_depthwise_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter, int8_t *out);
/* 3x3 depthwise, one channel at a time (dilation 1, stride 1 or 2, the fast path with the full int8
 * range): the channel's inputs are gathered into an int16 plane in scratch, zero points around, and
 * the window slides along its rows two outputs at a time, a kernel row of both in one two-word load
 * and four MACs (tq_dw3x3_plane). Its weights (tinyq.ops.layout.depthwise3x3_planes) are per channel:
 * bias, rnd, mult, shift, then for each kernel row (a kernel column when transposed) the doubled taps
 * as int16 pairs (k0, k1) (k2, k1). `out` may be `in`: channel c's outputs land only on channel c's
 * bytes, which its plane already holds. */
void tq_depthwise3x3_plane_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out);
void tq_depthwise3x3_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out);
void tq_fully_connected_s8(const tq_fc_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out);

/* The inner loops (firmware/kernels/tq_m4.S on a Cortex-M4, plain C elsewhere). */
/* acc[0..3] = channel c . columns 0..3, acc[4..7] = channel c+1 . columns 0..3, over
 * k_pairs (even, >= 2) K-pairs; cols holds 4 words per K-pair, one per column. */
void tq_mm_2x4(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, int32_t acc[8]);
/* The same with int16 weights: two words a K-pair, channel c's pair then channel c+1's. */
void tq_mm_2x4_w16(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, int32_t acc[8]);
/* words (>= 1) words of src into one im2col column: col[8i] and col[8i + 4] from word i. */
void tq_expand(const int8_t *src, int32_t *col, uint32_t words);
/* All four columns at once, from four runs `step` bytes apart (four pixels of one row): each
 * input word's two K-pairs for the four columns are 8 consecutive words, stored by one STM. */
void tq_expand4(const int8_t *src, int32_t step, int32_t *cols, uint32_t words);
/* Every channel pair of a group of 4 pixels, requantized (fast path, full int8 range) and
 * stored: out[n * out_stride + c] for pixel n, channel c. */
typedef struct {
    const uint32_t *w;           /* the first pair's weights; the pairs follow each other */
    const int32_t *cols, *cols_end;
    const tq_chan_t *chan;
    int8_t *out;
    int32_t out_stride;
    uint32_t pairs;              /* >= 1 */
} tq_conv_tile_t;
void tq_conv_tile(const tq_conv_tile_t *t);
void tq_conv_tile_w16(const tq_conv_tile_t *t);
/* The biased tile stream (w16 = 2): the sums start at the biases and come out doubled. Each channel
 * pair's words: its two biases four times each, its doubled int16 weights, its two channels' rnd,
 * mult and shift (TQ_TILE_LEAD_WORDS / TQ_TILE_TAIL_WORDS in tq_layout.h). */
void tq_conv_tile_w16b(const tq_conv_tile_t *t);
/* tq_conv_tile_w16b for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_conv_tile_w16b_z(const tq_conv_tile_t *t);
/* Column 0 alone on the biased stream (a lone last pixel: a 3x3 map's 9th, KWS's 125th): every
 * channel pair, two at a time so each column word meets four channels' weights (an odd last pair
 * runs as both, its second results dropped), requantized and stored to out[0 .. 2 * pairs).
 * k_pairs is even. */
void tq_conv_pixel_w16b(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, uint32_t pairs, int8_t *out);
/* The Winograd tile (w16 = 3): every channel pair of a group of 4 output pixel pairs, from its
 * transformed inputs (4 phases of k_pairs K-pairs, 4 columns each: the group's pairs), requantized
 * and stored: out[x * out_stride + c] for pixel x (0..7) of the group, channel c. */
typedef struct {
    const uint32_t *w;           /* the first pair's stream (tinyq.ops.layout.winograd_stream) */
    const int32_t *cols;         /* the transformed inputs, phase after phase */
    uint32_t k_pairs;            /* a phase's: 3 * in_c / 2 */
    int8_t *out;
    int32_t out_stride;
    uint32_t pairs;              /* >= 1 */
} tq_wino_tile_t;
void tq_wino_tile(const tq_wino_tile_t *t);
/* The Winograd conv's input transform of one kernel row for a group (tq_conv.c's wino_transform):
 * for each input word, the inputs of pixels x0 - 1 .. x0 + 8 as int16 lanes (c, c+2), then
 * (c+1, c+3), give each pixel pair's 4 positions, one to each phase's next word (d0..d3, moved on).
 * Pixels x0 .. x0 + 7 are px + c * (0 .. 7); pixel x0 - 1's word is read at left and x0 + 8's at
 * right, which move on by left_step / right_step a word (4, or 0 for a padding word). */
typedef struct {
    const int8_t *px;            /* pixel x0, input word 0 */
    int32_t c;                   /* bytes a pixel */
    uint32_t words;              /* in_c / 4 */
    const int8_t *left, *right;
    int32_t left_step, right_step;
    int32_t *d[4];
} tq_wino_row_t;
void tq_wino_row(tq_wino_row_t *t);
/* acc[0..3] = channels c..c+3 . the vector, over k_pairs (even, >= 2) K-pairs. */
void tq_mv_4x1(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]);
/* The same with int16 weights (two words a K-pair for each channel pair). */
void tq_mv_4x1_w16(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]);
/* Every group of 4 channels of one FULLY_CONNECTED row (groups >= 1): the tq_mv_4x1 sums,
 * requantized on the fast path with the full int8 range, stored to out[0 .. 4 * groups). */
typedef struct {
    const uint32_t *w;
    const int32_t *vec;
    const int32_t *vec_end;      /* vec + k_pairs */
    const tq_chan_t *chan;
    int8_t *out;
    uint32_t groups;
} tq_fc_tile_t;
void tq_fc_tile(const tq_fc_tile_t *t);
void tq_fc_tile_w16(const tq_fc_tile_t *t);
/* 3x3 depthwise sums of one output pixel, every channel: rows[ky] points at tap (ky, 0) of
 * channel 0, taps of a row are col_step bytes apart. */
typedef struct {
    const int8_t *rows[3];
    int32_t col_step;
} tq_dw_taps_t;
void tq_dw3x3_sums(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int32_t *sums);
/* The same, requantized (fast path, full int8 range) and stored to out[0..4*groups): each group's
 * stream is its 4 channels' biases, its taps doubled, then each channel's rnd, mult, shift
 * (tinyq.ops.layout.depthwise3x3_words with chan). */
void tq_dw3x3_rq(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out);
/* tq_dw3x3_rq for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_rq_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out);
/* tq_dw3x3_rq for `pixels` (>= 1) pixels of a row, the taps `step` bytes further each time. */
void tq_dw3x3_rq_row(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                     int32_t step);
/* tq_dw3x3_rq_row for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_rq_row_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                       int32_t step);

/* The channels of tq_depthwise3x3_plane_s8 (tq_m4.S on a Cortex-M4, plain C elsewhere), one after
 * another: each one's inputs gathered into the plane (n_v rows of n_u, from src, du / dv bytes apart
 * along / across a plane row, to dst, row_bytes apart), then `rows` output rows of pair_bytes / 4
 * pairs of outputs (stride 1) and single_bytes / 4 single outputs (stride 1: the odd last one;
 * stride 2: all). With gather2, an even channel gathers the next one too, into the plane gather2
 * bytes on, where that one's outputs are then computed without a gather. The layout is the
 * assembly's stack frame, copied whole (tq_conv.c checks the offsets); the fields marked "a
 * channel's" are the kernel's own (it sets them from filter and the first channel's). */
typedef struct {
    int32_t bias, bias_again;    /* a channel's: 2 * the folded bias, twice (one LDRD starts both sums) */
    int32_t rnd, mult, shift;    /* a channel's: tq_rq_fast_x2 */
    int32_t out_step;            /* bytes from one output to the next along a plane row */
    const int16_t *p;            /* the first output's window: its first plane row (the first plane's) */
    int8_t *out;                 /* the first channel's first output */
    int32_t rows;                /* >= 1 */
    int32_t pair_bytes, single_bytes;  /* plane bytes the pairs, then the single outputs, move on */
    int32_t next_row;            /* plane bytes from one output row's first window to the next's */
    int32_t out_next_row;        /* output bytes from one output row's first output to the next's */
    int32_t row_bytes;           /* a plane row */
    const uint32_t *w;           /* a channel's 6 words: the kernel rows' (k0, k1) (k2, k1), doubled */
    const int8_t *src;           /* the first channel's inputs */
    int32_t du, dv;
    int16_t *dst;
    int32_t n_u, n_v;            /* >= 1 */
    int32_t gather2;             /* 0, or two planes: the second this many bytes after the first */
    const uint32_t *filter;      /* each channel's 10 words: bias, rnd, mult, shift, its 6 weight words */
    int32_t channels;            /* >= 1 (even with gather2) */
} tq_dw_plane_t;
void tq_dw3x3_plane(const tq_dw_plane_t *t);
/* tq_dw3x3_plane for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_plane_z(const tq_dw_plane_t *t);

void tq_max_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out);
void tq_avg_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out);
/* out = in[::stride_h, ::stride_w] (k_h = k_w = 1, no padding). */
void tq_subsample_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out);
void tq_add_s8(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
/* n elements of a table ADD (out may be in2). */
void tq_add_run(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t n);
/* The fast path with the full int8 range, 4 * quads elements (quads >= 1; tq_m4.S or plain C). */
void tq_add_fast(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t quads);
void tq_softmax_s8(const tq_softmax_params_t *p, const int8_t *in, int8_t *out);
void tq_copy_s8(uint32_t size, const int8_t *in, int8_t *out);
/* tq_copy_s8's inner loop: blocks (>= 1) of 8 words, forwards, each read whole before it is written. */
void tq_copy_words(uint32_t blocks, const uint32_t *src, uint32_t *dst);

/* ---- row-band execution of a conv chain (tq_band.c) ---- */

#define TQ_BAND_MAX_STAGES 8

/* One layer of a band chain: its whole-tensor kernel and parameters, and (all but the last)
 * the window its output rows wait in for the next layer: cap rows of out_w * out_c bytes.
 * The last layer may be a conv with a fused ADD (add != NULL; fn is then unused). */
typedef struct {
    void (*fn)(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out);
    const tq_conv_params_t *p;
    const uint32_t *filter;
    int8_t *buf;
    int32_t cap;
    const tq_addtab_params_t *add;
} tq_band_stage_t;

/* Run the chain of n stages (n <= TQ_BAND_MAX_STAGES) from `in` (the first layer's input tensor)
 * to `out` (the last layer's output tensor), one output row at a time; `skip` is the fused ADD's
 * other input (NULL without), read row by row as the sum is written. */
void tq_band_run(const tq_band_stage_t *stages, uint32_t n, const int8_t *in, const int8_t *skip, int8_t *out);
void tq_requant_s8(const tq_requant_params_t *p, const int8_t *in, int8_t *out);
void tq_clamp_s8(uint32_t size, int32_t lo, int32_t hi, const int8_t *in, int8_t *out);
void tq_mul_s8(const tq_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tq_add_bcast_s8(const tq_add_params_t *p, const tq_mul_params_t *shape, const int8_t *in1, const int8_t *in2,
                     int8_t *out);
void tq_pad_s8(const tq_pad_params_t *p, const int8_t *in, int8_t *out);
void tq_concat_s8(const tq_concat_params_t *p, const int8_t *const *ins, int8_t *out);
void tq_mean_s8(const tq_mean_params_t *p, const int8_t *in, int8_t *out);
void tq_logistic_s8(const tq_sigmoid_params_t *p, const int8_t *in, int8_t *out);
void tq_tanh_s8(const tq_sigmoid_params_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TQ_KERNELS_H */
