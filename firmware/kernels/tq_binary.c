/* Binary element-wise ops with broadcasting, int8, bit-exact with TFLM's reference kernels: ADD (the broadcasting
 * one), SUB, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, DIV, PRELU. The parameters (tq_binary_params_t, generated from
 * tinyq/compile/ops/kernels/binary.py) are computed on the host, the broadcast's axes merged there as TFLM's
 * BroadcastBinaryOpSimple merges them: along the innermost (shape[4]) each input steps by 1 or stays (0). The
 * op's plane function runs the inner two axes (a per-channel vector over a map is one call), an odometer the
 * outer three. An operand that stays along a row is read (and scaled) once a row. */
#include "tq_kernels.h"

/* The inner two axes of the merged broadcast: `rows` rows of n, each input stepping by sa / sb (0 or 1) along a
 * row and by ra / rb from one row to the next; the output is contiguous. */
typedef struct {
    uint32_t n, sa, sb, rows, ra, rb;
} tq_bin_plane_t;

typedef void (*tq_binary_plane_t)(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a,
                                  const int8_t *b, int8_t *out);

#define TQ_INLINE static inline __attribute__((always_inline))

/* What combine() computes (a constant in each plane function it is inlined into). */
enum { TQ_BIN_ADD, TQ_BIN_SUB, TQ_BIN_SQUARED_DIFFERENCE };

/* ---- ADD, SUB, SQUARED_DIFFERENCE: each input's (x - zp) << left_shift scaled by its multiplier
 * (MultiplyByQuantizedMultiplierSmallerThanOneExp: the host checked that the shift is <= 0), then combined ---- */

/* The fields a plane uses, read once: `out` is int8_t, which may alias anything, so the compiler would otherwise
 * load every field again after each store. Right shifts are stored as such (-shift). */
typedef struct {
    int32_t off1, off2, left_shift, mult1, right1, mult2, right2, output_mult, output_shift, zp, lo, hi;
} tq_bin_q_t;

TQ_INLINE int32_t scale(int8_t x, int32_t offset, int32_t left_shift, int32_t mult, int32_t right) {
    return tq_rdiv_pot(tq_sat_rdh_mul((int32_t)((uint32_t)(x + offset) << left_shift), mult), right);
}

TQ_INLINE int8_t combine(const tq_bin_q_t *q, int32_t x, int32_t y, int op) {
    int32_t v;
    if (op == TQ_BIN_ADD) {
        v = tq_rdiv_pot(tq_sat_rdh_mul(x + y, q->output_mult), -q->output_shift);
    } else if (op == TQ_BIN_SUB) {
        v = tq_rdiv_pot(tq_sat_rdh_mul(x - y, q->output_mult), -q->output_shift);
    } else {  /* SQUARED_DIFFERENCE: |x - y| < 2^15, its square fits; MultiplyByQuantizedMultiplier, any shift */
        v = tq_requant((x - y) * (x - y), q->output_mult, q->output_shift);
    }
    return (int8_t)tq_clamp(v + q->zp, q->lo, q->hi);
}

TQ_INLINE void scaled_plane(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                            int8_t *out, int op) {
    const tq_bin_q_t q = {p->input1_offset, p->input2_offset, p->left_shift, p->mult1, -p->shift1, p->mult2,
                          -p->shift2, p->output_mult, p->output_shift, p->output_offset, p->act_min, p->act_max};
    const uint32_t n = s->n;
    for (uint32_t r = 0; r < s->rows; ++r, a += s->ra, b += s->rb, out += n) {
        if (s->sb == 0) {
            const int32_t y = scale(*b, q.off2, q.left_shift, q.mult2, q.right2);
            for (uint32_t i = 0; i < n; ++i)
                out[i] = combine(&q, scale(a[i], q.off1, q.left_shift, q.mult1, q.right1), y, op);
        } else if (s->sa == 0) {
            const int32_t x = scale(*a, q.off1, q.left_shift, q.mult1, q.right1);
            for (uint32_t i = 0; i < n; ++i)
                out[i] = combine(&q, x, scale(b[i], q.off2, q.left_shift, q.mult2, q.right2), op);
        } else {
            for (uint32_t i = 0; i < n; ++i)
                out[i] = combine(&q, scale(a[i], q.off1, q.left_shift, q.mult1, q.right1),
                                 scale(b[i], q.off2, q.left_shift, q.mult2, q.right2), op);
        }
    }
}

static void plane_add(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                      int8_t *out) {
    scaled_plane(p, s, a, b, out, TQ_BIN_ADD);
}

static void plane_sub(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                      int8_t *out) {
    scaled_plane(p, s, a, b, out, TQ_BIN_SUB);
}

static void plane_squared_difference(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a,
                                     const int8_t *b, int8_t *out) {
    scaled_plane(p, s, a, b, out, TQ_BIN_SQUARED_DIFFERENCE);
}

/* The plane loop of the other ops: `expr` of *x and *y (the two inputs, stepped by their strides) each element. */
#define TQ_PLANE_LOOP(expr)                                                                   \
    for (uint32_t r = 0; r < s->rows; ++r, a += s->ra, b += s->rb, out += s->n) {             \
        const int8_t *x = a, *y = b;                                                          \
        for (uint32_t i = 0; i < s->n; ++i, x += s->sa, y += s->sb) out[i] = (int8_t)(expr); \
    }

/* ---- MAXIMUM, MINIMUM: the raw values, as TFLM compares them ---- */

/* Where one input steps along the row (the other steps too, or stays), four lanes a word: SSUB8 + SEL. */
TQ_INLINE void minmax_plane(const tq_bin_plane_t *s, const int8_t *a, const int8_t *b, int8_t *out, int max) {
    if (s->sa == 0 && s->sb == 1) {  /* both ops are symmetric: let `a` be the one that steps */
        const int8_t *t = a;
        a = b, b = t;
    }
    const int swapped = s->sa == 0 && s->sb == 1;
    const uint32_t ra = swapped ? s->rb : s->ra, rb = swapped ? s->ra : s->rb;
    const uint32_t sa = s->sa | s->sb, sb = s->sa & s->sb;  /* after the swap: a steps whenever one does */
    const uint32_t n = s->n, n4 = sa ? n & ~3u : 0;
    for (uint32_t r = 0; r < s->rows; ++r, a += ra, b += rb, out += n) {
        const uint32_t splat = (uint8_t)*b * 0x01010101u;
        uint32_t i = 0;
        for (; i < n4; i += 4) {
            const uint32_t x = tq_load32(a + i), y = sb ? tq_load32(b + i) : splat;
            tq_store32(out + i, max ? tq_max_s8x4(x, y) : tq_min_s8x4(x, y));
        }
        for (const int8_t *x = a + i * sa, *y = b + i * sb; i < n; ++i, x += sa, y += sb)
            out[i] = max ? (*x > *y ? *x : *y) : (*x < *y ? *x : *y);
    }
}

static void plane_maximum(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                          int8_t *out) {
    (void)p;
    minmax_plane(s, a, b, out, 1);
}

static void plane_minimum(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                          int8_t *out) {
    (void)p;
    minmax_plane(s, a, b, out, 0);
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

static void plane_div(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                      int8_t *out) {
    TQ_PLANE_LOOP(div1(p, *x + p->input1_offset, *y + p->input2_offset))
}

/* ---- PRELU: reference_ops::BroadcastPrelu4DSlow (in1 the input, in2 alpha) ---- */

TQ_INLINE int32_t prelu1(const tq_binary_params_t *p, int8_t in, int8_t alpha) {
    const int32_t x = in + p->input1_offset;
    const int32_t y = x >= 0 ? tq_requant(x, p->mult1, p->shift1)
                             : tq_requant(x * (alpha + p->input2_offset), p->mult2, p->shift2);
    return tq_clamp(y + p->output_offset, p->act_min, p->act_max);
}

static void plane_prelu(const tq_binary_params_t *p, const tq_bin_plane_t *s, const int8_t *a, const int8_t *b,
                        int8_t *out) {
    TQ_PLANE_LOOP(prelu1(p, *x, *y))
}

/* The planes of the merged broadcast (its inner two axes), one call of `plane` each: an odometer over the outer
 * three axes. */
static void binary_loop(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out,
                        tq_binary_plane_t plane) {
    const tq_bin_plane_t s = {p->shape[4], p->stride1[4], p->stride2[4], p->shape[3], p->stride1[3], p->stride2[3]};
    const uint32_t count = p->shape[0] * p->shape[1] * p->shape[2], step = s.n * s.rows;
    uint32_t idx[3] = {0, 0, 0}, i1 = 0, i2 = 0;
    for (uint32_t k = 0; k < count; ++k, out += step) {
        plane(p, &s, in1 + i1, in2 + i2, out);
        for (int ax = 2; ax >= 0; --ax) {
            i1 += p->stride1[ax];
            i2 += p->stride2[ax];
            if (++idx[ax] < p->shape[ax]) break;
            i1 -= p->stride1[ax] * p->shape[ax];
            i2 -= p->stride2[ax] * p->shape[ax];
            idx[ax] = 0;
        }
    }
}

/* One entry point an op, so that a firmware links only the plane functions its model uses. */
void tq_add_bcast_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_add);
}

void tq_sub_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_sub);
}

void tq_squared_difference_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_squared_difference);
}

void tq_maximum_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_maximum);
}

void tq_minimum_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_minimum);
}

void tq_div_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_div);
}

void tq_prelu_s8(const tq_binary_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    binary_loop(p, in1, in2, out, plane_prelu);
}
