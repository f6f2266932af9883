/* LEAKY_RELU, int8: TFLM's QuantizeLeakyRelu. The parameters (tq_leaky_relu_params_t, generated from
 * tinyq/compile/ops/kernels/leaky_relu.py) are computed on the host. */
#include "tq_kernels.h"

void tq_leaky_relu_s8(const tq_leaky_relu_params_t *p, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)in[i] - p->input_zp;
        const int32_t y = x >= 0 ? tq_requant(x, p->mult_identity, p->shift_identity)
                                 : tq_requant(x, p->mult_alpha, p->shift_alpha);
        out[i] = (int8_t)tq_clamp(p->output_zp + y, -128, 127);
    }
}
