/*
 * The channel-planar 3x3 depthwise (tq_depthwise3x3_plane_s8): one channel at a time through an int16
 * plane (tq_dw3x3_plane in tq_m4_dw_plane.S).
 */
#include <stddef.h>

#include "tq_internal.h"

#ifndef TQ_DSP
/* Plain-C twins of the inner loops of tq_m4_dw_plane.S (assembled on a Cortex-M4 with DSP), on the same data layout. */
static void dw3x3_plane(const tq_dw_plane_t *t, int zq) {
    const uint32_t *filter = t->filter;
    for (int32_t c = 0; c < t->channels; ++c, filter += 10) {
        /* With two planes an even channel gathers both, the odd one after it reads the second. */
        const int second = t->gather2 && (c & 1);
        const int8_t *src = t->src + c;
        if (!second) {
            for (int32_t v = 0; v < t->n_v; ++v) {
                int16_t *d = (int16_t *)(void *)((char *)t->dst + v * t->row_bytes);
                int16_t *d2 = (int16_t *)(void *)((char *)d + t->gather2);
                for (int32_t u = 0; u < t->n_u; ++u) {
                    d[u] = src[v * t->dv + u * t->du];
                    if (t->gather2) d2[u] = src[v * t->dv + u * t->du + 1];
                }
            }
        }
        const int32_t row = t->row_bytes / 2, pairs = t->pair_bytes / 4, outputs = pairs + t->single_bytes / 4;
        const int32_t bias = (int32_t)filter[0];
        const tq_chan_t q = {0, (int32_t)filter[1], (int32_t)filter[2], (int32_t)filter[3]};
        const uint32_t *w = filter + 4;
        const int16_t *first = (const int16_t *)(const void *)((const char *)t->p + (second ? t->gather2 : 0));
        int8_t *o_first = t->out + c;
        for (int32_t r = 0; r < t->rows; ++r) {
            const int16_t *x = first;
            int8_t *o = o_first;
            for (int32_t i = 0; i < outputs; ++i, x += 2) {  /* a pair (stride 1) or one output: two halfwords on */
                uint32_t a0 = (uint32_t)bias, a1 = (uint32_t)bias;
                for (int k = 0; k < 3; ++k) {
                    const int16_t *z = x + k * row;
                    const int32_t k0 = lane(w[2 * k], 0), k1 = lane(w[2 * k], 1), k2 = lane(w[2 * k + 1], 0);
                    a0 += (uint32_t)(z[0] * k0) + (uint32_t)(z[1] * k1) + (uint32_t)(z[2] * k2);
                    a1 += (uint32_t)(z[1] * k0) + (uint32_t)(z[2] * k1) + (uint32_t)(z[3] * k2);
                }
                *o = (int8_t)tq_ssat8(zq ? tq_rq_fast_x2_z((int32_t)a0, &q) : tq_rq_fast_x2((int32_t)a0, &q));
                o += t->out_step;
                if (i < pairs) {
                    *o = (int8_t)tq_ssat8(zq ? tq_rq_fast_x2_z((int32_t)a1, &q) : tq_rq_fast_x2((int32_t)a1, &q));
                    o += t->out_step;
                }
            }
            first = (const int16_t *)(const void *)((const char *)first + t->next_row);
            o_first += t->out_next_row;
        }
    }
}

void tq_dw3x3_plane(const tq_dw_plane_t *t) { dw3x3_plane(t, 0); }
void tq_dw3x3_plane_z(const tq_dw_plane_t *t) { dw3x3_plane(t, 1); }
#endif

void tq_depthwise3x3_plane_s8(const tq_conv_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out) {
    /* u: along a plane row (the width, or the height when transposed); v: across. */
    const int C = p->in_c, t = p->transposed;
    const int in_u = t ? p->in_h : p->in_w, in_v = t ? p->in_w : p->in_h;
    const int out_u = t ? p->out_h : p->out_w, out_v = t ? p->out_w : p->out_h;
    const int s_u = t ? p->stride_h : p->stride_w, s_v = t ? p->stride_w : p->stride_h;
    const int pad_u = t ? p->pad_h : p->pad_w, pad_v = t ? p->pad_w : p->pad_h;
    const int pw = (int)tq_dw_plane_width((uint32_t)out_u, (uint32_t)s_u), ph = (out_v - 1) * s_v + 3;
    const int32_t in_row = (int32_t)p->in_w * C, out_row = (int32_t)p->out_w * C;
    int16_t *plane = (int16_t *)p->scratch;
    /* The zero points around the inputs, once: each channel rewrites only the inputs. Two a word (the
     * scratch is word-aligned and its planes rows of an even tq_dw_plane_width). */
    const uint32_t pad2 = 0x00010001u * (uint16_t)(int16_t)p->pad_value;
    uint32_t *fill = (uint32_t *)p->scratch;
    for (uint32_t i = 0, n = tq_depthwise3x3_plane_scratch_bytes(p) / 4; i < n; ++i) fill[i] = pad2;
    tq_dw_plane_t f = {0};  /* the per-channel fields are the kernel's own */
    /* The inputs the plane holds: its rows and columns that are not padding. */
    f.n_v = in_v < ph - pad_v ? in_v : ph - pad_v;
    f.n_u = in_u < pw - pad_u ? in_u : pw - pad_u;
    f.du = t ? in_row : C;
    f.dv = t ? C : in_row;
    f.dst = plane + pad_v * pw + pad_u;
    f.out_step = t ? out_row : C;
    f.p = plane;
    f.rows = out_v;
    f.pair_bytes = s_u == 1 ? 4 * (out_u / 2) : 0;
    f.single_bytes = s_u == 1 ? 4 * (out_u & 1) : 4 * out_u;
    f.next_row = 2 * s_v * pw;
    f.out_next_row = t ? C : out_row;
    f.row_bytes = 2 * pw;
    /* Two planes: channels c and c + 1 (c even) gathered together, the second plane from the first's
     * last row where that is a row of zero points. */
    f.gather2 = p->planes == 2 ? 2 * (ph - (int32_t)tq_dw_plane_share(p, (uint32_t)ph)) * pw : 0;
    f.src = in;
    f.out = out;
    f.filter = filter;  /* 10 words a channel */
    f.channels = C;
    if (tq_rq_z(p->output_offset)) tq_dw3x3_plane_z(&f);
    else tq_dw3x3_plane(&f);
}
