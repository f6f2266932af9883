/* Data movement, int8 (tinyq/compile/ops/kernels/move.py): strided views of a tensor copied to another, every
 * stride and start computed on the host. No arithmetic: the bytes TFLM's kernels copy, in the order
 * a view walks them. */
#include "tq_kernels.h"

/* n contiguous bytes: whole 8-word blocks where both ends are word-aligned (tq_copy_s8), otherwise words
 * (the M4's LDR and STR take unaligned addresses), then the last bytes. */
static void move_run(const int8_t *s, int8_t *d, uint32_t n) {
    if (n >= 32 && (((uintptr_t)s | (uintptr_t)d) & 3u) == 0) {
        tq_copy_s8(n, s, d);
        return;
    }
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) tq_store32(d + i, tq_load32(s + i));
    for (; i < n; ++i) d[i] = s[i];
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
            move_run(in + i0, out + o0, (uint32_t)n);
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
    if (p->fill_bytes) {
        int8_t *d = outs[0];
        const uint32_t b = (uint8_t)p->fill_value;
        const uint32_t w = b * 0x01010101u;
        uint32_t i = 0;
        for (; i + 4 <= p->fill_bytes; i += 4) tq_store32(d + i, w);
        for (; i < p->fill_bytes; ++i) d[i] = (int8_t)p->fill_value;
    }
    const tq_move_view_t *v = (const tq_move_view_t *)(const void *)p->views;
    for (uint32_t k = 0; k < p->n; ++k) move_view(&v[k], in, outs[v[k].dst]);
}
