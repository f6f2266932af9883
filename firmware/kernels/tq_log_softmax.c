/*
 * LOG_SOFTMAX, int8: TFLM's reference_ops::LogSoftmaxQuantized, bit-exact. The parameters
 * (tq_log_softmax_params_t, generated from tinyq/compile/ops/kernels/log_softmax.py) are computed on the
 * host as TFLM's Prepare does. Differences are Q5.26, exps Q0.31, their sum Q12.19, its log Q5.26
 * (gemmlowp's exp_on_negative_values and TFLite's log_x_for_x_greater_than_or_equal_to_1).
 *
 * The exp and 1/(1+x) helpers are those of tq_softmax.c, repeated here so that file's code (whose cycles
 * the benchmarks count) stays as it is.
 */
#include "tq_kernels.h"

#define Q_ONE_Q0 INT32_MAX /* 1.0 in Q0.31 saturates to the largest raw value */

static int32_t sat_shl(int32_t x, int exponent) {
    /* SaturatingRoundingMultiplyByPOT(Param) for 0 <= exponent <= 31. */
    if (exponent == 0) return x;
    const int32_t threshold = (int32_t)((1LL << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t sub_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

static int32_t sat_add(int32_t a, int32_t b) {
    const int64_t s = (int64_t)a + b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

static int32_t sat_sub(int32_t a, int32_t b) {
    const int64_t s = (int64_t)a - b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

static int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

static int clz32(uint32_t x) {
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

static int32_t exp_quarter_interval(int32_t a) {
    /* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);            /* a + 1/8 */
    const int32_t x2 = tq_sat_rdh_mul(x, x);
    const int32_t x3 = tq_sat_rdh_mul(x2, x);
    const int32_t x4 = tq_sat_rdh_mul(x2, x2);
    const int32_t x4_over_4 = tq_rdiv_pot(x4, 2);
    const int32_t poly = tq_rdiv_pot(tq_sat_rdh_mul(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tq_sat_rdh_mul(constant_term, x + poly);
}

static int32_t exp_on_negative_values_q5(int32_t a) {
    /* a: Q5.26, a <= 0. Result Q0.31. */
    const int frac_bits = 26;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_quarter_interval(sat_shl(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    /* Barrel shifter: multiply by exp(-2^k) for each set bit of the remainder. */
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    for (int k = 0; k < 7; ++k) {
        if (remainder & (1 << (frac_bits + k - 2))) result = tq_sat_rdh_mul(result, multipliers[k]);
    }
    if (a == 0) result = Q_ONE_Q0;
    return result;
}

static int32_t one_over_one_plus_x(int32_t a) {
    /* 1/(1+a), Q0.31 in and out, a in [0, 1): three Newton-Raphson steps in Q2.29. */
    const int32_t half_denominator = rounding_half_sum(a, Q_ONE_Q0);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;
    int32_t x = add_wrap(c48_17, tq_sat_rdh_mul(half_denominator, cneg32_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = tq_sat_rdh_mul(half_denominator, x);
        const int32_t one_minus = sub_wrap(1 << 29, hdx);
        x = add_wrap(x, sat_shl(tq_sat_rdh_mul(x, one_minus), 2));
    }
    return sat_shl(x, 1);
}

static int32_t log_q5_of_q12(int32_t z_a) {
    /* log_x_for_x_greater_than_or_equal_to_1<5>(Q12.19 z_a): Q5.26, accumulated in Q6.25. */
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
    const int32_t shifted_quarter = tq_rdiv_pot(536870912, 6); /* 1/4 in Q6.25 */
    const int z_a_headroom_plus_1 = clz32((uint32_t)z_a);
    const int32_t r_a_tmp = sat_shl(z_a, z_a_headroom_plus_1 - 1);
    const int32_t r_a_raw = sat_shl(tq_sat_rdh_mul(r_a_tmp, sqrt_half), 1);
    const int32_t z_a_pow_2_adj = sat_add(sat_shl(12 - z_a_headroom_plus_1, 25), shifted_quarter);
    const int32_t z_b = tq_sat_rdh_mul(z_a, sqrt_half);
    const int z_b_headroom = clz32((uint32_t)z_b) - 1;
    const int32_t r_b_raw = sat_shl(z_a, z_b_headroom);
    const int32_t z_b_pow_2_adj = sat_sub(sat_shl(12 - z_b_headroom, 25), shifted_quarter);
    const int32_t r = r_a_raw < r_b_raw ? r_a_raw : r_b_raw;
    const int32_t z_pow_2_adj = z_a_pow_2_adj > z_b_pow_2_adj ? z_a_pow_2_adj : z_b_pow_2_adj;
    const int32_t p = rounding_half_sum(r, sqrt_sqrt_half);
    int32_t q = sub_wrap(r, sqrt_sqrt_half);
    q = add_wrap(q, q);
    const int32_t common_sq = tq_sat_rdh_mul(q, q);
    const int32_t num = add_wrap(tq_sat_rdh_mul(q, r), tq_sat_rdh_mul(tq_sat_rdh_mul(q, common_sq), alpha_n));
    const int32_t denom_minus_one =
        add_wrap(tq_sat_rdh_mul(p, add_wrap(add_wrap(alpha_i, q), tq_sat_rdh_mul(alpha_d, common_sq))),
                 tq_sat_rdh_mul(alpha_f, q));
    const int32_t recip_denom = one_over_one_plus_x(denom_minus_one);
    const int32_t num_scaled = tq_rdiv_pot(num, 6); /* Q0.31 -> Q6.25 */
    return sat_shl(add_wrap(tq_sat_rdh_mul(z_pow_2_adj, log_2), tq_sat_rdh_mul(num_scaled, recip_denom)), 1);
}

void tq_log_softmax_s8(const tq_log_softmax_params_t *p, const int8_t *in, int8_t *out) {
    const uint32_t depth = p->depth;
    for (uint32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t max_in_row = -128;
        for (uint32_t c = 0; c < depth; ++c) if (x[c] > max_in_row) max_in_row = x[c];

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (uint32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t diff_q5 = tq_requant(diff, p->input_mult, p->input_left_shift);
                sum_of_exps = add_wrap(sum_of_exps, tq_rdiv_pot(exp_on_negative_values_q5(diff_q5), 12));
            }
        }
        const int32_t log_sum_q5 = log_q5_of_q12(sum_of_exps);
        /* Differences at or below this give the lowest output (TFLM: "> below instead of >= above"). */
        const int32_t shifted = add_wrap(log_sum_q5, INT32_MIN);
        const int32_t back = tq_requant(shifted, p->reverse_mult, p->reverse_shift);
        const int32_t adjusted_diff_min = back > p->diff_min - 1 ? back : p->diff_min - 1;

        /* Each byte is read before it is written: in place when out == in. */
        for (uint32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff > adjusted_diff_min) {
                const int32_t diff_q5 = tq_requant(diff, p->input_mult, p->input_left_shift);
                const int32_t o = tq_rdiv_pot(sub_wrap(diff_q5, log_sum_q5), 31 - 5 - 4) + 127;
                y[c] = (int8_t)tq_clamp(o, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
