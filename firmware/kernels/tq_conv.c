/*
 * Convolutions and fully connected layers, int8 with per-channel requantization.
 *
 * CONV_2D and FULLY_CONNECTED are a matrix product: each output pixel's input patch
 * is copied once into an int16 column holding (x + input_offset), padding as 0
 * (which is what TFLite's "skip the tap" means), and every output channel is a dot
 * product of its weight row with that column, two channels by two pixels at a time
 * with SMLAD (two 16-bit MACs an instruction). The integer sums are the same as
 * TFLite's, only in another order, so the results are bit-exact.
 */
#include "tq_kernels.h"
#include "tq_simd.h"

/* acc[c][p] += row_c . col_p for 2 rows x n_cols columns (n_cols 1 or 2). */
static inline __attribute__((always_inline)) void dot_rows(const int8_t *w0, const int8_t *w1, const int16_t *a, const int16_t *b, int K,
                            int32_t *acc) {
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
    int k = 0;
    if (b) {
        for (; k + 4 <= K; k += 4) {
            const int32_t a01 = (int32_t)tq_load32(a + k), a23 = (int32_t)tq_load32(a + k + 2);
            const int32_t b01 = (int32_t)tq_load32(b + k), b23 = (int32_t)tq_load32(b + k + 2);
            const uint32_t x = tq_load32(w0 + k), y = tq_load32(w1 + k);
            const int32_t x01 = tq_sxtb16(x), x23 = tq_sxtb16_ror8(x);
            const int32_t y01 = tq_sxtb16(y), y23 = tq_sxtb16_ror8(y);
            s00 = tq_smlad(x01, a01, s00); s00 = tq_smlad(x23, a23, s00);
            s01 = tq_smlad(x01, b01, s01); s01 = tq_smlad(x23, b23, s01);
            s10 = tq_smlad(y01, a01, s10); s10 = tq_smlad(y23, a23, s10);
            s11 = tq_smlad(y01, b01, s11); s11 = tq_smlad(y23, b23, s11);
        }
        for (; k < K; ++k) {
            s00 += w0[k] * a[k]; s01 += w0[k] * b[k];
            s10 += w1[k] * a[k]; s11 += w1[k] * b[k];
        }
    } else {
        for (; k + 4 <= K; k += 4) {
            const int32_t a01 = (int32_t)tq_load32(a + k), a23 = (int32_t)tq_load32(a + k + 2);
            const uint32_t x = tq_load32(w0 + k), y = tq_load32(w1 + k);
            s00 = tq_smlad(tq_sxtb16(x), a01, s00); s00 = tq_smlad(tq_sxtb16_ror8(x), a23, s00);
            s10 = tq_smlad(tq_sxtb16(y), a01, s10); s10 = tq_smlad(tq_sxtb16_ror8(y), a23, s10);
        }
        for (; k < K; ++k) { s00 += w0[k] * a[k]; s10 += w1[k] * a[k]; }
    }
    acc[0] = s00; acc[1] = s01; acc[2] = s10; acc[3] = s11;
}

static inline int8_t requant_out(int32_t acc, int32_t mult, int32_t shift, int32_t off, int32_t lo, int32_t hi) {
    return (int8_t)tq_clamp(tq_requant(acc, mult, shift) + off, lo, hi);
}

/* out[p][c] for every output channel c of 1 or 2 columns (b may be NULL). */
static void matmul_cols(const int8_t *w, int K, int n_out, const int16_t *a, const int16_t *b, const int32_t *bias,
                        const int32_t *mult, const int32_t *shift, int32_t off, int32_t lo, int32_t hi,
                        int8_t *out_a, int8_t *out_b) {
    int c = 0;
    for (; c + 2 <= n_out; c += 2) {
        const int32_t b0 = bias ? bias[c] : 0, b1 = bias ? bias[c + 1] : 0;
        int32_t acc[4] = {b0, b0, b1, b1};
        dot_rows(w + (int32_t)c * K, w + (int32_t)(c + 1) * K, a, b, K, acc);
        out_a[c] = requant_out(acc[0], mult[c], shift[c], off, lo, hi);
        out_a[c + 1] = requant_out(acc[2], mult[c + 1], shift[c + 1], off, lo, hi);
        if (b) {
            out_b[c] = requant_out(acc[1], mult[c], shift[c], off, lo, hi);
            out_b[c + 1] = requant_out(acc[3], mult[c + 1], shift[c + 1], off, lo, hi);
        }
    }
    if (c < n_out) {
        /* The odd last channel: run it as a pair with itself. */
        const int32_t b0 = bias ? bias[c] : 0;
        int32_t acc[4] = {b0, b0, b0, b0};
        const int8_t *row = w + (int32_t)c * K;
        dot_rows(row, row, a, b, K, acc);
        out_a[c] = requant_out(acc[0], mult[c], shift[c], off, lo, hi);
        if (b) out_b[c] = requant_out(acc[1], mult[c], shift[c], off, lo, hi);
    }
}

/* The (x + offset) int16 column of output pixel (oy, ox); taps in the padding are 0. */
static void im2col(const tq_conv_params_t *p, const int8_t *in, int oy, int ox, int16_t *col) {
    const int in_c = p->in_c;
    const int16_t off = (int16_t)p->input_offset;
    const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    for (int ky = 0; ky < p->k_h; ++ky) {
        const int iy = iy0 + p->dil_h * ky;
        for (int kx = 0; kx < p->k_w; ++kx) {
            const int ix = ix0 + p->dil_w * kx;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (int c = 0; c < in_c; ++c) col[c] = 0;
            } else {
                const int8_t *x = in + ((int32_t)iy * p->in_w + ix) * in_c;
                for (int c = 0; c < in_c; ++c) col[c] = (int16_t)(x[c] + off);
            }
            col += in_c;
        }
    }
}

void tq_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                  const int32_t *bias, int8_t *out) {
    const int K = p->k_h * p->k_w * p->in_c;
    const int Kp = (K + 1) & ~1; /* keeps the second column 4-byte aligned */
    int16_t *col_a = p->scratch, *col_b = p->scratch + Kp;
    const int n_pix = p->out_h * p->out_w, out_c = p->out_c;
    int pix = 0;
    for (; pix + 2 <= n_pix; pix += 2) {
        im2col(p, in, pix / p->out_w, pix % p->out_w, col_a);
        im2col(p, in, (pix + 1) / p->out_w, (pix + 1) % p->out_w, col_b);
        matmul_cols(filter, K, out_c, col_a, col_b, bias, p->mult, p->shift, p->output_offset, p->act_min,
                    p->act_max, out + (int32_t)pix * out_c, out + (int32_t)(pix + 1) * out_c);
    }
    if (pix < n_pix) {
        im2col(p, in, pix / p->out_w, pix % p->out_w, col_a);
        matmul_cols(filter, K, out_c, col_a, 0, bias, p->mult, p->shift, p->output_offset, p->act_min,
                    p->act_max, out + (int32_t)pix * out_c, 0);
    }
}

/* One column against four weight rows: with a single input vector (FULLY_CONNECTED) the
 * column loads are shared by four rows instead of two. */
static inline __attribute__((always_inline)) void dot_4rows(const int8_t *w, int K, const int16_t *a,
                                                           int32_t acc[4]) {
    const int8_t *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const int32_t a01 = (int32_t)tq_load32(a + k), a23 = (int32_t)tq_load32(a + k + 2);
        const uint32_t x0 = tq_load32(w0 + k), x1 = tq_load32(w1 + k);
        const uint32_t x2 = tq_load32(w2 + k), x3 = tq_load32(w3 + k);
        s0 = tq_smlad(tq_sxtb16(x0), a01, s0); s0 = tq_smlad(tq_sxtb16_ror8(x0), a23, s0);
        s1 = tq_smlad(tq_sxtb16(x1), a01, s1); s1 = tq_smlad(tq_sxtb16_ror8(x1), a23, s1);
        s2 = tq_smlad(tq_sxtb16(x2), a01, s2); s2 = tq_smlad(tq_sxtb16_ror8(x2), a23, s2);
        s3 = tq_smlad(tq_sxtb16(x3), a01, s3); s3 = tq_smlad(tq_sxtb16_ror8(x3), a23, s3);
    }
    for (; k < K; ++k) {
        s0 += w0[k] * a[k]; s1 += w1[k] * a[k]; s2 += w2[k] * a[k]; s3 += w3[k] * a[k];
    }
    acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
}

void tq_fully_connected_s8(const tq_fc_params_t *p, const int8_t *in, const int8_t *filter,
                           const int32_t *bias, int8_t *out) {
    const int depth = p->in_depth, n_out = p->out_depth;
    const int16_t off = (int16_t)p->input_offset;
    for (int r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (int32_t)r * depth;
        int8_t *o = out + (int32_t)r * n_out;
        for (int d = 0; d < depth; ++d) p->scratch[d] = (int16_t)(x[d] + off);
        int c = 0;
        for (; c + 4 <= n_out; c += 4) {
            int32_t acc[4] = {0, 0, 0, 0};
            if (bias) { acc[0] = bias[c]; acc[1] = bias[c + 1]; acc[2] = bias[c + 2]; acc[3] = bias[c + 3]; }
            dot_4rows(filter + (int32_t)c * depth, depth, p->scratch, acc);
            for (int j = 0; j < 4; ++j) {
                o[c + j] = requant_out(acc[j], p->mult[c + j], p->shift[c + j], p->output_offset, p->act_min,
                                       p->act_max);
            }
        }
        /* The last 1-3 channels. */
        matmul_cols(filter + (int32_t)c * depth, depth, n_out - c, p->scratch, 0, bias ? bias + c : 0, p->mult + c,
                    p->shift + c, p->output_offset, p->act_min, p->act_max, o + c, 0);
    }
}

/* Depthwise, generic: any depth multiplier and channel count. */
static void dw_generic(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int k_w = p->k_w, out_c = p->out_c, dm = p->depth_multiplier;
    const int32_t in_off = p->input_offset;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            for (int ic = 0; ic < in_c; ++ic) {
                for (int m = 0; m < dm; ++m) {
                    const int oc = m + ic * dm;
                    int32_t acc = bias ? bias[oc] : 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + p->dil_h * ky;
                        if (iy < 0 || iy >= in_h) continue;
                        for (int kx = 0; kx < k_w; ++kx) {
                            const int ix = ix0 + p->dil_w * kx;
                            if (ix < 0 || ix >= in_w) continue;
                            const int32_t x = in[((int32_t)iy * in_w + ix) * in_c + ic];
                            const int32_t f = filter[((int32_t)ky * k_w + kx) * out_c + oc];
                            acc += f * (x + in_off);
                        }
                    }
                    out[((int32_t)oy * p->out_w + ox) * out_c + oc] =
                        requant_out(acc, p->mult[oc], p->shift[oc], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

#define TQ_DW_MAX_TAPS 64

void tq_depthwise_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                            const int32_t *bias, int8_t *out) {
    if (p->depth_multiplier != 1 || (p->in_c & 3) || p->k_h * p->k_w > TQ_DW_MAX_TAPS) {
        dw_generic(p, in, filter, bias, out);
        return;
    }
    /* Four channels at a time: one word of input and of weights per tap, SMLABB/SMLATT
     * per channel. The valid taps of each output pixel are listed once, so the inner
     * loop has no bounds checks. */
    const int C = p->in_c, k_h = p->k_h, k_w = p->k_w, in_h = p->in_h, in_w = p->in_w;
    const int out_h = p->out_h, out_w = p->out_w;
    const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)p->input_offset << 16) | (uint16_t)p->input_offset);
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t tap_in[TQ_DW_MAX_TAPS], tap_w[TQ_DW_MAX_TAPS];
    for (int oy = 0; oy < out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        for (int ox = 0; ox < out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            int n = 0;
            for (int ky = 0; ky < k_h; ++ky) {
                const int iy = iy0 + p->dil_h * ky;
                if (iy < 0 || iy >= in_h) continue;
                for (int kx = 0; kx < k_w; ++kx) {
                    const int ix = ix0 + p->dil_w * kx;
                    if (ix < 0 || ix >= in_w) continue;
                    tap_in[n] = ((int32_t)iy * in_w + ix) * C;
                    tap_w[n] = ((int32_t)ky * k_w + kx) * C;
                    ++n;
                }
            }
            int8_t *o = out + ((int32_t)oy * out_w + ox) * C;
            for (int c = 0; c < C; c += 4) {
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                if (bias) { a0 = bias[c]; a1 = bias[c + 1]; a2 = bias[c + 2]; a3 = bias[c + 3]; }
                const int8_t *xb = in + c, *wb = filter + c;
                for (int t = 0; t < n; ++t) {
                    const uint32_t xw = tq_load32(xb + tap_in[t]);
                    const uint32_t ww = tq_load32(wb + tap_w[t]);
                    const int32_t x02 = tq_sadd16(tq_sxtb16(xw), off2), x13 = tq_sadd16(tq_sxtb16_ror8(xw), off2);
                    const int32_t w02 = tq_sxtb16(ww), w13 = tq_sxtb16_ror8(ww);
                    a0 = tq_smlabb(x02, w02, a0);
                    a2 = tq_smlatt(x02, w02, a2);
                    a1 = tq_smlabb(x13, w13, a1);
                    a3 = tq_smlatt(x13, w13, a3);
                }
                o[c] = requant_out(a0, p->mult[c], p->shift[c], out_off, lo, hi);
                o[c + 1] = requant_out(a1, p->mult[c + 1], p->shift[c + 1], out_off, lo, hi);
                o[c + 2] = requant_out(a2, p->mult[c + 2], p->shift[c + 2], out_off, lo, hi);
                o[c + 3] = requant_out(a3, p->mult[c + 3], p->shift[c + 3], out_off, lo, hi);
            }
        }
    }
}
