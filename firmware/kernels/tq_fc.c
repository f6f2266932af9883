/*
 * FULLY_CONNECTED, int8 with per-channel (or per-tensor) requantization: the input row as int16
 * pairs (the columns' layout of tq_conv.c), four output channels at a time (tq_mv_4x1, tq_fc_tile).
 */
#include <stddef.h>

#include "tq_internal.h"

#ifndef TQ_DSP
/* Plain-C twins of the inner loops of tq_m4_fc.S (assembled on a Cortex-M4 with DSP), on the same data layout. */
void tq_mv_4x1(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]) {
    int32_t s[4] = {0, 0, 0, 0};
    const uint32_t *w2 = w + k_pairs;  /* the second channel pair */
    for (uint32_t j = 0; j < k_pairs; ++j) {
        s[0] = tq_smlad(tq_sxtb16(w[j]), vec[j], s[0]);
        s[1] = tq_smlad(tq_sxtb16_ror8(w[j]), vec[j], s[1]);
        s[2] = tq_smlad(tq_sxtb16(w2[j]), vec[j], s[2]);
        s[3] = tq_smlad(tq_sxtb16_ror8(w2[j]), vec[j], s[3]);
    }
    for (int i = 0; i < 4; ++i) acc[i] = s[i];
}

void tq_mv_4x1_w16(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]) {
    int32_t s[4] = {0, 0, 0, 0};
    const uint32_t *w2 = w + 2 * k_pairs;  /* the second channel pair */
    for (uint32_t j = 0; j < k_pairs; ++j) {
        s[0] = tq_smlad((int32_t)w[2 * j], vec[j], s[0]);
        s[1] = tq_smlad((int32_t)w[2 * j + 1], vec[j], s[1]);
        s[2] = tq_smlad((int32_t)w2[2 * j], vec[j], s[2]);
        s[3] = tq_smlad((int32_t)w2[2 * j + 1], vec[j], s[3]);
    }
    for (int i = 0; i < 4; ++i) acc[i] = s[i];
}

static void fc_tile(const tq_fc_tile_t *t, int w16) {
    const uint32_t k_pairs = (uint32_t)(t->vec_end - t->vec);
    const uint32_t *w = t->w;
    for (uint32_t i = 0; i < t->groups; ++i, w += 2 * k_pairs * (w16 ? 2u : 1u)) {
        int32_t acc[4];
        if (w16) tq_mv_4x1_w16(w, t->vec, k_pairs, acc);
        else tq_mv_4x1(w, t->vec, k_pairs, acc);
        for (int n = 0; n < 4; ++n) t->out[4 * i + n] = (int8_t)tq_ssat8(tq_rq_fast(acc[n], t->chan + 4 * i + n));
    }
}

void tq_fc_tile(const tq_fc_tile_t *t) { fc_tile(t, 0); }
void tq_fc_tile_w16(const tq_fc_tile_t *t) { fc_tile(t, 1); }
#endif

/* ---- FULLY_CONNECTED ---- */

static inline __attribute__((always_inline)) void fc_body(const tq_fc_params_t *p, const int8_t *in,
                                                          const uint32_t *filter, int8_t *out, int fast, int full) {
    const int depth = p->in_depth, n_out = p->out_depth, P = p->k_pairs;
    const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t *vec = p->scratch;
    for (int r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (int32_t)r * depth;
        int8_t *o = out + (int32_t)r * n_out;
        int k = 0;
        for (; k + 4 <= depth; k += 4) {
            const uint32_t v = tq_load32(x + k);
            vec[k / 2] = tq_sxtb16(v);
            vec[k / 2 + 1] = tq_sxtb16_ror8(v);
        }
        if (k < depth) {  /* the last 1-3 inputs (their padding weights are 0) */
            int8_t tail[4] = {0, 0, 0, 0};
            for (int i = 0; k + i < depth; ++i) tail[i] = x[k + i];
            const uint32_t v = tq_load32(tail);
            vec[k / 2] = tq_sxtb16(v);
            vec[k / 2 + 1] = tq_sxtb16_ror8(v);
        }
        const uint32_t *w = filter;
        int c = 0;
        if (fast && full && n_out >= 4) {
            /* The common case, all in the inner loop's registers. */
            const tq_fc_tile_t tile = {w, vec, vec + P, p->chan, o, (uint32_t)n_out / 4};
            if (p->w16) tq_fc_tile_w16(&tile);
            else tq_fc_tile(&tile);
            c = n_out & ~3;
            w += c / 2 * P * (p->w16 ? 2 : 1);
        }
        for (; c < n_out; c += 4, w += 2 * P * (p->w16 ? 2 : 1)) {
            int32_t acc[4];
            if (p->w16) tq_mv_4x1_w16(w, vec, (uint32_t)P, acc);
            else tq_mv_4x1(w, vec, (uint32_t)P, acc);
            const int m = n_out - c < 4 ? n_out - c : 4;
            for (int i = 0; i < m; ++i) o[c + i] = rq(acc[i], p->chan + c + i, fast, full, zp, lo, hi);
        }
    }
}

void tq_fully_connected_s8(const tq_fc_params_t *p, const int8_t *in, const uint32_t *filter, int8_t *out) {
    const int full = p->act_min == -128 && p->act_max == 127;
    if (p->fast && full) fc_body(p, in, filter, out, 1, 1);
    else if (p->fast) fc_body(p, in, filter, out, 1, 0);
    else fc_body(p, in, filter, out, 0, 0);
}
