/* RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR, int8: TFLM's reference kernels. The source rows and
 * columns of every output row and column (and bilinear's 1/1024 weights) are computed on the host
 * (tinyq/compile/ops/kernels/resize.py), so these loops only gather and blend. */
#include "tq_kernels.h"

/* c bytes from src to dst: words where both are word-aligned (arena pixels of a multiple of 4 channels). */
static inline void copy_pixel(const int8_t *src, int8_t *dst, uint32_t c) {
    uint32_t i = 0;
    if ((((uintptr_t)src | (uintptr_t)dst) & 3u) == 0) {
        const uint32_t *s = (const uint32_t *)(const void *)src;
        uint32_t *d = (uint32_t *)(void *)dst;
        for (; i + 4 <= c; i += 4) *d++ = *s++;
    }
    for (; i < c; ++i) dst[i] = src[i];
}

void tq_resize_nearest_s8(const tq_resize_nn_params_t *p, const int8_t *in, int8_t *out) {
    const uint32_t c = p->c, row_bytes = (uint32_t)p->out_w * c;
    for (uint32_t b = 0; b < p->batches; ++b, in += p->in_batch) {
        for (uint32_t y = 0; y < p->out_h; ++y, out += row_bytes) {
            if (y > 0 && p->rows[y] == p->rows[y - 1]) {  /* the same input row: the output row again */
                tq_copy_s8(row_bytes, out - row_bytes, out);
                continue;
            }
            const int8_t *src = in + p->rows[y];
            int8_t *dst = out;
            for (uint32_t x = 0; x < p->out_w; ++x, dst += c) copy_pixel(src + p->cols[x], dst, c);
        }
    }
}

void tq_resize_bilinear_s8(const tq_resize_bl_params_t *p, const int8_t *in, int8_t *out) {
    /* TFLM sums v00 (1024-wy)(1024-wx) + v10 wy (1024-wx) + v01 (1024-wy) wx + v11 wy wx in int64; the same
     * integer is (1024-wx) (v00 (1024-wy) + v10 wy) + wx (v01 (1024-wy) + v11 wy), and it fits int32: wy, wx
     * lie in (-512, 1024), so |sum| <= 128 * 2048 * 2048 = 2^29. */
    const uint32_t c = p->c;
    for (uint32_t b = 0; b < p->batches; ++b, in += p->in_batch) {
        for (uint32_t y = 0; y < p->out_h; ++y) {
            const int32_t *ry = p->rows + 3 * y;
            const int8_t *r0 = in + ry[0], *r1 = in + ry[1];
            const int32_t wy = ry[2], wy0 = 1024 - wy;
            for (uint32_t x = 0; x < p->out_w; ++x) {
                const int32_t *cx = p->cols + 3 * x;
                const int8_t *p00 = r0 + cx[0], *p10 = r1 + cx[0], *p01 = r0 + cx[1], *p11 = r1 + cx[1];
                const int32_t wx = cx[2], wx0 = 1024 - wx;
                for (uint32_t k = 0; k < c; ++k) {
                    const int32_t left = p00[k] * wy0 + p10[k] * wy, right = p01[k] * wy0 + p11[k] * wy;
                    const int32_t v = left * wx0 + right * wx;
                    /* round half away from zero, then C's division (toward zero), as TFLM's double rounding */
                    *out++ = (int8_t)((v + (v > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
                }
            }
        }
    }
}
