/*
 * TRANSPOSE_CONV, int8 with per-channel requantization: TFLM's reference_integer_ops::TransposeConv, gathered.
 *
 * The output splits into stride_h * stride_w phases (oy % stride_h, ox % stride_w); each is a stride-1 conv of
 * the input with its own sub-kernel (tq_tconv_phase_t, computed on the host: see
 * tinyq/compile/ops/kernels/transpose_conv.py). A phase runs as tq_conv.c runs a conv: four output pixels of a
 * phase row (stride_w * out_c bytes apart) into int16 im2col columns, every channel pair through tq_conv_tile
 * (or tq_mm_2x4 and the exact requantization). Taps outside the input read the zero point, whose term the
 * phase's chan rows fold out, so each sum is TFLM's over the taps that land, in another order.
 */
#include "tq_internal.h"

/* The im2col columns of pixels n0 .. n0 + n - 1 (n <= 4) of row m of a phase: its flipped sub-kernel's tap
 * (u, v) reads input (m + y0 + u, n + x0 + v), the patch in (u, v, c) order, so each kernel row of a pixel is
 * one run of taps_w input pixels, and the four pixels' runs overlap in a strip of taps_w + 3. With a channel
 * count that is a multiple of 4 the strip is expanded straight from the input where it is all inside, else
 * from a copy in `row` with the zero point outside the input (pixels past n read it too: their results are
 * dropped). Other channel counts copy each pixel's patch into `row` first. */
static void __attribute__((noinline, optimize("no-tree-loop-distribute-patterns")))
tconv_columns(const tq_tconv_params_t *p, const tq_tconv_phase_t *ph, const int8_t *in, int m, int n0, int n,
              int32_t *cols, int8_t *row) {
    const int in_c = p->in_c, in_h = p->in_h, in_w = p->in_w, taps_w = ph->taps_w;
    const int32_t row_bytes = (int32_t)in_w * in_c;
    const int8_t pad = p->pad_value;
    const int x0 = n0 + ph->x0;  /* pixel n0's first input column */
    if ((in_c & 3) == 0) {
        const uint32_t words = (uint32_t)in_c / 4, run = words * (uint32_t)taps_w;  /* a kernel row's words */
        const uint32_t pad4 = 0x01010101u * (uint8_t)pad;
        uint32_t *strip = (uint32_t *)row;
        int32_t *col = cols;  /* the kernel row's first K-pair: 8 words an input word */
        for (int u = 0; u < ph->taps_h; ++u, col += 8 * run) {
            const int iy = m + ph->y0 + u;
            const int row_ok = iy >= 0 && iy < in_h;
            if (row_ok && x0 >= 0 && x0 + 3 + taps_w <= in_w) {
                tq_expand4(in + iy * row_bytes + x0 * in_c, in_c, col, run);
                continue;
            }
            for (int k = 0; k < 3 + taps_w; ++k) {
                const int ix = x0 + k;
                uint32_t *d = strip + (uint32_t)k * words;
                if (row_ok && ix >= 0 && ix < in_w) {
                    const int8_t *src = in + iy * row_bytes + ix * in_c;
                    for (uint32_t j = 0; j < words; ++j) d[j] = tq_load32(src + 4 * j);
                } else {
                    for (uint32_t j = 0; j < words; ++j) d[j] = pad4;
                }
            }
            tq_expand4((const int8_t *)strip, in_c, col, run);
        }
        return;
    }
    const int patch = 2 * ph->k_pairs;  /* bytes: the patch padded to whole words (their weights are 0) */
    for (int i = 0; i < n; ++i) {
        int8_t *d = row + i * patch;
        int k = 0;
        for (int u = 0; u < ph->taps_h; ++u) {
            const int iy = m + ph->y0 + u;
            for (int v = 0; v < taps_w; ++v) {
                const int ix = x0 + i + v;
                if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                    const int8_t *s = in + iy * row_bytes + ix * in_c;
                    for (int c = 0; c < in_c; ++c) d[k++] = s[c];
                } else {
                    for (int c = 0; c < in_c; ++c) d[k++] = pad;
                }
            }
        }
        for (; k < patch; ++k) d[k] = pad;
    }
    const uint32_t words = (uint32_t)ph->k_pairs / 2;
    if (n == 4) tq_expand4(row, patch, cols, words);
    else for (int i = 0; i < n; ++i) tq_expand(row + i * patch, cols + i, words);
}

/* One phase: its output pixels row by row, four at a time. `fast` and `full` are constants at each call. */
static inline __attribute__((always_inline)) void tconv_phase(const tq_tconv_params_t *p, const tq_tconv_phase_t *ph,
                                                              const tq_chan_t *chan, const uint32_t *w,
                                                              const int8_t *in, int8_t *out, int py, int px,
                                                              int fast, int full) {
    const int out_c = p->out_c, s_h = p->stride_h, s_w = p->stride_w, P = ph->k_pairs;
    const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int rows = (p->out_h - py + s_h - 1) / s_h, pixels = (p->out_w - px + s_w - 1) / s_w;
    int32_t *cols = (int32_t *)p->scratch;
    int8_t *row = (int8_t *)(cols + 4 * p->k_pairs);
    int8_t *tail = row;  /* a partial group's output: the columns are built by then */
    const int32_t step = (int32_t)s_w * out_c;  /* output bytes from one pixel of a phase row to the next */
    for (int m = 0; m < rows; ++m) {
        int8_t *o_row = out + ((int32_t)(py + s_h * m) * p->out_w + px) * out_c;
        for (int n0 = 0; n0 < pixels; n0 += 4) {
            const int n = pixels - n0 < 4 ? pixels - n0 : 4;
            int8_t *o = o_row + n0 * step;
            /* The tile stores 4 pixels: a partial group's go through `tail` (the rest would land past the row). */
            int8_t *dst = n < 4 ? tail : o;
            const int32_t dstep = n < 4 ? out_c : step;
            if (P == 0) {  /* no tap lands on this phase (a kernel smaller than the stride): the bias alone */
                for (int i = 0; i < n; ++i)
                    for (int c = 0; c < out_c; ++c) dst[i * dstep + c] = rq(0, chan + c, fast, full, zp, lo, hi);
            } else {
                tconv_columns(p, ph, in, m, n0, n, cols, row);
                const uint32_t *wc = w;
                int c = 0;
                if (fast && full && out_c >= 2) {
                    const tq_conv_tile_t tile = {w, cols, cols + 4 * P, chan, dst, dstep, (uint32_t)out_c / 2};
                    tq_conv_tile(&tile);
                    c = out_c & ~1;
                    wc += c / 2 * P;
                }
                for (; c < out_c; c += 2, wc += P) {
                    int32_t acc[8];
                    tq_mm_2x4(wc, cols, (uint32_t)P, acc);
                    for (int i = 0; i < n; ++i) dst[i * dstep + c] = rq(acc[i], chan + c, fast, full, zp, lo, hi);
                    if (c + 1 == out_c) break;  /* the odd last channel: its partner row is padding */
                    for (int i = 0; i < n; ++i)
                        dst[i * dstep + c + 1] = rq(acc[4 + i], chan + c + 1, fast, full, zp, lo, hi);
                }
            }
            if (n < 4)
                for (int i = 0; i < n; ++i)
                    for (int c = 0; c < out_c; ++c) o[i * step + c] = tail[i * out_c + c];
        }
    }
}

void tq_transpose_conv_s8(const tq_tconv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out) {
    const int full = p->act_min == -128 && p->act_max == 127;
    for (int py = 0; py < p->stride_h; ++py) {
        for (int px = 0; px < p->stride_w; ++px) {
            const int k = py * p->stride_w + px;
            const tq_tconv_phase_t *ph = p->phases + k;
            const tq_chan_t *chan = p->chan + k * p->out_c;
            const uint32_t *w = filter + ph->w_off;
            if (ph->fast && full) tconv_phase(p, ph, chan, w, in, out, py, px, 1, 1);
            else if (ph->fast) tconv_phase(p, ph, chan, w, in, out, py, px, 1, 0);
            else tconv_phase(p, ph, chan, w, in, out, py, px, 0, 0);
        }
    }
}
