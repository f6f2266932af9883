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
#include "tq_params.h"  /* generated: the parameter structs and the kernels' prototypes */

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

/* ---- parameters: the structs (tq_chan_t, tq_*_params_t, the inner loops' frames) and the kernels'
 * prototypes are generated from their descriptors into tq_params.h (tinyq/compile/ops/kernels/) ---- */

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
 * matrix product (tinyq.compile.ops.layout.pair_rows): output channels in pairs, the patch in
 * "K-pairs" (k, k+2) and (k+1, k+3) of each group of 4, one word per (channel pair,
 * K-pair) holding w[c][ka] w[c+1][ka] w[c][kb] w[c+1][kb], so SXTB16 and SXTB16 ROR 8
 * give each channel's two weights as int16 lanes. Padding (channels, K) is zero.
 * The 3x3 depthwise weights are words of int16 pairs (w[c], w[c+2]) (w[c+1], w[c+3]) per
 * 4 channels and tap (tinyq.compile.ops.layout.depthwise3x3_words); where the layer requantizes on
 * the fast path with the full int8 range they are doubled, between the 4 channels' biases and
 * their rnd, mult, shift. The generic depthwise takes TFLite's [1, k_h, k_w, out_c] as it is.
 */

/* The inner loops (each family's tq_m4_<family>.S on a Cortex-M4, its tq_<family>.c elsewhere). */
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
void tq_wino_tile(const tq_wino_tile_t *t);
void tq_wino_row(tq_wino_row_t *t);
/* acc[0..3] = channels c..c+3 . the vector, over k_pairs (even, >= 2) K-pairs. */
void tq_mv_4x1(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]);
/* The same with int16 weights (two words a K-pair for each channel pair). */
void tq_mv_4x1_w16(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]);
void tq_fc_tile(const tq_fc_tile_t *t);
void tq_fc_tile_w16(const tq_fc_tile_t *t);
void tq_dw3x3_sums(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int32_t *sums);
/* The same, requantized (fast path, full int8 range) and stored to out[0..4*groups): each group's
 * stream is its 4 channels' biases, its taps doubled, then each channel's rnd, mult, shift
 * (tinyq.compile.ops.layout.depthwise3x3_words with chan). */
void tq_dw3x3_rq(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out);
/* tq_dw3x3_rq for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_rq_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out);
/* tq_dw3x3_rq for `pixels` (>= 1) pixels of a row, the taps `step` bytes further each time. */
void tq_dw3x3_rq_row(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                     int32_t step);
/* tq_dw3x3_rq_row for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_rq_row_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                       int32_t step);

void tq_dw3x3_plane(const tq_dw_plane_t *t);
/* tq_dw3x3_plane for an output zero point of -128: tq_rq_fast_x2_z, the same results. */
void tq_dw3x3_plane_z(const tq_dw_plane_t *t);

/* n elements of a table ADD (out may be in2). */
void tq_add_run(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t n);
/* The fast path with the full int8 range, 4 * quads elements (quads >= 1; tq_m4_pool.S or plain C). */
void tq_add_fast(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t quads);
/* tq_copy_s8's inner loop: blocks (>= 1) of 8 words, forwards, each read whole before it is written. */
void tq_copy_words(uint32_t blocks, const uint32_t *src, uint32_t *dst);
/* n contiguous bytes from s to d (not overlapping): tq_copy_s8's 8-word blocks where both ends are word-aligned,
 * otherwise words (the M4's LDR and STR take unaligned addresses), then the last bytes. Inline: the data-movement
 * kernels call it for runs as short as a pixel's channels, where a call would cost more than the copy. */
static inline __attribute__((always_inline)) void tq_copy_run(const int8_t *s, int8_t *d, uint32_t n) {
    if (n >= 32 && (((uintptr_t)s | (uintptr_t)d) & 3u) == 0) {
        tq_copy_s8(n, s, d);
        return;
    }
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) tq_store32(d + i, tq_load32(s + i));
    for (; i < n; ++i) d[i] = s[i];
}

/* ---- row-band execution of a conv chain (tq_band.c) ---- */

/* TQ_BAND_MAX_STAGES: tq_layout.h. */

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

#ifdef __cplusplus
}
#endif

#endif /* TQ_KERNELS_H */
