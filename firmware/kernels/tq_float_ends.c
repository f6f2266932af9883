/* QUANTIZE float32 -> int8 and DEQUANTIZE int8 -> float32: the float ends of an int8 model, as TFLM computes
 * them: q = zp + TfLiteRound(x / scale) with the division in float (checked against the tflite_micro
 * interpreter on every rounding boundary: a double division differs there), and x = scale * (q - zp) in double,
 * which is exact and so equals the float product. The parameters (tq_float_end_params_t) are generated from
 * tinyq/compile/ops/kernels/float_ends.py. */
#include "tq_kernels.h"

void tq_quantize_f32_s8(const tq_float_end_params_t *p, const void *in_bytes, int8_t *out) {
    const float *in = (const float *)in_bytes;  /* the arena is 4-byte aligned for a float tensor */
    /* Fields in locals: out is int8_t, which may alias them, so they would be read again after every store. */
    const uint32_t size = p->size;
    const float scale = p->scale;
    const int32_t zp = p->zero_point;
    for (uint32_t i = 0; i < size; ++i) {
        float r = in[i] / scale;
        /* Round half away from zero (roundf) without libm, on a value first kept inside int32 (it is
         * clamped to int8 anyway; a NaN is clamped too, to -1e9, where TFLM's cast is undefined). */
        if (!(r > -1e9f)) r = -1e9f;
        if (r > 1e9f) r = 1e9f;
        int32_t t = (int32_t)r;            /* toward zero */
        const float frac = r - (float)t;   /* exact below 2^24; above, r is whole */
        if (frac >= 0.5f) t += 1;
        else if (frac <= -0.5f) t -= 1;
        out[i] = (int8_t)tq_ssat8(t + zp);
    }
}

void tq_dequantize_s8_f32(const tq_float_end_params_t *p, const int8_t *in, void *out_bytes) {
    float *out = (float *)out_bytes;
    /* TFLM multiplies in double; a float times an integer below 2^9 is exact in double, so the float product,
     * correctly rounded once, is the same number, without the M4F's software double. */
    const uint32_t size = p->size;
    const float scale = p->scale;
    const int32_t zp = p->zero_point;
    for (uint32_t i = 0; i < size; ++i) out[i] = scale * (float)((int32_t)in[i] - zp);
}

void tq_neg_f32(uint32_t size, const void *in_bytes, void *out_bytes) {
    const float *in = (const float *)in_bytes;
    float *out = (float *)out_bytes;
    for (uint32_t i = 0; i < size; ++i) out[i] = -in[i];
}
