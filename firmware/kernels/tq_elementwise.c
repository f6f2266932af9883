/* Element-wise, reduction and data-movement kernels: RELU6, MUL, MEAN, CONCATENATION (RELU and int8 QUANTIZE
 * are tables: tq_lut.c). */
#include "tq_kernels.h"

void tq_clamp_s8(uint32_t size, int32_t lo, int32_t hi, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < size; ++i) out[i] = (int8_t)tq_clamp(in[i], lo, hi);
}

/* Advance a 4-D broadcast by one output element: the output index and both inputs' offsets. */
static void bcast_step(const tq_mul_params_t *s, uint32_t idx[4], uint32_t *i1, uint32_t *i2) {
    for (int ax = 3; ax >= 0; --ax) {
        *i1 += s->stride1[ax];
        *i2 += s->stride2[ax];
        if (++idx[ax] < s->out[ax]) return;
        *i1 -= s->stride1[ax] * s->out[ax];
        *i2 -= s->stride2[ax] * s->out[ax];
        idx[ax] = 0;
    }
}

static uint32_t bcast_size(const tq_mul_params_t *s) {
    return (uint32_t)s->out[0] * s->out[1] * s->out[2] * s->out[3];
}

void tq_mul_s8(const tq_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    uint32_t idx[4] = {0, 0, 0, 0}, i1 = 0, i2 = 0;
    const uint32_t n = bcast_size(p);
    for (uint32_t o = 0; o < n; ++o, bcast_step(p, idx, &i1, &i2)) {
        const int32_t x = p->input1_offset + in1[i1], y = p->input2_offset + in2[i2];
        const int32_t v = tq_requant(x * y, p->mult, p->shift) + p->output_offset;
        out[o] = (int8_t)tq_clamp(v, p->act_min, p->act_max);
    }
}

void tq_concat_s8(const tq_concat_params_t *p, const int8_t *const *ins, int8_t *out) {
    /* Input by input, its chunks a total output row apart: the loop's values stay in registers (out is int8_t,
     * which may alias the parameters, so fields read inside it would be read again after every store). */
    const uint32_t outer = p->outer, inputs = p->n;
    uint32_t total = 0;
    for (uint32_t j = 0; j < inputs; ++j) total += p->chunk[j];
    for (uint32_t j = 0, at = 0; j < inputs; at += p->chunk[j], ++j) {
        const uint32_t n = p->chunk[j];
        const int8_t *src = ins[j];
        int8_t *dst = out + at;
        /* The same loop twice: under n < 32 the compiler drops tq_copy_run's block-copy test from the inner loop
         * (a pixel's channels: the common case, where that test costs as much as the copy). */
        if (n >= 32) {
            for (uint32_t k = 0; k < outer; ++k, src += n, dst += total) tq_copy_run(src, dst, n);
        } else {
            for (uint32_t k = 0; k < outer; ++k, src += n, dst += total) tq_copy_run(src, dst, n);
        }
    }
}

void tq_mean_s8(const tq_mean_params_t *p, const int8_t *in, int8_t *out) {
    /* TFLite's QuantizedMeanOrSum: int32 sums, then one requantization with 1/count
     * folded into the multiplier on the host. */
    for (uint32_t i = 0; i < p->outputs; ++i) p->sums[i] = 0;
    uint32_t k = 0;
    for (uint32_t a = 0; a < p->in[0]; ++a)
        for (uint32_t b = 0; b < p->in[1]; ++b)
            for (uint32_t c = 0; c < p->in[2]; ++c) {
                const uint32_t o = a * p->out_stride[0] + b * p->out_stride[1] + c * p->out_stride[2];
                for (uint32_t d = 0; d < p->in[3]; ++d) p->sums[o + d * p->out_stride[3]] += in[k++];
            }
    const int32_t zp_total = p->input_zp * (int32_t)p->count;
    for (uint32_t i = 0; i < p->outputs; ++i) {
        const int32_t v = tq_requant(p->sums[i] - zp_total, p->mult, p->shift) + p->output_zp;
        out[i] = (int8_t)tq_clamp(v, -128, 127);
    }
}
