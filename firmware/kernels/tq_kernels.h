/*
 * tinyq int8 kernels: NHWC, batch 1, per-channel weights.
 *
 * Every kernel computes exactly what TensorFlow Lite Micro's reference kernels
 * compute (same fixed-point requantization, same rounding), so outputs are
 * bit-identical with the tflite_micro interpreter. All parameters (multipliers,
 * shifts, paddings, activation ranges) are computed ahead of time on the host and
 * live in flash as const structs; kernels never allocate.
 */
#ifndef TQ_KERNELS_H
#define TQ_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fixed-point helpers (TFLite's double-rounding requantization) ---- */

static inline int32_t tq_sat_rdh_mul(int32_t a, int32_t b) {
    /* SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded.
     * TFLite writes it as trunc((ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31); that equals
     * floor((ab + 2^30) / 2^31) for every ab (the two nudges differ exactly by the
     * truncation's correction), which is one SMLAL and a shift on the M4. */
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + (1LL << 30)) >> 31);
}

static inline int32_t tq_rdiv_pot(int32_t x, int exponent) {
    /* RoundingDivideByPOT: x / 2^exponent, rounding half away from zero. */
    /* 32-bit mask: exponent is at most 31 here, and a 64-bit shift costs several instructions. */
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

static inline int32_t tq_requant(int32_t x, int32_t multiplier, int32_t shift) {
    /* MultiplyByQuantizedMultiplier; the left shift wraps like TFLite's int32 math. */
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return tq_rdiv_pot(tq_sat_rdh_mul(shifted, multiplier), right);
}

static inline int32_t tq_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- parameters ---- */

typedef struct {
    uint16_t in_h, in_w, in_c;
    uint16_t out_h, out_w, out_c;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t dil_h, dil_w;
    uint16_t pad_h, pad_w;
    uint16_t depth_multiplier;   /* depthwise only */
    int32_t input_offset;        /* -input zero point */
    int32_t output_offset;       /* output zero point */
    int32_t act_min, act_max;
    const int32_t *mult;         /* per output channel */
    const int32_t *shift;        /* per output channel */
    int16_t *scratch;            /* conv: 2 im2col columns of k_h*k_w*in_c (rounded up to even) int16 */
} tq_conv_params_t;

typedef struct {
    uint16_t rows;               /* batch rows of the input */
    uint16_t in_depth, out_depth;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int32_t *mult, *shift; /* per output channel (per-tensor: all equal) */
    int16_t *scratch;            /* in_depth (rounded up to even) int16 */
} tq_fc_params_t;

typedef struct {
    uint16_t in_h, in_w, c;
    uint16_t out_h, out_w;
    uint16_t k_h, k_w;
    uint16_t stride_h, stride_w;
    uint16_t pad_h, pad_w;
    int32_t act_min, act_max;
} tq_pool_params_t;

typedef struct {
    uint32_t size;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_mult, input1_shift;
    int32_t input2_mult, input2_shift;
    int32_t output_mult, output_shift;
    int32_t act_min, act_max;
} tq_add_params_t;

typedef struct {
    uint16_t rows, depth;
    int32_t input_mult, input_left_shift, diff_min;
} tq_softmax_params_t;

typedef struct {
    uint32_t size;
    int32_t input_zp, output_zp;
    int32_t mult, shift;
    int32_t act_min, act_max;
} tq_requant_params_t;           /* RELU (requantizing) and QUANTIZE int8 -> int8 */

typedef struct {
    uint16_t out[4];             /* output shape, NHWC */
    uint32_t stride1[4], stride2[4]; /* input strides per output axis, 0 where broadcast */
    int32_t input1_offset, input2_offset, output_offset;
    int32_t mult, shift;         /* MUL: one requantization of the product */
    int32_t act_min, act_max;
} tq_mul_params_t;

typedef struct {
    uint16_t in[4], out[4];      /* NHWC */
    uint16_t before[4];          /* padding before each axis */
    int8_t value;                /* the pad value (the zero point) */
} tq_pad_params_t;

typedef struct {
    uint32_t outer;              /* product of the dims before the axis */
    uint16_t n;                  /* inputs */
    const uint32_t *chunk;       /* bytes each input contributes per outer step */
} tq_concat_params_t;

typedef struct {
    uint16_t in[4];              /* input shape (4-D) */
    uint32_t out_stride[4];      /* output index step per input axis, 0 on reduced axes */
    uint32_t outputs, count;     /* output elements; input elements per output */
    int32_t input_zp, output_zp;
    int32_t mult, shift;         /* in_scale / out_scale, with 1/count folded in */
    int32_t *sums;               /* outputs int32 of scratch */
} tq_mean_params_t;

typedef struct {
    uint32_t size;
    int32_t input_zp, input_range_radius;
    int32_t input_mult, input_left_shift; /* input scale * 2^27 as TFLite's frexp split */
} tq_sigmoid_params_t;           /* LOGISTIC and TANH */

/* ---- kernels ----
 * CONV_2D and FULLY_CONNECTED take their weights "reordered": each output channel's
 * row (k_h*k_w*in_c, or in_depth, values) in groups of 4 stored as w0 w2 w1 w3, the
 * tail of fewer than 4 as is, so one SXTB16 pair yields (w0,w1) and (w2,w3). The host
 * does the reordering (tinyq.ops.lower_ops.reorder_rows). DEPTHWISE_CONV_2D weights
 * are TFLite's [1, k_h, k_w, out_c] as they are.
 */

void tq_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                  const int32_t *bias, int8_t *out);
void tq_depthwise_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                            const int32_t *bias, int8_t *out);
void tq_fully_connected_s8(const tq_fc_params_t *p, const int8_t *in, const int8_t *filter,
                           const int32_t *bias, int8_t *out);
void tq_max_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out);
void tq_avg_pool_s8(const tq_pool_params_t *p, const int8_t *in, int8_t *out);
void tq_add_s8(const tq_add_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tq_softmax_s8(const tq_softmax_params_t *p, const int8_t *in, int8_t *out);
void tq_copy_s8(uint32_t size, const int8_t *in, int8_t *out);
void tq_requant_s8(const tq_requant_params_t *p, const int8_t *in, int8_t *out);
void tq_clamp_s8(uint32_t size, int32_t lo, int32_t hi, const int8_t *in, int8_t *out);
void tq_mul_s8(const tq_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tq_add_bcast_s8(const tq_add_params_t *p, const tq_mul_params_t *shape, const int8_t *in1, const int8_t *in2,
                     int8_t *out);
void tq_pad_s8(const tq_pad_params_t *p, const int8_t *in, int8_t *out);
void tq_concat_s8(const tq_concat_params_t *p, const int8_t *const *ins, int8_t *out);
void tq_mean_s8(const tq_mean_params_t *p, const int8_t *in, int8_t *out);
void tq_logistic_s8(const tq_sigmoid_params_t *p, const int8_t *in, int8_t *out);
void tq_tanh_s8(const tq_sigmoid_params_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TQ_KERNELS_H */
