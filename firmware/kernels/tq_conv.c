/* Convolutions and fully connected layers, int8 with per-channel requantization. */
#include "tq_kernels.h"

void tq_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                  const int32_t *bias, int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int k_h = p->k_h, k_w = p->k_w, out_c = p->out_c;
    const int32_t in_off = p->input_offset;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            for (int oc = 0; oc < out_c; ++oc) {
                const int8_t *f_oc = filter + (int32_t)oc * k_h * k_w * in_c;
                int32_t acc = 0;
                for (int ky = 0; ky < k_h; ++ky) {
                    const int iy = iy0 + p->dil_h * ky;
                    if (iy < 0 || iy >= in_h) continue;
                    for (int kx = 0; kx < k_w; ++kx) {
                        const int ix = ix0 + p->dil_w * kx;
                        if (ix < 0 || ix >= in_w) continue;
                        const int8_t *x = in + ((int32_t)iy * in_w + ix) * in_c;
                        const int8_t *f = f_oc + ((int32_t)ky * k_w + kx) * in_c;
                        for (int ic = 0; ic < in_c; ++ic) {
                            acc += (int32_t)f[ic] * ((int32_t)x[ic] + in_off);
                        }
                    }
                }
                if (bias) acc += bias[oc];
                acc = tq_requant(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
                out[((int32_t)oy * p->out_w + ox) * out_c + oc] = (int8_t)tq_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}

void tq_depthwise_conv2d_s8(const tq_conv_params_t *p, const int8_t *in, const int8_t *filter,
                            const int32_t *bias, int8_t *out) {
    const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int k_w = p->k_w, out_c = p->out_c, dm = p->depth_multiplier;
    const int32_t in_off = p->input_offset;
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_h;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_w;
            for (int ic = 0; ic < in_c; ++ic) {
                for (int m = 0; m < dm; ++m) {
                    const int oc = m + ic * dm;
                    int32_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + p->dil_h * ky;
                        if (iy < 0 || iy >= in_h) continue;
                        for (int kx = 0; kx < k_w; ++kx) {
                            const int ix = ix0 + p->dil_w * kx;
                            if (ix < 0 || ix >= in_w) continue;
                            const int32_t x = in[((int32_t)iy * in_w + ix) * in_c + ic];
                            const int32_t f = filter[((int32_t)ky * k_w + kx) * out_c + oc];
                            acc += f * (x + in_off);
                        }
                    }
                    if (bias) acc += bias[oc];
                    acc = tq_requant(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
                    out[((int32_t)oy * p->out_w + ox) * out_c + oc] = (int8_t)tq_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

void tq_fully_connected_s8(const tq_fc_params_t *p, const int8_t *in, const int8_t *filter,
                           const int32_t *bias, int8_t *out) {
    const int depth = p->in_depth, out_depth = p->out_depth;
    for (int r = 0; r < p->rows; ++r) {
        const int8_t *x = in + (int32_t)r * depth;
        for (int oc = 0; oc < out_depth; ++oc) {
            const int8_t *f = filter + (int32_t)oc * depth;
            int32_t acc = 0;
            for (int d = 0; d < depth; ++d) {
                acc += (int32_t)f[d] * ((int32_t)x[d] + p->input_offset);
            }
            if (bias) acc += bias[oc];
            acc = tq_requant(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
            out[(int32_t)r * out_depth + oc] = (int8_t)tq_clamp(acc, p->act_min, p->act_max);
        }
    }
}
