/* Data movement, int8 (tinyq/compile/ops/kernels/move.py): strided views of a tensor copied to another, every
 * stride and start computed on the host. No arithmetic: the bytes TFLM's kernels copy, in the order
 * a view walks them. */
#include "tq_kernels.h"

/* n bytes of d set to value, four words a step. */
static void fill_bytes(int8_t *d, uint32_t n, int8_t value) {
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

/* The innermost axis of a view: n elements, si and so apart. */
static inline __attribute__((always_inline)) void move_line(const int8_t *s, int8_t *d, int32_t n, int32_t si,
                                                            int32_t so) {
    if (si == 1 && so == 1) {
        tq_copy_run(s, d, (uint32_t)n);
    } else if (so == 1 && n >= 8) {
        gather_run(s, si, d, (uint32_t)n);
    } else {
        for (int32_t j = 0; j < n; ++j) d[j * so] = s[j * si];
    }
}

/* One view: the inner three axes in nested loops over locals (the compiler keeps them in registers: `out` is
 * int8_t, which may alias the parameters, so fields read inside the loops would be read again after every
 * store), the outer three by an odometer (offsets, not pointers, so nothing points outside the tensors
 * between steps). */
static void move_view(const tq_move_view_t *v, const int8_t *in, int8_t *out) {
    const int32_t n = v->dims[5], si = v->in_stride[5], so = v->out_stride[5];
    const int32_t n4 = v->dims[4], si4 = v->in_stride[4], so4 = v->out_stride[4];
    const int32_t n3 = v->dims[3], si3 = v->in_stride[3], so3 = v->out_stride[3];
    int32_t idx[3] = {0, 0, 0};
    int32_t i0 = v->in_start, o0 = v->out_start;
    for (;;) {
        const int8_t *s3 = in + i0;
        int8_t *d3 = out + o0;
        for (int32_t a = 0; a < n3; ++a, s3 += si3, d3 += so3) {
            const int8_t *s4 = s3;
            int8_t *d4 = d3;
            for (int32_t b = 0; b < n4; ++b, s4 += si4, d4 += so4) move_line(s4, d4, n, si, so);
        }
        int k = 2;
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
    for (uint32_t k = 0; k < p->fill_n; ++k) fill_bytes(outs[0] + p->fill[2 * k], p->fill[2 * k + 1], (int8_t)p->fill_value);
    const tq_move_view_t *v = (const tq_move_view_t *)(const void *)p->views;
    for (uint32_t k = 0; k < p->n; ++k) move_view(&v[k], in, outs[v[k].dst]);
}
