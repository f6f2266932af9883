/*
 * int8 softmax: the fixed-point algorithm of TFLite's reference kernel (gemmlowp
 * exp_on_negative_values and a Newton-Raphson division), so results are bit-exact.
 * Differences are Q5.26, exps Q0.31, their sum Q12.19. (LOGISTIC and TANH, the same
 * arithmetic on one input byte, are 256-byte tables built on the host: kernels/unary.py.)
 */
#include "tq_kernels.h"

#define Q_ONE_Q0 INT32_MAX /* 1.0 in Q0.31 saturates to the largest raw value */

static int32_t sat_shl(int32_t x, int exponent) {
    /* SaturatingRoundingMultiplyByPOT for a positive exponent. */
    const int32_t threshold = (int32_t)((1LL << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
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

static int32_t exp_on_negative_values(int32_t a, int int_bits) {
    /* a: Q(int_bits).(31-int_bits), a <= 0, int_bits <= 5. Result Q0.31. */
    const int frac_bits = 31 - int_bits;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = exp_quarter_interval(sat_shl(a_mod_quarter_minus_one_quarter, int_bits));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    /* Barrel shifter: multiply by exp(-2^k) for each set bit of the remainder. */
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    for (int k = 0; k < 7 && k - 2 < int_bits; ++k) {
        const int exponent = k - 2;
        if (remainder & (1 << (frac_bits + exponent))) result = tq_sat_rdh_mul(result, multipliers[k]);
    }
    if (a == 0) result = Q_ONE_Q0;
    return result;
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

/* Out of line: called once a softmax row, and inlined it only grows the code. */
__attribute__((noinline)) static int32_t newton_one_over_half_denominator(int32_t a) {
    /* x ~ 1/((1+a)/2) in Q2.29 for a in [0, 1) (Q0.31): three Newton-Raphson steps. */
    const int64_t sum = (int64_t)a + Q_ONE_Q0;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;
    int32_t x = c48_17 + tq_sat_rdh_mul(half_denominator, cneg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = tq_sat_rdh_mul(half_denominator, x);
        const int32_t one_minus = (1 << 29) - hdx;
        x = x + sat_shl(tq_sat_rdh_mul(x, one_minus), 2);
    }
    return x;
}

static int32_t one_over_one_plus_x(int32_t a) {
    /* 1/(1+a), Q0.31 in and out. */
    return sat_shl(newton_one_over_half_denominator(a), 1);
}

void tq_softmax_s8(const tq_softmax_params_t *p, const int8_t *in, int8_t *out) {
    const int depth = p->depth;
    for (int r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (int32_t)r * depth;
        int8_t *y = out + (int32_t)r * depth;
        int32_t max_in_row = -128;
        for (int c = 0; c < depth; ++c) if (x[c] > max_in_row) max_in_row = x[c];

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tq_sat_rdh_mul((int32_t)((uint32_t)diff << p->input_left_shift), p->input_mult);
                sum_of_exps += tq_rdiv_pot(exp_on_negative_values(scaled, 5), 12);
            }
        }
        const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        const int num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = one_over_one_plus_x(shifted_sum_minus_one);
        const int exponent = num_bits_over_unit + 31 - 8;

        for (int c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tq_sat_rdh_mul((int32_t)((uint32_t)diff << p->input_left_shift), p->input_mult);
                const int32_t e = exp_on_negative_values(scaled, 5);
                const int32_t unsat = tq_rdiv_pot(tq_sat_rdh_mul(shifted_scale, e), exponent);
                y[c] = (int8_t)tq_clamp(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
