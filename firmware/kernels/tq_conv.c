/*
 * Convolutions and fully connected layers, int8 with per-channel requantization.
 *
 * CONV_2D and FULLY_CONNECTED are a matrix product. Four output pixels' input patches
 * are expanded into int16 "columns" (padded taps read the input zero point, whose
 * contribution the host folded into the bias), and two output channels at a time are
 * dotted with the four columns by SMLAD, two 16-bit MACs an instruction
 * (tq_mm_2x4: 13 instructions per 16 MACs on the M4). The integer sums are TFLite's,
 * in another order, so the results are bit-exact.
 *
 * Column layout: K-pair j of group g = j / 2 holds patch elements (4g + j % 2, 4g + j % 2 + 2)
 * as int16 lanes, which is exactly what SXTB16 and SXTB16 ROR 8 make of the word
 * x[4g..4g+3]: no repacking. cols[4 * j + n] is K-pair j of column n.
 */
#include <stddef.h>

#include "tq_internal.h"

#ifndef TQ_DSP
/* Plain-C twins of the inner loops of tq_m4_conv.S (assembled on a Cortex-M4 with DSP), on the same data layout. */
void tq_mm_2x4(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, int32_t acc[8]) {
    int32_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (uint32_t j = 0; j < k_pairs; ++j, cols += 4) {
        const int32_t w0 = tq_sxtb16(w[j]), w1 = tq_sxtb16_ror8(w[j]);
        for (int n = 0; n < 4; ++n) {
            s[n] = tq_smlad(w0, cols[n], s[n]);
            s[4 + n] = tq_smlad(w1, cols[n], s[4 + n]);
        }
    }
    for (int i = 0; i < 8; ++i) acc[i] = s[i];
}

void tq_mm_2x4_w16(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, int32_t acc[8]) {
    int32_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (uint32_t j = 0; j < k_pairs; ++j, cols += 4, w += 2) {
        for (int n = 0; n < 4; ++n) {
            s[n] = tq_smlad((int32_t)w[0], cols[n], s[n]);
            s[4 + n] = tq_smlad((int32_t)w[1], cols[n], s[4 + n]);
        }
    }
    for (int i = 0; i < 8; ++i) acc[i] = s[i];
}

/* A channel's requantization read from a biased stream (its rnd, mult, shift: layout._pair_stream's tail). */
static inline tq_chan_t stream_chan(const uint32_t *r) {
    const tq_chan_t q = {0, (int32_t)r[0], (int32_t)r[1], (int32_t)r[2]};
    return q;
}

/* w16: 0 int8 weights, 1 int16 pairs, 2 the biased tile stream (each pair's 8 bias words, then its
 * weights doubled: the sums plus the biases are tq_rq_fast_x2's input; then its two channels' rnd,
 * mult and shift, which the requantization reads from the stream as tq_m4_conv.S does). */
static void conv_tile(const tq_conv_tile_t *t, int w16, int z) {
    const uint32_t k_pairs = (uint32_t)(t->cols_end - t->cols) / 4;
    const uint32_t lead = w16 == 2 ? TQ_TILE_LEAD_WORDS : 0u;  /* the bias words before each pair's weights */
    const uint32_t tail = w16 == 2 ? TQ_TILE_TAIL_WORDS : 0u;  /* its parameters after them */
    const uint32_t *w = t->w;
    for (uint32_t i = 0; i < t->pairs; ++i, w += lead + k_pairs * (w16 ? 2u : 1u) + tail) {
        int32_t acc[8];
        if (w16) tq_mm_2x4_w16(w + lead, t->cols, k_pairs, acc);
        else tq_mm_2x4(w, t->cols, k_pairs, acc);
        int8_t *o = t->out + 2 * i;
        const tq_chan_t *q = t->chan + 2 * i;
        const uint32_t *params = w + lead + 2 * k_pairs;  /* w16 == 2: rnd, mult, shift; twice */
        for (int n = 0; n < 8; ++n) {  /* acc[n]: pixel n % 4, channel 2i + n / 4 */
            int32_t y;
            if (lead) {
                const tq_chan_t s = stream_chan(params + 3 * (n / 4));
                /* acc + bias wraps as the SMLAD chain that starts from the bias does */
                const int32_t x2 = (int32_t)((uint32_t)acc[n] + w[n]);
                y = z ? tq_rq_fast_x2_z(x2, &s) : tq_rq_fast_x2(x2, &s);
            } else {
                y = tq_rq_fast(acc[n], q + n / 4);
            }
            o[(n % 4) * t->out_stride + n / 4] = (int8_t)tq_ssat8(y);
        }
    }
}

void tq_conv_tile(const tq_conv_tile_t *t) { conv_tile(t, 0, 0); }
void tq_conv_tile_w16(const tq_conv_tile_t *t) { conv_tile(t, 1, 0); }
void tq_conv_tile_w16b(const tq_conv_tile_t *t) { conv_tile(t, 2, 0); }
void tq_conv_tile_w16b_z(const tq_conv_tile_t *t) { conv_tile(t, 2, 1); }

void tq_conv_pixel_w16b(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, uint32_t pairs, int8_t *out) {
    const uint32_t stride = TQ_TILE_LEAD_WORDS + 2 * k_pairs + TQ_TILE_TAIL_WORDS;  /* a pair's stream */
    for (uint32_t i = 0; i < pairs; i += 2, w += 2 * stride, out += 4) {
        const uint32_t *w2 = i + 1 < pairs ? w + stride : w;
        /* Scalars, not an array: GCC keeps them in registers. Sums from the biases. */
        int32_t a0 = (int32_t)w[0], a1 = (int32_t)w[4], b0 = (int32_t)w2[0], b1 = (int32_t)w2[4];
        const uint32_t *v = w + TQ_TILE_LEAD_WORDS, *u = w2 + TQ_TILE_LEAD_WORDS;
        const int32_t *x = cols;
        for (uint32_t j = k_pairs / 2; j > 0; --j, v += 4, u += 4, x += 8) {
            a0 = tq_smlad((int32_t)v[0], x[0], a0);
            a1 = tq_smlad((int32_t)v[1], x[0], a1);
            a0 = tq_smlad((int32_t)v[2], x[4], a0);
            a1 = tq_smlad((int32_t)v[3], x[4], a1);
            b0 = tq_smlad((int32_t)u[0], x[0], b0);
            b1 = tq_smlad((int32_t)u[1], x[0], b1);
            b0 = tq_smlad((int32_t)u[2], x[4], b0);
            b1 = tq_smlad((int32_t)u[3], x[4], b1);
        }
        const tq_chan_t qa0 = stream_chan(v), qa1 = stream_chan(v + 3), qb0 = stream_chan(u), qb1 = stream_chan(u + 3);
        out[0] = (int8_t)tq_ssat8(tq_rq_fast_x2(a0, &qa0));
        out[1] = (int8_t)tq_ssat8(tq_rq_fast_x2(a1, &qa1));
        if (w2 != w) {
            out[2] = (int8_t)tq_ssat8(tq_rq_fast_x2(b0, &qb0));
            out[3] = (int8_t)tq_ssat8(tq_rq_fast_x2(b1, &qb1));
        }
    }
}

/* Winograd F(2, 3) tile: per channel pair, four phases over the same columns' transformed inputs
 * (layout.WINO_PHASES: positions 1, 2, 0, 3). From the biases b: T = b + M1, U = T + M2, E = U + M0
 * is twice the even outputs' sums plus b; 2T - U + (-M3) = b + M1 - M2 - M3 the odd ones'. Sums
 * wrap as SMLAD's do; the final values are the direct conv's, which the fast path proved fit. */
static void wino_store(const tq_wino_tile_t *t, const uint32_t *acc, const uint32_t *params, uint32_t i, int odd) {
    for (int n = 0; n < 8; ++n) {  /* acc[n]: pixel pair n % 4, channel 2i + n / 4 */
        const tq_chan_t q = stream_chan(params + 3 * (n / 4));
        t->out[(2 * (n % 4) + odd) * t->out_stride + 2 * (int32_t)i + n / 4] =
            (int8_t)tq_ssat8(tq_rq_fast_x2((int32_t)acc[n], &q));
    }
}

void tq_wino_tile(const tq_wino_tile_t *t) {
    const uint32_t kp = t->k_pairs, phase = 2 * kp;  /* a phase's weight words */
    const uint32_t *w = t->w;
    for (uint32_t i = 0; i < t->pairs; ++i, w += TQ_TILE_LEAD_WORDS + 4 * phase + TQ_TILE_TAIL_WORDS) {
        uint32_t a[8], tt[8], u[8];
        int32_t m[8];
        for (int n = 0; n < 8; ++n) a[n] = w[n];
        const uint32_t *v = w + TQ_TILE_LEAD_WORDS;
        for (int ph = 0; ph < 4; ++ph, v += phase) {
            tq_mm_2x4_w16(v, t->cols + 4 * kp * (uint32_t)ph, kp, m);
            if (ph == 3)
                for (int n = 0; n < 8; ++n) a[n] = 2u * tt[n] - u[n];
            for (int n = 0; n < 8; ++n) a[n] += (uint32_t)m[n];
            if (ph == 0)
                for (int n = 0; n < 8; ++n) tt[n] = a[n];
            else if (ph == 1)
                for (int n = 0; n < 8; ++n) u[n] = a[n];
            else
                wino_store(t, a, w + TQ_TILE_LEAD_WORDS + 4 * phase, i, ph == 3);  /* the parameters */
        }
    }
}

void tq_wino_row(tq_wino_row_t *t) {
    const int8_t *px = t->px, *left = t->left, *right = t->right;
    for (uint32_t q = 0; q < t->words; ++q, px += 4, left += t->left_step, right += t->right_step) {
        for (int lane = 0; lane < 2; ++lane) {
            int32_t w[10];
            for (int32_t k = 0; k < 10; ++k) {
                const uint32_t d = tq_load32(k == 0 ? left : k == 9 ? right : px + (k - 1) * t->c);
                w[k] = lane ? tq_sxtb16_ror8(d) : tq_sxtb16(d);
            }
            for (int n = 0; n < 4; ++n) {  /* pair n: inputs 2n .. 2n + 3; positions in phase order 1, 2, 0, 3 */
                const int32_t *x = w + 2 * n;
                *t->d[0]++ = tq_sadd16(x[1], x[2]);
                *t->d[1]++ = tq_ssub16(x[2], x[1]);
                *t->d[2]++ = tq_ssub16(x[0], x[2]);
                *t->d[3]++ = tq_ssub16(x[1], x[3]);
            }
        }
    }
}

void tq_expand(const int8_t *src, int32_t *col, uint32_t words) {
    for (uint32_t i = 0; i < words; ++i, col += 8) {
        const uint32_t x = tq_load32(src + 4 * i);
        col[0] = tq_sxtb16(x);
        col[4] = tq_sxtb16_ror8(x);
    }
}

void tq_expand4(const int8_t *src, int32_t step, int32_t *cols, uint32_t words) {
    for (uint32_t i = 0; i < words; ++i, cols += 8) {
        for (int n = 0; n < 4; ++n) {
            const uint32_t x = tq_load32(src + n * step + 4 * i);
            cols[n] = tq_sxtb16(x);
            cols[4 + n] = tq_sxtb16_ror8(x);
        }
    }
}
#endif

/* ---- CONV_2D ---- */

/* One input word's two K-pairs into a column (as tq_expand). */
static inline void put_word(int32_t *col, uint32_t w) {
    col[0] = tq_sxtb16(w);
    col[4] = tq_sxtb16_ror8(w);
}

/* im2col_row4 for other channel counts (a first layer's 1-3): 1 when done, 0 to leave the group to
 * im2col_group. Only when every kernel row is inside and the left edge too: each pixel's kernel rows are
 * copied a word at a time into its patch in `row` (the last pixel's a byte at a time where its taps pass
 * the right edge, which read the zero point), then the four patches expanded together. */
static int __attribute__((noinline)) patches_row4(const tq_conv_params_t *p, const int8_t *in, int oy, int ox,
                                                  int32_t *cols, int8_t *row) {
    const int in_c = p->in_c, in_w = p->in_w, in_h = p->in_h, k_w = p->k_w, k_h = p->k_h, s_w = p->stride_w;
    const int ix0 = ox * s_w - p->pad_w, iy0 = oy * p->stride_h - p->pad_h, d_h = p->dil_h;
    if (p->dil_w != 1 || ox + 3 >= p->out_w) return 0;
    const int32_t row_bytes = (int32_t)in_w * in_c, step = (int32_t)s_w * in_c;
    const int span = k_w * in_c, span_words = (span + 3) / 4, iy_last = iy0 + (k_h - 1) * d_h;
    /* The pixels whose taps are all inside: the first `full` (the others pass the input's right edge:
     * VWW's last column, where SAME pads only on that side). */
    int full = 4;
    while (full > 0 && ix0 + (full - 1) * s_w + k_w > in_w) --full;
    if (ix0 < 0 || full < 3 || iy0 < 0 || iy_last >= in_h ||
        (int32_t)iy_last * row_bytes + (ix0 + (full - 1) * s_w) * in_c + 4 * span_words > (int32_t)in_h * row_bytes) {
        return 0;
    }
    const int8_t *src = in + (int32_t)iy0 * row_bytes + ix0 * in_c;
    const int32_t row_step = (int32_t)d_h * row_bytes, patch = 2 * p->k_pairs;
    int n = 0;
    const int direct = span == 9 && k_h == 3 && patch == 28;
    if (direct) {
        /* 3x3 on 3 channels (VWW's and IC's first layers): each pixel's seven patch words read straight
         * from its three kernel rows (unaligned loads; a row's first bytes come with the word before
         * them, replaced by the previous row's last) and expanded into its column: no patch, no copy. */
        for (; n < full; ++n, src += step) {
            const int8_t *x1 = src + row_step, *x2 = x1 + row_step;
            int32_t *c = cols + n;  /* scalars and fixed offsets: GCC keeps it all in registers */
            put_word(c, tq_load32(src));
            put_word(c + 8, tq_load32(src + 4));
            put_word(c + 16, (tq_load32(x1 - 1) & ~0xFFu) | (uint8_t)src[8]);
            put_word(c + 24, tq_load32(x1 + 3));
            put_word(c + 32, (tq_load32(x2 - 2) & ~0xFFFFu) | (uint8_t)x1[7] | (uint32_t)(uint8_t)x1[8] << 8);
            put_word(c + 40, tq_load32(x2 + 2));
            put_word(c + 48, tq_load32(x2 + 6));
        }
    } else {
        for (; n < full; ++n, src += step) {
            /* A row's overhang lands where the next row or patch goes. Plain pointer loops: GCC
             * keeps them in registers (indexed ones cost a third more here). */
            const int8_t *x = src;
            int8_t *r = row + n * patch;
            for (int ky = k_h; ky > 0; --ky, x += row_step, r += span) {
                const int8_t *a = x;
                int8_t *b = r;
                for (int k = span_words; k > 0; --k, a += 4, b += 4) tq_store32(b, tq_load32(a));
            }
        }
    }
    /* The last pixel: its taps inside a byte at a time (a word could read past the input), those past
     * the edge the zero point. */
    const int edge = n;
    for (; n < 4; ++n, src += step) {
        const int in_bytes = (in_w - ix0 - n * s_w) * in_c;
        const int8_t *x = src;
        int8_t *r = row + n * patch;
        for (int ky = k_h; ky > 0; --ky, x += row_step, r += span) {
            int b = 0;
            for (; b < in_bytes; ++b) r[b] = x[b];
            for (; b < span; ++b) r[b] = p->pad_value;
        }
    }
    if (direct) {
        for (n = edge; n < 4; ++n) tq_expand(row + n * patch, cols + n, 7);  /* the edge pixel's column only */
    } else {
        tq_expand4(row, patch, cols, (uint32_t)p->k_pairs / 2);  /* bytes past a patch meet zero weights */
    }
    return 1;
}

/* The columns of 4 pixels of one output row (most groups): 1 when done, 0 to leave the group to
 * im2col_group. Kept apart, with little state, because the general function's setup alone
 * costs about 80 instructions a group.
 * Whole-word channels: a kernel row inside the input for all four pixels is four runs
 * s_w * in_c bytes apart, expanded together; a row above or below the input reads the zero
 * point; at the left and right borders each pixel's taps are expanded one by one.
 * Other channel counts: patches_row4. */
static int __attribute__((noinline)) im2col_row4(const tq_conv_params_t *p, const int8_t *in, int oy, int ox,
                                                 int32_t *cols, int8_t *row) {
    if (p->in_c & 3) return patches_row4(p, in, oy, ox, cols, row);
    const int in_c = p->in_c, in_w = p->in_w, in_h = p->in_h, k_w = p->k_w, k_h = p->k_h, s_w = p->stride_w;
    const int ix0 = ox * s_w - p->pad_w, iy0 = oy * p->stride_h - p->pad_h, d_h = p->dil_h;
    if (p->dil_w != 1 || ox + 3 >= p->out_w) return 0;
    const int inside = ix0 >= 0 && ix0 + 3 * s_w + k_w <= in_w;
    const int32_t row_bytes = (int32_t)in_w * in_c, step = (int32_t)s_w * in_c;
    const uint32_t tap_words = (uint32_t)in_c / 4, words = tap_words * (uint32_t)k_w;
    const uint32_t pad4 = 0x01010101u * (uint8_t)p->pad_value;
    const int32_t pad_lo = tq_sxtb16(pad4), pad_hi = tq_sxtb16_ror8(pad4);
    for (int ky = 0; ky < k_h; ++ky, cols += 8 * words) {
        const int iy = iy0 + d_h * ky;
        if (iy < 0 || iy >= in_h) {
            for (uint32_t q = 0; q < words; ++q) {
                for (int m = 0; m < 4; ++m) { cols[8 * q + m] = pad_lo; cols[8 * q + 4 + m] = pad_hi; }
            }
            continue;
        }
        const int8_t *r = in + (int32_t)iy * row_bytes;
        if (inside) {
            tq_expand4(r + ix0 * in_c, step, cols, words);
            continue;
        }
        for (int n = 0; n < 4; ++n) {
            const int ixn = ix0 + n * s_w;
            if (ixn >= 0 && ixn + k_w <= in_w) {
                tq_expand(r + ixn * in_c, cols + n, words);
                continue;
            }
            for (int kx = 0; kx < k_w; ++kx) {
                int32_t *col = cols + n + 8 * (uint32_t)kx * tap_words;
                if (ixn + kx >= 0 && ixn + kx < in_w) {
                    tq_expand(r + (ixn + kx) * in_c, col, tap_words);
                } else {
                    for (uint32_t j = 0; j < tap_words; ++j) { col[8 * j] = pad_lo; col[8 * j + 4] = pad_hi; }
                }
            }
        }
    }
    return 1;
}

/* A pixel's window, its first input row and column at (iy0, ix0): the kernel rows [ky_lo, ky_hi) that
 * are inside the input and (dil_w 1) the taps [tap_lo, tap_hi) of each that are. */
typedef struct {
    int ky_lo, ky_hi, tap_lo, tap_hi;
} window_t;

static inline window_t window_at(const tq_conv_params_t *p, int iy0, int ix0) {
    const int k_h = p->k_h, k_w = p->k_w, d_h = p->dil_h;
    window_t w = {0, k_h, 0, k_w};
    while (w.ky_lo < k_h && iy0 + d_h * w.ky_lo < 0) ++w.ky_lo;
    while (w.ky_hi > w.ky_lo && iy0 + d_h * (w.ky_hi - 1) >= p->in_h) --w.ky_hi;
    w.tap_lo = ix0 >= 0 ? 0 : -ix0 < k_w ? -ix0 : k_w;
    w.tap_hi = ix0 + k_w <= p->in_w ? k_w : p->in_w - ix0 > w.tap_lo ? p->in_w - ix0 : w.tap_lo;
    return w;
}

/* The bytes [a, b) of a word (a, b clamped to 0..4) as a mask. */
static inline uint32_t byte_mask(int a, int b) {
    a = a < 0 ? 0 : a;
    b = b > 4 ? 4 : b;
    if (b <= a) return 0u;
    return (b == 4 ? 0xFFFFFFFFu : (1u << (8 * b)) - 1u) & ~((1u << (8 * a)) - 1u);
}

/* Bytes [lo, hi) of the word at in + at (the others the zero point in pad4), read one by one: a word at
 * the input's first or last bytes, whose other bytes may lie outside it (so is its address). */
static uint32_t word_clipped(const int8_t *in, int32_t at, int lo, int hi, uint32_t pad4) {
    uint32_t w = pad4;
    for (int j = lo < 0 ? 0 : lo; j < 4 && j < hi; ++j) {
        w = (w & ~(0xFFu << (8 * j))) | (uint32_t)(uint8_t)in[at + j] << (8 * j);
    }
    return w;
}

/* A first layer's columns when a kernel row is whole words (k_w * in_c a multiple of 4: KWS's 10x4 on
 * one channel) and dil_w is 1: each row's words go straight into the columns, the taps past the input's
 * left or right edge masked to the zero point; rows above or below the input are the zero point. A word
 * position of the rows at a time, so its mask is worked out once a pixel. A pixel whose words would
 * reach outside the input (the first and last) reads its words' inside bytes one by one. */
static inline __attribute__((always_inline)) void im2col_words_n(const tq_conv_params_t *p, const int8_t *in, int n,
                                                                  int oy, int ox, int32_t *cols, const int words) {
    const int in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w, d_h = p->dil_h;
    const int span = k_w * in_c;
    const int32_t row_bytes = (int32_t)in_w * in_c, in_bytes = (int32_t)in_h * row_bytes;
    const int32_t step = (int32_t)d_h * row_bytes, col_row = 8 * words;  /* column words a kernel row takes */
    const uint32_t pad4 = 0x01010101u * (uint8_t)p->pad_value;
    const int32_t pad_lo = tq_sxtb16(pad4), pad_hi = tq_sxtb16_ror8(pad4);
    for (int i = 0; i < n; ++i, ++ox) {
        if (ox == p->out_w) { ox = 0; ++oy; }
        const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
        const window_t win = window_at(p, iy0, ix0);
        const int ky_lo = win.ky_lo, ky_hi = win.ky_hi, lo = win.tap_lo * in_c, hi = win.tap_hi * in_c;
        const int32_t first = (int32_t)(iy0 + d_h * ky_lo) * row_bytes + ix0 * in_c;
        const int edge = ky_hi > ky_lo && (first < 0 || first + (int32_t)(ky_hi - ky_lo - 1) * step + span > in_bytes);
        for (int k = 0; k < words; ++k) {
            const uint32_t keep = byte_mask(lo - 4 * k, hi - 4 * k), fill = pad4 & ~keep;
            int32_t *col = cols + i + 8 * k;
            int ky = 0;
            for (; ky < ky_lo; ++ky, col += col_row) { col[0] = pad_lo; col[4] = pad_hi; }
            if (edge) {
                for (int32_t at = first + 4 * k; ky < ky_hi; ++ky, col += col_row, at += step) {
                    const uint32_t w = word_clipped(in, at, lo - 4 * k, hi - 4 * k, pad4);
                    col[0] = tq_sxtb16(w);
                    col[4] = tq_sxtb16_ror8(w);
                }
            } else {
                for (const int8_t *src = in + first + 4 * k; ky < ky_hi; ++ky, col += col_row, src += step) {
                    const uint32_t w = (tq_load32(src) & keep) | fill;
                    col[0] = tq_sxtb16(w);
                    col[4] = tq_sxtb16_ror8(w);
                }
            }
            for (; ky < k_h; ++ky, col += col_row) { col[0] = pad_lo; col[4] = pad_hi; }
        }
    }
    /* Columns past the patch (k_pairs rounds up) meet zero weights. */
}

/* im2col_words for one word a kernel row and dil_h 1 (KWS's 10x4 first layer on one channel), with
 * little state a pixel: the rows above the input, inside it and below it are counts, and the column
 * and input pointers walk down the window. It does what im2col_words_n does with words 1; written
 * apart because GCC makes 10 % fewer instructions of it than of im2col_words_n given words 1 and
 * dil_h 1 as constants (measured on official KWS: 29.6 K against 32.4 K an inference). */
static void im2col_word_rows(const tq_conv_params_t *p, const int8_t *in, int n, int oy, int ox, int32_t *cols) {
    const int in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h;
    const int32_t row_bytes = (int32_t)in_w * in_c, in_bytes = (int32_t)in_h * row_bytes;
    const uint32_t pad4 = 0x01010101u * (uint8_t)p->pad_value;
    const int32_t pad_lo = tq_sxtb16(pad4), pad_hi = tq_sxtb16_ror8(pad4);
    int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    for (int i = 0; i < n; ++i) {
        const int above = iy0 >= 0 ? 0 : -iy0 < k_h ? -iy0 : k_h;
        const int reach = in_h - iy0 < k_h ? in_h - iy0 : k_h;  /* rows of the window before the input's end */
        const int inside = reach > above ? reach - above : 0;
        const window_t win = window_at(p, 0, ix0);              /* its taps: bytes [lo, hi) of the word */
        const uint32_t keep = byte_mask(win.tap_lo * in_c, win.tap_hi * in_c), fill = pad4 & ~keep;
        const int32_t first = (int32_t)(iy0 + above) * row_bytes + ix0 * in_c;
        int32_t *col = cols + i, *const end = col + 8 * k_h;
        for (int32_t *stop = col + 8 * above; col < stop; col += 8) { col[0] = pad_lo; col[4] = pad_hi; }
        if (inside && (first < 0 || first + (int32_t)(inside - 1) * row_bytes + 4 > in_bytes)) {
            for (int32_t at = first, *stop = col + 8 * inside; col < stop; col += 8, at += row_bytes) {
                const uint32_t w = word_clipped(in, at, win.tap_lo * in_c, win.tap_hi * in_c, pad4);
                col[0] = tq_sxtb16(w);
                col[4] = tq_sxtb16_ror8(w);
            }
        } else if (inside) {
            const int8_t *src = in + first;
            for (int32_t *stop = col + 8 * inside; col < stop; col += 8, src += row_bytes) {
                const uint32_t w = (tq_load32(src) & keep) | fill;
                col[0] = tq_sxtb16(w);
                col[4] = tq_sxtb16_ror8(w);
            }
        }
        for (; col < end; col += 8) { col[0] = pad_lo; col[4] = pad_hi; }
        if (++ox == p->out_w) {
            ox = 0;
            iy0 += p->stride_h;
            ix0 = -p->pad_w;
        } else {
            ix0 += p->stride_w;
        }
    }
}

static void __attribute__((noinline)) im2col_words(const tq_conv_params_t *p, const int8_t *in, int n, int oy,
                                                    int ox, int32_t *cols) {
    const int words = p->k_w * p->in_c / 4;
    if (words == 1 && p->dil_h == 1) im2col_word_rows(p, in, n, oy, ox, cols);
    else im2col_words_n(p, in, n, oy, ox, cols, words);
}

/* The columns of pixels pix0 .. pix0+n-1 (from (oy, ox), across output rows) when the channel
 * count is not whole words (a first layer's 1-3): each pixel's patch assembled as bytes in `row`,
 * 2P bytes apart, then all expanded together. Kernel rows above or below the input are the zero
 * point. With dil_w 1 a kernel row inside is one run of k_w * in_c input bytes: copied a word
 * at a time (its overhang is overwritten by the next row, or lands in the next patch or `row`'s
 * 4 bytes of slack), then the taps past the input's left or right edge set to the zero point a
 * byte at a time. Those are a tap or two (KWS's 10x4 first layer clips one at 2 of every 5
 * pixels), which a memset call costs more than: hence the attribute that keeps GCC from turning
 * the byte loops into one. A pixel whose rows' words would reach outside the input (the first
 * and last) and dil_w > 1 go tap by tap. */
static void __attribute__((noinline, optimize("no-tree-loop-distribute-patterns")))
im2col_bytes(const tq_conv_params_t *p, const int8_t *in, int n, int oy, int ox, int32_t *cols, int8_t *row) {
    const int in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w, d_h = p->dil_h;
    const int span = k_w * in_c, span_words = (span + 3) / 4, patch = 2 * p->k_pairs;
    const int32_t row_bytes = (int32_t)in_w * in_c, in_bytes = (int32_t)in_h * row_bytes;
    const int32_t step = (int32_t)d_h * row_bytes;
    const int8_t pad = p->pad_value;
    const uint32_t pad4 = 0x01010101u * (uint8_t)pad;
    for (int i = 0; i < n; ++i, ++ox) {
        if (ox == p->out_w) { ox = 0; ++oy; }
        const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
        const window_t win = window_at(p, iy0, ix0);
        const int ky_lo = win.ky_lo, ky_hi = win.ky_hi;
        const int32_t first = (int32_t)(iy0 + d_h * ky_lo) * row_bytes + ix0 * in_c;
        const int32_t end = first + (int32_t)(ky_hi - ky_lo - 1) * step + 4 * span_words;
        int8_t *r = row + i * patch;
        int ky = 0;
        for (; ky < ky_lo; ++ky, r += span) {
            for (int k = 0; k < span_words; ++k) tq_store32(r + 4 * k, pad4);
        }
        if (p->dil_w == 1 && first >= 0 && end <= in_bytes) {
            const int lo = win.tap_lo * in_c, hi = win.tap_hi * in_c;  /* every row's bytes inside */
            const int8_t *x = in + first;
            int8_t *const r0 = r;
            for (; ky < ky_hi; ++ky, r += span, x += step) {
                for (int k = 0; k < span_words; ++k) tq_store32(r + 4 * k, tq_load32(x + 4 * k));
            }
            if (lo > 0 || hi < span) {  /* after all the rows: a row's overhang only reaches the next */
                for (int8_t *q = r0; q < r; q += span) {
                    for (int k = 0; k < lo; ++k) q[k] = pad;
                    for (int k = hi; k < span; ++k) q[k] = pad;
                }
            }
        } else {
            for (; ky < ky_hi; ++ky, r += span) {
                const int iy = iy0 + d_h * ky;
                for (int kx = 0, k = 0; kx < k_w; ++kx) {
                    const int ix = ix0 + p->dil_w * kx, ok = ix >= 0 && ix < in_w;
                    const int8_t *x = in + iy * row_bytes + ix * in_c;
                    for (int c = 0; c < in_c; ++c) r[k++] = ok ? x[c] : pad;
                }
            }
        }
        for (; ky < k_h; ++ky, r += span) {
            for (int k = 0; k < span_words; ++k) tq_store32(r + 4 * k, pad4);
        }
    }
    /* Bytes past a patch meet zero weights. */
    const uint32_t words = (uint32_t)p->k_pairs / 2;
    if (n == 4) tq_expand4(row, patch, cols, words);
    else for (int i = 0; i < n; ++i) tq_expand(row + i * patch, cols + i, words);
}

/* The im2col columns of pixels pix0 .. pix0+n-1, whose first is at (oy, ox): each patch in
 * (ky, kx, c) order. With a channel count that is a multiple of 4 every tap is whole words,
 * expanded straight from the input; other counts go to im2col_bytes. The layer's constants
 * are read once a group. */
static void im2col_group(const tq_conv_params_t *p, const int8_t *in, int n, int oy, int ox, int32_t *cols,
                         int8_t *row) {
    if (p->in_c & 3) {
        if ((p->k_w * p->in_c & 3) == 0 && p->dil_w == 1) im2col_words(p, in, n, oy, ox, cols);
        else im2col_bytes(p, in, n, oy, ox, cols, row);
        return;
    }
    const int in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w;
    const int out_w = p->out_w, s_h = p->stride_h, s_w = p->stride_w, d_h = p->dil_h, d_w = p->dil_w;
    const int8_t pad = p->pad_value;
    const int32_t row_bytes = (int32_t)in_w * in_c;
    for (int i = 0; i < n; ++i, ++ox) {
        if (ox == out_w) { ox = 0; ++oy; }
        int32_t *col = cols + i;
        const int iy0 = oy * s_h - p->pad_h, ix0 = ox * s_w - p->pad_w;
        const int cols_ok = d_w == 1 && ix0 >= 0 && ix0 + k_w <= in_w;
        const uint32_t words = (uint32_t)in_c / 4;
        if (cols_ok) {
            /* The whole kernel row is inside: its taps are one run of k_w * in_c bytes. */
            for (int ky = 0; ky < k_h; ++ky, col += 8 * words * k_w) {
                const int iy = iy0 + d_h * ky;
                if (iy >= 0 && iy < in_h) {
                    tq_expand(in + iy * row_bytes + ix0 * in_c, col, words * k_w);
                } else {
                    const uint32_t pad4 = 0x01010101u * (uint8_t)pad;
                    const int32_t lo = tq_sxtb16(pad4), hi = tq_sxtb16_ror8(pad4);
                    for (uint32_t j = 0; j < words * k_w; ++j) { col[8 * j] = lo; col[8 * j + 4] = hi; }
                }
            }
            continue;
        }
        const uint32_t pad4 = 0x01010101u * (uint8_t)pad;
        const int32_t pad_lo = tq_sxtb16(pad4), pad_hi = tq_sxtb16_ror8(pad4);
        for (int ky = 0; ky < k_h; ++ky) {
            const int iy = iy0 + d_h * ky;
            const int row_ok = iy >= 0 && iy < in_h;
            for (int kx = 0; kx < k_w; ++kx, col += 8 * words) {
                const int ix = ix0 + d_w * kx;
                if (row_ok && ix >= 0 && ix < in_w) {
                    tq_expand(in + iy * row_bytes + ix * in_c, col, words);
                } else {
                    for (uint32_t j = 0; j < words; ++j) { col[8 * j] = pad_lo; col[8 * j + 4] = pad_hi; }
                }
            }
        }
    }
}

/* Pixels n, out_c bytes apart from dst: their constant channels (tq_conv_params_t.const_tail, from channel
 * `from` on), a word at a time. */
static inline void fill_tail(const tq_conv_params_t *p, int8_t *dst, int n, int from) {
    for (int i = 0; i < n; ++i, dst += p->out_c) {
        for (int k = 0; k < p->const_tail; k += 4) tq_store32(dst + from + k, tq_load32(p->tail + k));
    }
}

static inline __attribute__((always_inline)) void conv_body(const tq_conv_params_t *p, const int8_t *in,
                                                            const uint32_t *filter, int8_t *out, int fast, int full,
                                                            const tq_addtab_params_t *add, const int8_t *skip) {
    const int n_pix = p->out_h * p->out_w, out_c = p->out_c, P = p->k_pairs, out_w = p->out_w, w16 = p->w16;
    const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int run = out_c - p->const_tail;  /* the channels computed (the rest: fill_tail) */
    int32_t *cols = (int32_t *)p->scratch;
    /* Scratch: the 4 columns, the byte patches (unaligned channel counts: 4 of 2P bytes, then 4
     * bytes of slack), the output of a partial group or of a fused ADD's group (4 pixels). */
    int8_t *row = (int8_t *)(cols + 4 * P);
    int8_t *tail_out = row + ((p->in_c & 3) ? 8 * P + 4 : 0);
    /* 1x1, stride 1, no padding, whole words: pixel i's patch is input pixel i. */
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 &&
                          p->pad_w == 0 && (p->in_c & 3) == 0 && p->in_h == p->out_h && p->in_w == p->out_w;
    int pix = 0;
    void (*const tile_fn)(const tq_conv_tile_t *) = tq_rq_z(zp) ? tq_conv_tile_w16b_z : tq_conv_tile_w16b;
    if (w16 == 2 && !add && fast && full) {
        /* The common case (every channel pair in the biased tile, an even out_c): from one group of 4 full
         * pixels to the next only the columns and the output move, so each loop is just the columns and the
         * tile (the general loop below spends about 100 instructions a group deciding). Two loops, not one
         * with a test: the test costs VWW 5 K instructions. */
        tq_conv_tile_t tile = {filter, cols, cols + 4 * P, p->chan, out, out_c, (uint32_t)run / 2};
        if (pointwise) {  /* the input pixels themselves */
            const int8_t *x = in;
            for (; pix + 4 <= n_pix; pix += 4, x += 4 * p->in_c, tile.out += 4 * out_c) {
                tq_expand4(x, p->in_c, cols, (uint32_t)p->in_c / 4);
                tile_fn(&tile);
                if (run < out_c) fill_tail(p, tile.out, 4, run);
            }
        } else {  /* their windows (a first layer's), without the general loop's division */
            for (int oy = 0, ox = 0; pix + 4 <= n_pix; pix += 4, tile.out += 4 * out_c) {
                if (!im2col_row4(p, in, oy, ox, cols, row)) im2col_group(p, in, 4, oy, ox, cols, row);
                tile_fn(&tile);
                if (run < out_c) fill_tail(p, tile.out, 4, run);
                for (ox += 4; ox >= out_w; ox -= out_w) ++oy;
            }
        }
    }
    for (; pix < n_pix; pix += 4) {
        const int n = n_pix - pix < 4 ? n_pix - pix : 4;
        if (pointwise) {
            if (n == 4) tq_expand4(in + (int32_t)pix * p->in_c, p->in_c, cols, (uint32_t)p->in_c / 4);
            else for (int i = 0; i < n; ++i) tq_expand(in + (int32_t)(pix + i) * p->in_c, cols + i, (uint32_t)p->in_c / 4);
        } else if (n < 4 || !im2col_row4(p, in, pix / out_w, pix % out_w, cols, row)) {
            im2col_group(p, in, n, pix / out_w, pix % out_w, cols, row);
        }
        int8_t *o = out + (int32_t)pix * out_c;
        /* A partial group (the columns past n hold stale data whose results are dropped) and a
         * fused ADD go through tail_out. */
        int8_t *dst = (add || n < 4) ? tail_out : o;
        const uint32_t *w = filter;
        int c = 0;
        if (n == 1 && w16 == 2) {
            /* A lone last pixel (a 3x3 map, KWS's 125): one column, not a tile of four. */
            tq_conv_pixel_w16b(w, cols, (uint32_t)P, (uint32_t)run / 2, dst);
            c = run;
        } else if (fast && full && run >= 2) {
            /* The common case, all in the inner loop's registers. */
            const tq_conv_tile_t tile = {w, cols, cols + 4 * P, p->chan, dst, out_c, (uint32_t)run / 2};
            if (w16 == 2) tile_fn(&tile);  /* an even run: every pair, nothing left below */
            else if (w16) tq_conv_tile_w16(&tile);
            else tq_conv_tile(&tile);
            c = run & ~1;
            w += (int32_t)c / 2 * P * (w16 ? 2 : 1);
        }
        for (; c < run; c += 2, w += P * (w16 ? 2 : 1)) {
            int32_t acc[8];
            if (w16) tq_mm_2x4_w16(w, cols, (uint32_t)P, acc);
            else tq_mm_2x4(w, cols, (uint32_t)P, acc);
            const tq_chan_t *q = p->chan + c;
            for (int i = 0; i < n; ++i) dst[c + i * out_c] = rq(acc[i], q, fast, full, zp, lo, hi);
            if (c + 1 == run) break;  /* the odd last channel: its partner row is padding */
            ++q;
            for (int i = 0; i < n; ++i) dst[c + 1 + i * out_c] = rq(acc[4 + i], q, fast, full, zp, lo, hi);
        }
        if (run < out_c) fill_tail(p, dst, n, run);
        if (add) {
            tq_add_run(add, tail_out, skip + (int32_t)pix * out_c, o, (uint32_t)(n * out_c));
        } else if (n < 4) {
            for (int i = 0; i < n * out_c; ++i) o[i] = tail_out[i];
        }
    }
}

/* The Winograd conv's input transform for output row y, pixels x0 .. x0 + 7 (4 pairs: the tile's
 * columns): for each kernel row r and input word q (channels 4q .. 4q + 3), the inputs d0..d3 at
 * x - 1 .. x + 2 of each pair (x even; the zero point outside the input, as the direct conv's
 * padded taps read: the bias holds the zero point's terms), as int16 lanes (c, c+2) and (c+1, c+3),
 * give the positions (d0 - d2, d1 + d2, d2 - d1, d1 - d3), stored in phase order 1, 2, 0, 3
 * (layout.WINO_PHASES). |d| <= 128: the lanes cannot overflow. */
static void wino_transform(const tq_conv_params_t *p, const int8_t *in, int32_t y, int32_t x0, int32_t *v,
                           uint32_t kp) {
    const int32_t C = p->in_c, W = p->in_w, H = p->in_h;
    /* A padding word: what pixels outside the input read (the zero point's bytes). */
    const uint32_t pad = (uint32_t)(uint8_t)p->pad_value * 0x01010101u;
    tq_wino_row_t t = {0, C, (uint32_t)C / 4, 0, 0, 0, 0, {v, v + 4 * kp, v + 8 * kp, v + 12 * kp}};
    for (int32_t r = 0; r < 3; ++r) {
        const int32_t iy = y - p->pad_h + r;
        if (iy < 0 || iy >= H) {
            /* A kernel row outside the input: every input the pad, so position 1 is 2 pad and the rest 0. */
            const int32_t p1 = tq_sadd16(tq_sxtb16(pad), tq_sxtb16(pad));
            for (uint32_t i = 0; i < 8u * (uint32_t)C / 4; ++i) {  /* 2 lanes x 4 columns a word */
                *t.d[0]++ = p1;
                *t.d[1]++ = 0;
                *t.d[2]++ = 0;
                *t.d[3]++ = 0;
            }
            continue;
        }
        /* Pixels x0 - 1 .. x0 + 8: the first and last may be outside (pad_w is 1). */
        t.px = in + (iy * W + x0) * C;
        t.left = x0 == 0 ? (const int8_t *)&pad : t.px - C;
        t.left_step = x0 == 0 ? 0 : 4;
        t.right = x0 + 8 >= W ? (const int8_t *)&pad : t.px + 8 * C;
        t.right_step = x0 + 8 >= W ? 0 : 4;
        tq_wino_row(&t);
    }
}

/* A 3x3 stride-1 conv by Winograd F(2, 3) along the rows (w16 = 3; the planner picks it only with the
 * fast path and the full int8 range, in_c a multiple of 4, out_c even, the width a multiple of 8,
 * one column of padding each side): 4 multiplies a kernel row where the direct conv takes 6. */
static void conv_wino(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out,
                      const tq_addtab_params_t *add, const int8_t *skip) {
    const int32_t W = p->out_w, out_c = p->out_c;
    const uint32_t kp = 3u * p->in_c / 2u;
    int32_t *v = (int32_t *)p->scratch;
    int8_t *tail = (int8_t *)(v + 16u * kp);
    for (int32_t y = 0; y < p->out_h; ++y) {
        for (int32_t x0 = 0; x0 < W; x0 += 8) {
            wino_transform(p, in, y, x0, v, kp);
            const int32_t at = (y * W + x0) * out_c;
            const tq_wino_tile_t tile = {filter, v, kp, add ? tail : out + at, out_c, (uint32_t)out_c / 2};
            tq_wino_tile(&tile);
            if (add) tq_add_run(add, tail, skip + at, out + at, 8u * (uint32_t)out_c);
        }
    }
}

static void conv(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out,
                 const tq_addtab_params_t *add, const int8_t *skip) {
    const int full = p->act_min == -128 && p->act_max == 127;
    if (p->w16 == 3) {
        conv_wino(p, in, filter, out, add, skip);
        return;
    }
    if (p->fast && full) conv_body(p, in, filter, out, 1, 1, add, skip);
    else if (p->fast) conv_body(p, in, filter, out, 1, 0, add, skip);
    else conv_body(p, in, filter, out, 0, 0, add, skip);
}

void tq_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out) {
    conv(p, in, filter, out, 0, 0);
}

void tq_conv2d_add_s8(const tq_conv_params_t *p, const tq_addtab_params_t *add, const int8_t *in,
                      const uint32_t *filter, const int8_t *skip, int8_t *out) {
    conv(p, in, filter, out, add, skip);
}
