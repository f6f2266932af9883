/* SVDF, int8 input, weights_feature and output, int16 weights_time and activation state: TFLM's
 * EvalIntegerSvdfReference<int16_t> (svdf_common.cc). The state (batch x filters x memory int16, a variable tensor
 * in the arena) carries over from one inference to the next. The parameters (tq_svdf_params_t, generated from
 * tinyq/compile/ops/kernels/svdf.py) are TFLM's Prepare figures, computed on the host; the zero points' terms are
 * folded into feat_bias and bias there, so both dot products are plain SMLAD loops (sums wrap in int32, as
 * TFLM's do). TFLM's int8 kernel applies no
 * fused activation, nor does this one. */
#include <string.h>

#include "tq_kernels.h"

/* sum w[k] * x[k], int8 x int8: two SMLADs a word. */
static int32_t dot_s8(const int8_t *w, const int8_t *x, uint32_t n) {
    int32_t acc = 0;
    uint32_t k = 0;
    for (; k + 4u <= n; k += 4u) {
        const uint32_t a = tq_load32(w + k), b = tq_load32(x + k);
        acc = tq_smlad(tq_sxtb16(a), tq_sxtb16(b), acc);
        acc = tq_smlad(tq_sxtb16_ror8(a), tq_sxtb16_ror8(b), acc);
    }
    for (; k < n; ++k) acc = (int32_t)((uint32_t)acc + (uint32_t)((int32_t)w[k] * (int32_t)x[k]));
    return acc;
}

/* sum w[k] * s[k], int16 x int16: one SMLAD a pair. */
static int32_t dot_s16(const int16_t *w, const int16_t *s, uint32_t n) {
    int32_t acc = 0;
    uint32_t k = 0;
    for (; k + 2u <= n; k += 2u) acc = tq_smlad((int32_t)tq_load32(w + k), (int32_t)tq_load32(s + k), acc);
    if (k < n) acc = (int32_t)((uint32_t)acc + (uint32_t)((int32_t)w[k] * (int32_t)s[k]));
    return acc;
}

void tq_svdf_s8(const tq_svdf_params_t *p, const int8_t *in, void *state, int8_t *out) {
    const uint32_t filters = p->filters, memory = p->memory, n = p->in_dim, rank = p->rank;
    int16_t *s = (int16_t *)state;
    /* The whole state one step left (TFLM's shift, across rows and batches: each row's last column is written next). */
    memmove(s, s + 1, ((uint32_t)p->batch * filters * memory - 1u) * sizeof(int16_t));
    for (uint32_t b = 0; b < p->batch; ++b) {
        const int8_t *x = in + b * n;
        int16_t *sb = s + b * filters * memory;
        /* Feature matmul: each filter's dot with the input, requantized to the int16 state, in its row's last column. */
        for (uint32_t f = 0; f < filters; ++f) {
            const int32_t acc = (int32_t)((uint32_t)dot_s8(p->w_feat + f * n, x, n) + (uint32_t)p->feat_bias[f]);
            const int32_t v = tq_clamp(tq_requant(acc, p->mult1, p->shift1), -32768, 32767);
            sb[f * memory + memory - 1u] = (int16_t)(p->state_zp + v);
        }
        /* Time: each row against its time weights; each unit sums its rank rows onto its bias, then int8. */
        for (uint32_t u = 0; u < p->units; ++u) {
            int32_t acc = p->bias[u];
            for (uint32_t r = 0; r < rank; ++r) {
                const uint32_t f = u * rank + r;
                acc = (int32_t)((uint32_t)acc + (uint32_t)dot_s16(p->w_time + f * memory, sb + f * memory, memory));
            }
            out[b * p->units + u] = (int8_t)tq_clamp(tq_requant(acc, p->mult2, p->shift2) + p->out_zp, -128, 127);
        }
    }
}
