/* Pooling, ADD and copies, int8. */
#include "tq_kernels.h"

#include <stddef.h>

/* The pooling window of output index o along one axis, clipped to the input:
 * input start i0, filter taps [f0, f1). */
static inline void window(int o, int stride, int pad, int k, int in, int *i0, int *f0, int *f1) {
    *i0 = o * stride - pad;
    *f0 = *i0 < 0 ? -*i0 : 0;
    *f1 = k < in - *i0 ? k : in - *i0;
}

void tq_max_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out) {
    const int c_n = p->c;
    for (int oy = 0; oy < p->out_h; ++oy) {
        int iy0, fy0, fy1;
        window(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &iy0, &fy0, &fy1);
        for (int ox = 0; ox < p->out_w; ++ox) {
            int ix0, fx0, fx1;
            window(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &ix0, &fx0, &fx1);
            for (int c = 0; c < c_n; ++c) {
                int32_t m = -128;
                for (int fy = fy0; fy < fy1; ++fy) {
                    for (int fx = fx0; fx < fx1; ++fx) {
                        const int32_t v = in[((int32_t)(iy0 + fy) * p->in_w + (ix0 + fx)) * c_n + c];
                        if (v > m) m = v;
                    }
                }
                out[((int32_t)oy * p->out_w + ox) * c_n + c] = (int8_t)tq_clamp(m, p->act_min, p->act_max);
            }
        }
    }
}

/* Every stride-th pixel of every stride-th row (a 1x1 window, no padding): the input of a strided
 * 1x1 convolution, taken while the full tensor is still live so that the convolution can run
 * later at stride 1 on a quarter of the bytes (tinyq.plan.split_strided_pointwise). */
void tq_subsample_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out) {
    const int32_t c_n = p->c, row = (int32_t)p->in_w * c_n, step = (int32_t)p->stride_w * c_n;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int8_t *x = in + (int32_t)oy * p->stride_h * row;
        for (int ox = 0; ox < p->out_w; ++ox, x += step, out += c_n) {
            int32_t c = 0;
            for (; c + 4 <= c_n; c += 4) tq_store32(out + c, tq_load32(x + c));
            for (; c < c_n; ++c) out[c] = x[c];
        }
    }
}

/* Round half away from zero, as TFLite's reference AveragePool. */
static inline int8_t avg_out(int32_t sum, int32_t count, const tq_pool_params_t *p) {
    const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return (int8_t)tq_clamp(avg, p->act_min, p->act_max);
}

/* Four channels a word: SXTB16 splits a word into channels (0, 2) and (1, 3) as int16 lanes, SADD16
 * adds both lanes at once. A window of at most 256 taps cannot overflow an int16 lane. */
static void avg_window_words(const tq_pool_params_t *p, const int8_t *in, int iy0, int ix0, int fy0, int fy1,
                             int fx0, int fx1, int8_t *o) {
    const int c_n = p->c;
    const int32_t count = (int32_t)(fy1 - fy0) * (fx1 - fx0);
    const int32_t row = (int32_t)p->in_w * c_n;
    /* A window of whole rows is one run of pixels (a global pool: KWS, IC, VWW's last). */
    const int whole = fx0 == 0 && ix0 == 0 && fx1 == p->in_w;
    const int32_t runs = whole ? 1 : fy1 - fy0, run = whole ? count : fx1 - fx0;
    int g = 0;
    if (whole && c_n % 8 == 0 && ((uintptr_t)in & 3u) == 0) {
        /* A global pool over eight channels at a time: each pixel's two words (one LDRD) feed four
         * sums, so a loop turn's overhead is shared by twice the channels. */
        for (; g < c_n; g += 8) {
            int32_t e0 = 0, o0 = 0, e1 = 0, o1 = 0;
            const uint32_t *x = (const uint32_t *)(const void *)(in + (int32_t)(iy0 + fy0) * row + g);
            const int32_t step = c_n / 4;
            for (int32_t k = count; k > 0; --k, x += step) {
                const uint32_t v = x[0], u = x[1];
                e0 = tq_sxtab16(e0, v);
                o0 = tq_sxtab16_ror8(o0, v);
                e1 = tq_sxtab16(e1, u);
                o1 = tq_sxtab16_ror8(o1, u);
            }
            const int32_t s[4] = {e0, o0, e1, o1};
            for (int j = 0; j < 2; ++j) {
                o[g + 4 * j] = avg_out((int16_t)(uint16_t)((uint32_t)s[2 * j] & 0xFFFFu), count, p);
                o[g + 4 * j + 1] = avg_out((int16_t)(uint16_t)((uint32_t)s[2 * j + 1] & 0xFFFFu), count, p);
                o[g + 4 * j + 2] = avg_out((int16_t)(uint16_t)((uint32_t)s[2 * j] >> 16), count, p);
                o[g + 4 * j + 3] = avg_out((int16_t)(uint16_t)((uint32_t)s[2 * j + 1] >> 16), count, p);
            }
        }
    }
    for (; g < c_n; g += 4) {
        int32_t even = 0, odd = 0;  /* (c0, c2), (c1, c3) */
        const int8_t *r = in + (int32_t)(iy0 + fy0) * row + (ix0 + fx0) * c_n + g;
        for (int32_t k = 0; k < runs; ++k, r += row) {
            const int8_t *x = r;
            int32_t n = run;
            for (; n >= 2; n -= 2, x += 2 * c_n) {  /* two pixels a turn: a loop turn costs as much as one */
                const uint32_t v = tq_load32(x), u = tq_load32(x + c_n);
                even = tq_sxtab16(tq_sxtab16(even, v), u);
                odd = tq_sxtab16_ror8(tq_sxtab16_ror8(odd, v), u);
            }
            if (n) {
                const uint32_t v = tq_load32(x);
                even = tq_sxtab16(even, v);
                odd = tq_sxtab16_ror8(odd, v);
            }
        }
        o[g] = avg_out((int16_t)(uint16_t)((uint32_t)even & 0xFFFFu), count, p);
        o[g + 1] = avg_out((int16_t)(uint16_t)((uint32_t)odd & 0xFFFFu), count, p);
        o[g + 2] = avg_out((int16_t)(uint16_t)((uint32_t)even >> 16), count, p);
        o[g + 3] = avg_out((int16_t)(uint16_t)((uint32_t)odd >> 16), count, p);
    }
}

void tq_avg_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out) {
    const int c_n = p->c;
    const int words = c_n % 4 == 0 && (int32_t)p->k_h * p->k_w <= 256;
    for (int oy = 0; oy < p->out_h; ++oy) {
        int iy0, fy0, fy1;
        window(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &iy0, &fy0, &fy1);
        for (int ox = 0; ox < p->out_w; ++ox) {
            int ix0, fx0, fx1;
            window(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &ix0, &fx0, &fx1);
            const int32_t count = (int32_t)(fy1 - fy0) * (fx1 - fx0);
            if (words && count > 0) {
                avg_window_words(p, in, iy0, ix0, fy0, fy1, fx0, fx1, out + ((int32_t)oy * p->out_w + ox) * c_n);
                continue;
            }
            for (int c = 0; c < c_n; ++c) {
                int32_t sum = 0;
                for (int fy = fy0; fy < fy1; ++fy) {
                    for (int fx = fx0; fx < fx1; ++fx) {
                        sum += in[((int32_t)(iy0 + fy) * p->in_w + (ix0 + fx)) * c_n + c];
                    }
                }
                if (count == 0) { out[((int32_t)oy * p->out_w + ox) * c_n + c] = 0; continue; }
                out[((int32_t)oy * p->out_w + ox) * c_n + c] = avg_out(sum, count, p);
            }
        }
    }
}

static inline __attribute__((always_inline)) void add_body(const tq_addtab_params_t *p, const int8_t *in1,
                                                           const int8_t *in2, int8_t *out, uint32_t n, int fast,
                                                           int full) {
    const int32_t *t1 = p->t1, *t2 = p->t2;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (uint32_t i = 0; i < n; ++i) {
        /* On the fast path the tables hold doubled values: the sum is tq_rq_fast_x2's input. */
        const int32_t sum = t1[in1[i]] + t2[in2[i]];
        out[i] = tq_out8(fast ? tq_rq_fast_x2(sum, &p->out) : tq_rq_exact(sum, &p->out, p->output_offset), full, lo, hi);
    }
}

#ifndef TQ_DSP
void tq_add_fast(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t quads) {
    add_body(p, in1, in2, out, 4 * quads, 1, 1);
}
#endif

void tq_add_run(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, uint32_t n) {
    const int full = p->act_min == -128 && p->act_max == 127;
    if (p->fast && full) {
        const uint32_t done = n & ~3u;
        if (done) tq_add_fast(p, in1, in2, out, done / 4);
        add_body(p, in1 + done, in2 + done, out + done, n - done, 1, 1);
    }
    else if (p->fast) add_body(p, in1, in2, out, n, 1, 0);
    else add_body(p, in1, in2, out, n, 0, 0);
}

void tq_add_s8(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    tq_add_run(p, in1, in2, out, p->size);
}

#ifndef TQ_DSP
void tq_copy_words(uint32_t blocks, const uint32_t *src, uint32_t *dst) {
    for (; blocks > 0; --blocks, src += 8, dst += 8) {
        uint32_t b[8];
        for (int i = 0; i < 8; ++i) b[i] = src[i];  /* the block read whole, then written (as tq_m4.S) */
        for (int i = 0; i < 8; ++i) dst[i] = b[i];
    }
}
#endif

void tq_copy_s8(uint32_t size, const int8_t *in, int8_t *out) {
    if (in == out) return;
    uint32_t i = 0;
    if ((((uintptr_t)in | (uintptr_t)out) & 3u) == 0) {
        /* Word-aligned (arena tensors, I/O buffers): eight words a step, then four. newlib-nano's
         * memcpy copies bytes. */
        const uint32_t *src = (const uint32_t *)(const void *)in;
        uint32_t *dst = (uint32_t *)(void *)out;
        if (size >= 32) {
            tq_copy_words(size / 32, src, dst);
            i = size & ~31u;
            src += i / 4;
            dst += i / 4;
        }
        for (; i + 16 <= size; i += 16, src += 4, dst += 4) {
            const uint32_t a = src[0], b = src[1], c = src[2], d = src[3];
            dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d;
        }
    }
    for (; i < size; ++i) out[i] = in[i];
}
