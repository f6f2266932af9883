/* Pooling, ADD and copies, int8. */
#include "tq_kernels.h"

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

void tq_avg_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out) {
    const int c_n = p->c;
    for (int oy = 0; oy < p->out_h; ++oy) {
        int iy0, fy0, fy1;
        window(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &iy0, &fy0, &fy1);
        for (int ox = 0; ox < p->out_w; ++ox) {
            int ix0, fx0, fx1;
            window(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &ix0, &fx0, &fx1);
            const int32_t count = (int32_t)(fy1 - fy0) * (fx1 - fx0);
            for (int c = 0; c < c_n; ++c) {
                int32_t sum = 0;
                for (int fy = fy0; fy < fy1; ++fy) {
                    for (int fx = fx0; fx < fx1; ++fx) {
                        sum += in[((int32_t)(iy0 + fy) * p->in_w + (ix0 + fx)) * c_n + c];
                    }
                }
                if (count == 0) { out[((int32_t)oy * p->out_w + ox) * c_n + c] = 0; continue; }
                /* Round half away from zero, as TFLite's reference AveragePool. */
                const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                out[((int32_t)oy * p->out_w + ox) * c_n + c] = (int8_t)tq_clamp(avg, p->act_min, p->act_max);
            }
        }
    }
}

void tq_add_s8(const tq_add_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    for (uint32_t i = 0; i < p->size; ++i) {
        const int32_t a = (int32_t)((uint32_t)(p->input1_offset + in1[i]) << p->left_shift);
        const int32_t b = (int32_t)((uint32_t)(p->input2_offset + in2[i]) << p->left_shift);
        const int32_t sa = tq_requant(a, p->input1_mult, p->input1_shift);
        const int32_t sb = tq_requant(b, p->input2_mult, p->input2_shift);
        const int32_t o = tq_requant(sa + sb, p->output_mult, p->output_shift) + p->output_offset;
        out[i] = (int8_t)tq_clamp(o, p->act_min, p->act_max);
    }
}

void tq_copy_s8(uint32_t size, const int8_t *in, int8_t *out) {
    if (in == out) return;
    uint32_t i = 0;
    if ((((uintptr_t)in | (uintptr_t)out) & 3u) == 0) {
        /* Word-aligned (arena tensors, I/O buffers): four words a step. newlib-nano's memcpy
         * copies bytes. */
        const uint32_t *src = (const uint32_t *)(const void *)in;
        uint32_t *dst = (uint32_t *)(void *)out;
        for (; i + 16 <= size; i += 16, src += 4, dst += 4) {
            const uint32_t a = src[0], b = src[1], c = src[2], d = src[3];
            dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d;
        }
    }
    for (; i < size; ++i) out[i] = in[i];
}
