/* Binary element-wise ops with broadcasting, int8, bit-exact with TFLM's reference kernels: ADD (the broadcasting
 * one), SUB, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, DIV, PRELU. The parameters (tq_binary_params_t, generated from
 * tinyq/compile/ops/kernels/binary.py) are computed on the host, the broadcast's axes merged there as TFLM's
 * BroadcastBinaryOpSimple merges them: the innermost (shape[4]) is a row in which each input steps by 1 or stays
 * (0), the outer four an odometer. Each op has an entry point and a row function; an operand that stays in a row is
 * read (and scaled) once. */
#include "tq_kernels.h"

/* What combine() computes (a constant in each row function it is inlined into). */
enum { TQ_BIN_ADD, TQ_BIN_SUB, TQ_BIN_SQUARED_DIFFERENCE };

typedef void (*tq_binary_row_t)(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b,
                                uint32_t sb, int8_t *out, uint32_t n);

#define TQ_INLINE static inline __attribute__((always_inline))

/* ---- ADD, SUB, SQUARED_DIFFERENCE: each input's (x - zp) << left_shift scaled by its multiplier
 * (MultiplyByQuantizedMultiplierSmallerThanOneExp, shift <= 0: tq_requant), then combined ---- */

TQ_INLINE int32_t scale1(const tq_binary_params_t *p, int8_t x) {
    return tq_requant((int32_t)((uint32_t)(x + p->input1_offset) << p->left_shift), p->mult1, p->shift1);
}

TQ_INLINE int32_t scale2(const tq_binary_params_t *p, int8_t x) {
    return tq_requant((int32_t)((uint32_t)(x + p->input2_offset) << p->left_shift), p->mult2, p->shift2);
}

TQ_INLINE int8_t combine(const tq_binary_params_t *p, int32_t x, int32_t y, int op) {
    int32_t raw;
    if (op == TQ_BIN_ADD) {
        raw = x + y;
    } else if (op == TQ_BIN_SUB) {
        raw = x - y;
    } else {  /* SQUARED_DIFFERENCE: |x - y| < 2^15, its square fits */
        raw = (x - y) * (x - y);
    }
    return (int8_t)tq_clamp(tq_requant(raw, p->output_mult, p->output_shift) + p->output_offset, p->act_min,
                            p->act_max);
}

TQ_INLINE void scaled_row(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                          int8_t *out, uint32_t n, int op) {
    if (sb == 0) {
        const int32_t y = scale2(p, *b);
        for (uint32_t i = 0; i < n; ++i) out[i] = combine(p, scale1(p, a[i]), y, op);
    } else if (sa == 0) {
        const int32_t x = scale1(p, *a);
        for (uint32_t i = 0; i < n; ++i) out[i] = combine(p, x, scale2(p, b[i]), op);
    } else {
        for (uint32_t i = 0; i < n; ++i) out[i] = combine(p, scale1(p, a[i]), scale2(p, b[i]), op);
    }
}

static void row_add(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                    int8_t *out, uint32_t n) {
    scaled_row(p, a, sa, b, sb, out, n, TQ_BIN_ADD);
}

static void row_sub(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                    int8_t *out, uint32_t n) {
    scaled_row(p, a, sa, b, sb, out, n, TQ_BIN_SUB);
}

static void row_squared_difference(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b,
                                   uint32_t sb, int8_t *out, uint32_t n) {
    scaled_row(p, a, sa, b, sb, out, n, TQ_BIN_SQUARED_DIFFERENCE);
}

/* ---- MAXIMUM, MINIMUM: the raw values, as TFLM compares them ---- */

static void row_maximum(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                        int8_t *out, uint32_t n) {
    (void)p;
    for (uint32_t i = 0; i < n; ++i, a += sa, b += sb) out[i] = *a > *b ? *a : *b;
}

static void row_minimum(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                        int8_t *out, uint32_t n) {
    (void)p;
    for (uint32_t i = 0; i < n; ++i, a += sa, b += sb) out[i] = *a < *b ? *a : *b;
}

/* ---- DIV: reference_ops::DivElementwise ---- */

static int clz32(uint32_t x) {
#if defined(__GNUC__)
    return x ? __builtin_clz(x) : 32;
#else
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
#endif
}

/* RoundingDivideByPOT as TFLM's x86 build computes it: up to 31 as defined; from 32 on (C leaves it undefined)
 * its mask (1ll << e) - 1 truncates to -1 and the x86 shift takes e mod 32, so x >> (e & 31), plus 1 where
 * x >= 0 (the remainder, all of x, is above the threshold -1 + (x < 0)). */
TQ_INLINE int32_t rdiv_pot_x86(int32_t x, int e) {
    if (e <= 31) return tq_rdiv_pot(x, e);
    return (x >> (e & 31)) + (x >= 0);
}

TQ_INLINE int8_t div1(const tq_binary_params_t *p, int32_t v1, int32_t v2) {
    if (v2 < 0) {  /* the reciprocal needs a positive divisor */
        v1 = -v1;
        v2 = -v2;
    }
    const int recip_shift = 31 - clz32((uint32_t)v2);     /* GetReciprocal's num_bits_over_unit; -1 for 0 */
    const int headroom = clz32((uint32_t)(v1 ^ (v1 >> 31))) - 1;  /* CountLeadingSignBits; 31 for 0 */
    const int32_t quotient = tq_sat_rdh_mul((int32_t)((uint32_t)v1 << headroom), p->recip[v2]);
    const int e = headroom + recip_shift - p->output_shift;  /* 0..63: the host checked output_shift */
    const int32_t v = rdiv_pot_x86(tq_sat_rdh_mul(quotient, p->output_mult), e) + p->output_offset;
    return (int8_t)tq_clamp(v, p->act_min, p->act_max);
}

static void row_div(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                    int8_t *out, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i, a += sa, b += sb)
        out[i] = div1(p, *a + p->input1_offset, *b + p->input2_offset);
}

/* ---- PRELU: reference_ops::BroadcastPrelu4DSlow (in1 the input, in2 alpha) ---- */

static void row_prelu(const tq_binary_params_t *p, const int8_t *a, uint32_t sa, const int8_t *b, uint32_t sb,
                      int8_t *out, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i, a += sa, b += sb) {
        const int32_t x = *a + p->input1_offset;
        const int32_t y = x >= 0 ? tq_requant(x, p->mult1, p->shift1)
                                 : tq_requant(x * (*b + p->input2_offset), p->mult2, p->shift2);
        out[i] = (int8_t)tq_clamp(y + p->output_offset, p->act_min, p->act_max);
    }
}

/* The rows of the merged broadcast, one call of `row` each: an odometer over the outer four axes. */
static void binary_loop(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out,
                        tq_binary_row_t row) {
    const uint32_t n = p->shape[4], sa = p->stride1[4], sb = p->stride2[4];
    const uint32_t count = p->shape[0] * p->shape[1] * p->shape[2] * p->shape[3];
    uint32_t idx[4] = {0, 0, 0, 0}, i1 = 0, i2 = 0;
    for (uint32_t r = 0; r < count; ++r, out += n) {
        row(p, in1 + i1, sa, in2 + i2, sb, out, n);
        for (int ax = 3; ax >= 0; --ax) {
            i1 += p->stride1[ax];
            i2 += p->stride2[ax];
            if (++idx[ax] < p->shape[ax]) break;
            i1 -= p->stride1[ax] * p->shape[ax];
            i2 -= p->stride2[ax] * p->shape[ax];
            idx[ax] = 0;
        }
    }
}

/* One entry point an op, so that a firmware links only the row functions its model uses. */
void tq_add_bcast_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_add);
}

void tq_sub_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_sub);
}

void tq_squared_difference_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_squared_difference);
}

void tq_maximum_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_maximum);
}

void tq_minimum_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_minimum);
}

void tq_div_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_div);
}

void tq_prelu_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, row_prelu);
}
