/*
 * DEPTHWISE_CONV_2D, int8: any kernel and depth multiplier (tq_depthwise_conv2d_s8), and 3x3 with a
 * depth multiplier of 1 a pixel at a time, 4 channels a group (tq_depthwise3x3_s8; its inner loops
 * tq_dw3x3_* in tq_m4_depthwise.S). The channel-planar 3x3 is tq_dw_plane.c.
 */
#include <stddef.h>

#include "tq_internal.h"

#ifndef TQ_DSP
/* Plain-C twins of the inner loops of tq_m4_depthwise.S (assembled on a Cortex-M4 with DSP), on the same data layout. */
/* One group of 4 channels: 9 taps, each two words (w0 w2, w1 w3), added to s[]; returns the advanced
 * stream. */
static const uint32_t *dw_group(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t g, int32_t s[4]) {
    for (int ky = 0; ky < 3; ++ky) {
        for (int kx = 2; kx >= 0; --kx, w += 2) {  /* right to left, as tq_m4_depthwise.S */
            const int8_t *x = taps->rows[ky] + 4 * g + kx * taps->col_step;
            s[0] = (int32_t)((uint32_t)s[0] + (uint32_t)(x[0] * lane(w[0], 0)));
            s[2] = (int32_t)((uint32_t)s[2] + (uint32_t)(x[2] * lane(w[0], 1)));
            s[1] = (int32_t)((uint32_t)s[1] + (uint32_t)(x[1] * lane(w[1], 0)));
            s[3] = (int32_t)((uint32_t)s[3] + (uint32_t)(x[3] * lane(w[1], 1)));
        }
    }
    return w;
}

void tq_dw3x3_sums(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int32_t *sums) {
    for (uint32_t g = 0; g < groups; ++g, sums += 4) {
        sums[0] = sums[1] = sums[2] = sums[3] = 0;
        w = dw_group(taps, w, g, sums);
    }
}

static void dw3x3_rq(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, int z) {
    for (uint32_t g = 0; g < groups; ++g) {
        int32_t s[4] = {(int32_t)w[0], (int32_t)w[1], (int32_t)w[2], (int32_t)w[3]};  /* the biases */
        w = dw_group(taps, w + 4, g, s);  /* doubled taps: s is 2 * (sum + bias) */
        for (int c = 0; c < 4; ++c, w += 3) {
            const tq_chan_t q = {0, (int32_t)w[0], (int32_t)w[1], (int32_t)w[2]};
            *out++ = (int8_t)tq_ssat8(z ? tq_rq_fast_x2_z(s[c], &q) : tq_rq_fast_x2(s[c], &q));
        }
    }
}

static void dw3x3_rq_row(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                         int32_t step, int z) {
    tq_dw_taps_t t = *taps;
    for (uint32_t i = 0; i < pixels; ++i, out += 4 * groups) {
        dw3x3_rq(&t, w, groups, out, z);
        for (int k = 0; k < 3; ++k) t.rows[k] += step;
    }
}

void tq_dw3x3_rq(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out) {
    dw3x3_rq(taps, w, groups, out, 0);
}

void tq_dw3x3_rq_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out) {
    dw3x3_rq(taps, w, groups, out, 1);
}

void tq_dw3x3_rq_row(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                     int32_t step) {
    dw3x3_rq_row(taps, w, groups, out, pixels, step, 0);
}

void tq_dw3x3_rq_row_z(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out, uint32_t pixels,
                       int32_t step) {
    dw3x3_rq_row(taps, w, groups, out, pixels, step, 1);
}
#endif

/* ---- DEPTHWISE_CONV_2D ---- */

/* Any kernel size and depth multiplier. */
void tq_depthwise_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter, int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int k_w = p->k_w, out_c = p->out_c, dm = p->depth_multiplier;
    const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            int8_t *o = out + ((int32_t)oy * p->out_w + ox) * out_c;
            for (int oc = 0; oc < out_c; ++oc) {
                const int ic = oc / dm;
                int32_t acc = 0;
                for (int ky = 0; ky < p->k_h; ++ky) {
                    const int iy = iy0 + p->dil_h * ky;
                    for (int kx = 0; kx < k_w; ++kx) {
                        const int ix = ix0 + p->dil_w * kx;
                        const int32_t x = (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w)
                                              ? p->pad_value : in[((int32_t)iy * in_w + ix) * in_c + ic];
                        acc += filter[((int32_t)ky * k_w + kx) * out_c + oc] * x;
                    }
                }
                o[oc] = rq(acc, p->chan + oc, p->fast, 0, zp, lo, hi);
            }
        }
    }
}

/* One pixel's sums requantized where tq_dw3x3_rq does not apply: a clamped activation range,
 * or the exact long way. */
static inline __attribute__((always_inline)) void requant_pixel(const tq_conv_params_t *p, const int32_t *sums,
                                                                int8_t *o, int fast) {
    for (int c = 0; c < p->out_c; ++c) o[c] = rq(sums[c], p->chan + c, fast, 0, p->output_offset, p->act_min, p->act_max);
}

/* 3x3, depth multiplier 1, channels a multiple of 4 (the host checks). A pixel whose window
 * leaves the input reads a 3x3 patch copied to scratch with the zero point around it, so the
 * inner loop never checks bounds; inside, the row pointers just step along the input. */
/* The sums, then the requantization in C: kept out of line, off the hot path. */
static void __attribute__((noinline)) dw_pixel_sums(const tq_conv_params_t *p, const tq_dw_taps_t *taps,
                                                    const uint32_t *filter, int32_t *sums, int8_t *o) {
    tq_dw3x3_sums(taps, filter, (uint32_t)p->in_c / 4, sums);
    if (p->fast) requant_pixel(p, sums, o, 1);
    else requant_pixel(p, sums, o, 0);
}

/* tq_dw3x3_rq, or its _z form for an output zero point of -128 (the same results, an instruction less an output). */
static inline void dw_rq(const tq_conv_params_t *p, const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups,
                         int8_t *out) {
    if (tq_rq_z(p->output_offset)) tq_dw3x3_rq_z(taps, w, groups, out);
    else tq_dw3x3_rq(taps, w, groups, out);
}

static inline __attribute__((always_inline)) void dw_pixel(const tq_conv_params_t *p, const tq_dw_taps_t *taps,
                                                           const uint32_t *filter, int32_t *sums, int8_t *o,
                                                           int fused) {
    if (fused) dw_rq(p, taps, filter, (uint32_t)p->in_c / 4, o);  /* parameters in the weight stream */
    else dw_pixel_sums(p, taps, filter, sums, o);
}

/* A border pixel a few groups of 4 channels at a time (p->small_patch groups): their 9 taps (zero
 * points outside the input) gathered in a patch of 9 x 4 x small_patch bytes, then the inner loop
 * on those groups. */
static void __attribute__((noinline)) dw_border_groups(const tq_conv_params_t *p, const int8_t *in, int iy0, int ix0,
                                                       const uint32_t *filter, int32_t *sums, int8_t *o, int fused,
                                                       uint32_t *patch, uint32_t pad4) {
    const int C = p->in_c, in_h = p->in_h, in_w = p->in_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int groups = C / 4, chunk = p->small_patch;
    /* Words of one group in the weight stream: 9 taps of two words, then (fused) its 4 channels' parameters. */
    const uint32_t stride = 18u + (fused ? (uint32_t)(4 * sizeof(tq_chan_t) / sizeof(uint32_t)) : 0u);
    /* Where each tap reads (NULL: outside, the zero point), found once for all groups. */
    const int8_t *src[9];
    for (int ky = 0; ky < 3; ++ky) {
        const int iy = iy0 + ky * dil_h;
        for (int kx = 0; kx < 3; ++kx) {
            const int ix = ix0 + kx * dil_w;
            src[ky * 3 + kx] = (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) ? NULL
                                                                             : in + ((int32_t)iy * in_w + ix) * C;
        }
    }
    for (int g = 0; g < groups; g += chunk) {
        const int n = groups - g < chunk ? groups - g : chunk;
        tq_dw_taps_t taps;
        taps.col_step = 4 * n;
        for (int ky = 0; ky < 3; ++ky) taps.rows[ky] = (const int8_t *)(patch + ky * 3 * n);
        uint32_t *d = patch;
        for (int t = 0; t < 9; ++t, d += n) {
            if (!src[t]) {
                for (int j = 0; j < n; ++j) d[j] = pad4;
                continue;
            }
            const int8_t *x = src[t] + 4 * g;
            switch (n) {  /* the counts the planner picks, unrolled (a loop costs twice the instructions) */
            case 4: d[3] = tq_load32(x + 12); /* fall through */
            case 3: d[2] = tq_load32(x + 8); /* fall through */
            case 2: d[1] = tq_load32(x + 4); /* fall through */
            case 1: d[0] = tq_load32(x); break;
            default:
                for (int j = 0; j < n; ++j) d[j] = tq_load32(x + 4 * j);
            }
        }
        if (fused) dw_rq(p, &taps, filter + stride * (uint32_t)g, (uint32_t)n, o + 4 * g);
        else tq_dw3x3_sums(&taps, filter + stride * (uint32_t)g, (uint32_t)n, sums + 4 * g);
    }
    if (!fused) {
        if (p->fast) requant_pixel(p, sums, o, 1);
        else requant_pixel(p, sums, o, 0);
    }
}

void tq_depthwise3x3_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out) {
    const int C = p->in_c, in_h = p->in_h, in_w = p->in_w, out_w = p->out_w;
    const int dil_h = p->dil_h, dil_w = p->dil_w, sw = p->stride_w;
    const uint32_t pad4 = 0x01010101u * (uint8_t)p->pad_value;
    const int fused = p->fast && p->act_min == -128 && p->act_max == 127;
    /* Scratch: C sums (unless fused), the 3x3 patch, the row of zero points. */
    int32_t *sums = (int32_t *)p->scratch;
    int8_t *patch = (int8_t *)(sums + (fused ? 0 : C));
    /* The output columns whose window is inside the input: [ox_lo, ox_hi). */
    int ox_lo = 0, ox_hi = out_w;
    while (ox_lo < out_w && ox_lo * sw - p->pad_w < 0) ++ox_lo;
    while (ox_hi > ox_lo && (ox_hi - 1) * sw - p->pad_w + 2 * dil_w >= in_w) --ox_hi;
    /* A row of zero points as long as a kernel row's reach, after the patch (small_patch: neither;
     * a border pixel goes a group of 4 channels at a time through a 9-word patch). */
    const int small = p->small_patch;
    int8_t *zp_row = patch + (small ? 36 * small : 9 * C);
    if (!small) {
        for (int i = 0; i < (2 * dil_w + 1) * C / 4; ++i) ((uint32_t *)(void *)zp_row)[i] = pad4;
    }
    /* In place (the planner put the output over the input; stride 1, same size): output row r
     * replaces input row r, which output rows up to r + dil_h still read, so rows wait in a
     * ring of dil_h + 1 rows after the zero-point row and are written back dil_h rows late. */
    const int inplace = out == in;
    const int32_t row_bytes = (int32_t)out_w * C;
    int8_t *ring = small ? zp_row : zp_row + (2 * dil_w + 1) * C;
    /* A window's next kernel row, and the next pixel's window, in input bytes. */
    const int32_t row_step = (int32_t)dil_h * in_w * C, step = (int32_t)sw * C;
    tq_dw_taps_t taps;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        const int rows_ok = iy0 >= 0 && iy0 + 2 * dil_h < in_h;
        if (inplace && oy > dil_h) tq_copy_s8((uint32_t)row_bytes, ring + (oy - dil_h - 1) % (dil_h + 1) * row_bytes,
                                              out + (oy - dil_h - 1) * row_bytes);
        int8_t *o = inplace ? ring + oy % (dil_h + 1) * row_bytes : out + (int32_t)oy * row_bytes;
        for (int ox = 0; ox < out_w; ++ox, o += C) {
            if (rows_ok && ox == ox_lo && ox_lo < ox_hi) {
                const int8_t *x = in + ((int32_t)iy0 * in_w + ox * sw - p->pad_w) * C;
                taps.rows[0] = x;
                taps.rows[1] = x + row_step;
                taps.rows[2] = x + 2 * row_step;
                taps.col_step = dil_w * C;
                if (fused) {  /* the whole run in one call: no call and setup a pixel */
                    (tq_rq_z(p->output_offset) ? tq_dw3x3_rq_row_z : tq_dw3x3_rq_row)(&taps, filter, (uint32_t)C / 4,
                                                                                      o, (uint32_t)(ox_hi - ox), step);
                    o += (ox_hi - ox - 1) * C;
                    ox = ox_hi - 1;
                    continue;
                }
                for (; ox < ox_hi; ++ox, o += C) {
                    dw_pixel(p, &taps, filter, sums, o, fused);
                    taps.rows[0] += step;
                    taps.rows[1] += step;
                    taps.rows[2] += step;
                }
                --ox;
                o -= C;
                continue;
            }
            const int ix0 = ox * sw - p->pad_w;
            const uint32_t *edge = !rows_ok ? NULL : ix0 < 0 ? p->w_left : ix0 + 2 * dil_w >= in_w ? p->w_right : NULL;
            if (edge) {
                /* A border column the host gave a stream of its own: the window moved inside. */
                const int8_t *x = in + ((int32_t)iy0 * in_w + (ix0 < 0 ? 0 : in_w - 3)) * C;
                taps.rows[0] = x;
                taps.rows[1] = x + row_step;
                taps.rows[2] = x + 2 * row_step;
                taps.col_step = C;
                dw_rq(p, &taps, edge, (uint32_t)C / 4, o);
                continue;
            }
            if (small) {
                dw_border_groups(p, in, iy0, ix0, filter, sums, o, fused, (uint32_t *)(void *)patch, pad4);
                continue;
            }
            if (ix0 >= 0 && ix0 + 2 * dil_w < in_w) {
                /* Only rows are outside: they read a row of zero points, the others the input. */
                for (int ky = 0; ky < 3; ++ky) {
                    const int iy = iy0 + ky * dil_h;
                    taps.rows[ky] = (iy < 0 || iy >= in_h) ? zp_row : in + ((int32_t)iy * in_w + ix0) * C;
                }
                taps.col_step = dil_w * C;
                dw_pixel(p, &taps, filter, sums, o, fused);
                continue;
            }
            for (int ky = 0; ky < 3; ++ky) {
                const int iy = iy0 + ky * dil_h;
                for (int kx = 0; kx < 3; ++kx) {
                    const int ix = ix0 + kx * dil_w;
                    uint32_t *dst = (uint32_t *)(void *)(patch + (ky * 3 + kx) * C);
                    if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                        for (int i = 0; i < C / 4; ++i) dst[i] = pad4;
                    } else {
                        const int8_t *src = in + ((int32_t)iy * in_w + ix) * C;
                        for (int i = 0; i < C / 4; ++i) dst[i] = tq_load32(src + 4 * i);
                    }
                }
                taps.rows[ky] = patch + ky * 3 * C;
            }
            taps.col_step = C;
            dw_pixel(p, &taps, filter, sums, o, fused);
        }
    }
    if (inplace) {  /* the rows still held back */
        for (int r = p->out_h - dil_h - 1 > 0 ? p->out_h - dil_h - 1 : 0; r < p->out_h; ++r) {
            tq_copy_s8((uint32_t)row_bytes, ring + r % (dil_h + 1) * row_bytes, out + r * row_bytes);
        }
    }
}
