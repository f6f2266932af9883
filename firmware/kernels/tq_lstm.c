/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state: TFLM's integer LSTM
 * (lstm_eval.cc, EvalLstm<int8_t, int8_t, int16_t, int32_t>), one batch, every inference from the reset
 * state. The parameters (tq_lstm_params_t, generated from tinyq/compile/ops/kernels/lstm.py) are TFLM's
 * Prepare figures, computed on the host. */
#include "tq_kernels.h"

enum { G_I = 0, G_F = 1, G_C = 2, G_O = 3 };

static inline int16_t sat16(int32_t v) { return (int16_t)tq_clamp(v, -32768, 32767); }

/* One gate: FC(input) + FC(hidden), each int8 -> int16 (Q3.12) and clamped, summed with saturation. */
static void gate(const tq_lstm_params_t *p, int g, const int8_t *x, const int8_t *h, int16_t *out) {
    const uint32_t n = p->units, d = p->in_dim;
    const int8_t *wi = p->w_in + (uint32_t)g * n * d, *wr = p->w_rec + (uint32_t)g * n * n;
    const int32_t *b = p->bias + (uint32_t)g * n;
    for (uint32_t j = 0; j < n; ++j) {
        int32_t acc = b[j];
        for (uint32_t k = 0; k < d; ++k) acc += (int32_t)wi[j * d + k] * ((int32_t)x[k] - p->in_zp);
        const int32_t a = sat16(tq_requant(acc, p->in_mult[g], p->in_shift[g]));
        int32_t racc = 0;
        for (uint32_t k = 0; k < n; ++k) racc += (int32_t)wr[j * n + k] * ((int32_t)h[k] - p->h_zp);
        const int32_t r = sat16(tq_requant(racc, p->rec_mult[g], p->rec_shift[g]));
        out[j] = sat16(a + r);
    }
}

/* reference_integer_ops::Logistic on int16, power-of-two input scale (multiplier 3, no shift). */
static void sigmoid16(const uint16_t *t, int16_t *v, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t x = (int32_t)v[i] * 3;
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x), uh = ax >> 9;
        uint32_t r;
        if (uh >= 255) {
            r = 0x7FFFu << 10;
        } else {
            const uint32_t ua = t[uh], ub = t[uh + 1];
            r = (ua << 9) + (ax & 0x1FFu) * (ub - ua);
        }
        r = x >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
        v[i] = (int16_t)(r >> 10);
    }
}

/* reference_integer_ops::Tanh on int16: the input scaled by (mult, shift) as TFLM's LSTM sets them. */
static void tanh16(const uint16_t *t, const int16_t *in, int16_t *out, uint32_t n, int32_t mult, int32_t shift) {
    const int32_t round = shift > 0 ? 1 << (shift - 1) : 0;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t x = ((int32_t)in[i] * mult + round) >> shift;
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x), uh = ax >> 8;
        int32_t r;
        if (uh >= 255) {
            r = (int32_t)(0xFFFFu << 8);
        } else {
            const uint32_t ua = t[uh], ub = t[uh + 1];
            r = (int32_t)((ua << 8) + (ax & 0xFFu) * (ub - ua));
        }
        r = x >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
        out[i] = (int16_t)(r >> 8);
    }
}

void tq_lstm_s8(const tq_lstm_params_t *p, const int8_t *in, int8_t *out) {
    const uint32_t n = p->units;
    int8_t *h = (int8_t *)p->scratch;
    int16_t *c = (int16_t *)(void *)((uint8_t *)p->scratch + ((n + 3u) & ~3u));
    int16_t *fg = c + n, *ig = fg + n, *cg = ig + n, *og = cg + n;
    for (uint32_t j = 0; j < n; ++j) {  /* the reset state: TFLM's ResetVariableTensors */
        h[j] = (int8_t)p->h_zp;
        c[j] = 0;
    }
    for (uint32_t s = 0; s < p->steps; ++s) {
        const int8_t *x = in + s * p->in_dim;
        gate(p, G_F, x, h, fg);
        sigmoid16(p->sigmoid, fg, n);
        gate(p, G_I, x, h, ig);
        sigmoid16(p->sigmoid, ig, n);
        gate(p, G_C, x, h, cg);
        if (p->cell_tanh) {
            tanh16(p->sigmoid, cg, cg, n, 3, 0);
        } else {
            sigmoid16(p->sigmoid, cg, n);
        }
        for (uint32_t j = 0; j < n; ++j) {  /* c = f * c + i * g, then the clip */
            const int32_t fc = sat16(tq_requant((int32_t)fg[j] * c[j], p->fc_mult, p->fc_shift));
            const int32_t ic = sat16(tq_requant((int32_t)ig[j] * cg[j], p->ig_mult, p->ig_shift));
            int32_t v = sat16(fc + ic);
            if (p->cell_clip > 0) v = tq_clamp(v, -p->cell_clip, p->cell_clip);
            c[j] = (int16_t)v;
        }
        gate(p, G_O, x, h, og);
        sigmoid16(p->sigmoid, og, n);
        tanh16(p->sigmoid, c, fg, n, p->cell_tanh_mult, p->cell_tanh_shift);
        int8_t *y = out + s * n;
        for (uint32_t j = 0; j < n; ++j) {
            y[j] = (int8_t)tq_clamp(p->h_zp + tq_requant((int32_t)fg[j] * og[j], p->out_mult, p->out_shift), -128, 127);
            h[j] = y[j];
        }
    }
}
