/* Data movement, int8 (tinyq/compile/ops/kernels/move.py): strided views of a tensor copied to another, every
 * stride and start computed on the host. No arithmetic: the bytes TFLM's kernels copy, in the order
 * a view walks them. */
#include "tq_kernels.h"

void tq_copy_run(const int8_t *s, int8_t *d, uint32_t n) {
    if (n >= 32 && (((uintptr_t)s | (uintptr_t)d) & 3u) == 0) {
        tq_copy_s8(n, s, d);
        return;
    }
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) tq_store32(d + i, tq_load32(s + i));
    for (; i < n; ++i) d[i] = s[i];
}

void tq_fill_s8(int8_t *d, uint32_t n, int8_t value) {
    const uint32_t w = (uint8_t)value * 0x01010101u;
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        tq_store32(d + i, w);
        tq_store32(d + i + 4, w);
        tq_store32(d + i + 8, w);
        tq_store32(d + i + 12, w);
    }
    for (; i + 4 <= n; i += 4) tq_store32(d + i, w);
    for (; i < n; ++i) d[i] = value;
}

/* n bytes from s, si apart, to d contiguous: four gathered bytes a word store (a transpose's inner loop). */
static void gather_run(const int8_t *s, int32_t si, int8_t *d, uint32_t n) {
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4, s += 4 * si) {
        const uint32_t w = (uint32_t)(uint8_t)s[0] | (uint32_t)(uint8_t)s[si] << 8 |
                           (uint32_t)(uint8_t)s[2 * si] << 16 | (uint32_t)(uint8_t)s[3 * si] << 24;
        tq_store32(d + j, w);
    }
    for (; j < n; ++j, s += si) d[j] = *s;
}

/* One view: the innermost axis in the loop body, the outer five by an odometer (offsets, not pointers, so
 * nothing points outside the tensors between steps). */
static void move_view(const tq_move_view_t *v, const int8_t *in, int8_t *out) {
    const int32_t n = v->dims[5], si = v->in_stride[5], so = v->out_stride[5];
    const int run = si == 1 && so == 1;
    int32_t idx[5] = {0, 0, 0, 0, 0};
    int32_t i0 = v->in_start, o0 = v->out_start;
    for (;;) {
        if (run) {
            tq_copy_run(in + i0, out + o0, (uint32_t)n);
        } else if (so == 1) {
            gather_run(in + i0, si, out + o0, (uint32_t)n);
        } else {
            const int8_t *s = in + i0;
            int8_t *d = out + o0;
            for (int32_t j = 0; j < n; ++j) d[j * so] = s[j * si];
        }
        int k = 4;
        for (; k >= 0; --k) {
            i0 += v->in_stride[k];
            o0 += v->out_stride[k];
            if (++idx[k] < v->dims[k]) break;
            i0 -= v->in_stride[k] * v->dims[k];
            o0 -= v->out_stride[k] * v->dims[k];
            idx[k] = 0;
        }
        if (k < 0) return;
    }
}

void tq_move_s8(const tq_move_view_t *p, const int8_t *in, int8_t *out) {
    move_view(p, in, out);
}

void tq_move_n_s8(const tq_move_n_params_t *p, const int8_t *in, int8_t *const *outs) {
    if (p->fill_bytes) tq_fill_s8(outs[0], p->fill_bytes, (int8_t)p->fill_value);
    const tq_move_view_t *v = (const tq_move_view_t *)(const void *)p->views;
    for (uint32_t k = 0; k < p->n; ++k) move_view(&v[k], in, outs[v[k].dst]);
}
