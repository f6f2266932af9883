/* Reductions, int8: REDUCE_MAX / REDUCE_MIN (TFLM's ReduceGeneric), ARG_MAX / ARG_MIN (ArgMinMax) and
 * L2_NORMALIZATION (reference_integer_ops::L2Normalization with gemmlowp's inverse square root). The
 * geometry is computed on the host (tinyq/compile/ops/kernels/reduce.py); MEAN and SUM are tq_mean_s8. */
#include "tq_kernels.h"

void tq_reduce_minmax_s8(const tq_reduce_params_t *p, const int8_t *in, int8_t *out) {
    const int8_t init = p->is_max ? -128 : 127;
    for (uint32_t i = 0; i < p->outputs; ++i) out[i] = init;
    const uint32_t s3 = p->out_stride[3];
    for (uint32_t a = 0; a < p->in[0]; ++a)
        for (uint32_t b = 0; b < p->in[1]; ++b)
            for (uint32_t c = 0; c < p->in[2]; ++c) {
                int8_t *o = out + a * p->out_stride[0] + b * p->out_stride[1] + c * p->out_stride[2];
                if (p->is_max) {
                    for (uint32_t d = 0; d < p->in[3]; ++d, ++in, o += s3) if (*in > *o) *o = *in;
                } else {
                    for (uint32_t d = 0; d < p->in[3]; ++d, ++in, o += s3) if (*in < *o) *o = *in;
                }
            }
}

/* The first index of the extreme of n values, step apart: strictly better only, as TFLM's std::greater / less.
 * Max runs on the values, min on their complements (~x reverses the order of int8 values exactly). */
static inline __attribute__((always_inline)) uint32_t arg_best(const int8_t *v, uint32_t n, uint32_t step,
                                                               int32_t flip) {
    int32_t best = v[0] ^ flip;
    uint32_t at = 0;
    for (uint32_t k = 1; k < n; ++k) {
        const int32_t x = v[k * step] ^ flip;
        if (x > best) {
            best = x;
            at = k;
        }
    }
    return at;
}

void tq_arg_minmax_s8(const tq_arg_params_t *p, const int8_t *in, void *out) {
    /* Fields in locals: the outputs are int32/int64 stores, which may alias the parameters. */
    const uint32_t inner = p->inner, outer = p->outer, axis = p->axis, wide = p->wide;
    const int32_t flip = p->is_max ? 0 : -1;
    int32_t *o32 = (int32_t *)out;
    int64_t *o64 = (int64_t *)out;
    for (uint32_t o = 0; o < outer; ++o, in += axis * inner) {
        for (uint32_t i = 0; i < inner; ++i) {
            /* The last axis (inner 1) gets its own inlined copy, with a constant step. */
            const uint32_t at = inner == 1 ? arg_best(in, axis, 1, flip) : arg_best(in + i, axis, inner, flip);
            if (wide) *o64++ = (int64_t)at;
            else *o32++ = (int32_t)at;
        }
    }
}

/* gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent. */
static int32_t sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((1LL << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* TFLite's GetInvSqrtQuantizedMultiplierExp(input, kReverseShift = -1): 1/sqrt(input) as a multiplier and a
 * (left) shift, by five Newton-Raphson steps in gemmlowp's Q3.28. */
static void inv_sqrt(int32_t input, int32_t *mult, int32_t *shift) {
    if (input <= 1) {  /* 0 (an all-zero-point row) is taken as 1 */
        *mult = INT32_MAX;
        *shift = 0;
        return;
    }
    int32_t s = 11;
    while (input >= (1 << 29)) {
        input /= 4;
        ++s;
    }
    const int pairs = ((int)__builtin_clz((uint32_t)input) - 1) / 2 - 1;
    s -= pairs;
    input = (int32_t)((uint32_t)input << (2 * pairs));
    const int32_t half_input = tq_rdiv_pot(input >> 1, 1);
    const int32_t half_three = (1 << 28) + (1 << 27);
    int32_t x = 1 << 28;  /* 1.0 in Q3.28 */
    for (int i = 0; i < 5; ++i) {
        const int32_t x3 = sat_shl(tq_sat_rdh_mul(tq_sat_rdh_mul(x, x), x), 6);
        x = sat_shl(tq_sat_rdh_mul(half_three, x) - tq_sat_rdh_mul(half_input, x3), 3);
    }
    x = tq_sat_rdh_mul(x, 1518500250);  /* sqrt(2) / 2 in Q0.31 */
    if (s < 0) {
        x = (int32_t)((uint32_t)x << -s);
        s = 0;
    }
    *mult = x;
    *shift = -s;
}

void tq_l2norm_s8(const tq_l2norm_params_t *p, const int8_t *in, int8_t *out) {
    const uint32_t depth = p->depth;
    const int32_t zp = p->input_zp;
    for (uint32_t r = 0; r < p->outer; ++r, in += depth, out += depth) {
        int32_t acc = 0;
        for (uint32_t i = 0; i < depth; ++i) {
            const int32_t v = in[i] - zp;
            acc += v * v;
        }
        int32_t mult, shift;
        inv_sqrt(acc, &mult, &shift);
        /* the output in Q0.7: the shift + 7 of TFLM's kOutputScale (in == out is safe: in[i] is read first) */
        for (uint32_t i = 0; i < depth; ++i) out[i] = (int8_t)tq_clamp(tq_requant(in[i] - zp, mult, shift + 7), -128, 127);
    }
}
