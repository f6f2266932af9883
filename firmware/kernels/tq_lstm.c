/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state: TFLM's integer LSTM
 * (lstm_eval.cc, EvalLstm<int8_t, int8_t, int16_t, int32_t>), one batch, every inference from the reset
 * state. The parameters (tq_lstm_params_t, generated from tinyq/compile/ops/kernels/lstm.py) are TFLM's
 * Prepare figures, computed on the host. */
#include <stddef.h>

#include "tq_kernels.h"

enum { G_I = 0, G_F = 1, G_C = 2, G_O = 3 };

static inline int16_t sat16(int32_t v) { return (int16_t)tq_ssat16(v); }

/* acc[r] += sum_k w_r[k] * (v[k] - zp), k < d, for the four rows of one block of a gate's weights, laid out by
 * tinyq.compile.ops.kernels.lstm.row_blocks (four words, one a row, every four columns; then a word a column).
 * The rows share v's sign extension and zero-point subtraction (exact in int16 lanes: v - zp is within +-255)
 * and one pointer walks the block, so four MACs take about six instructions with SMLAD. The sums are integers:
 * their order changes nothing. */
static void dot_block(const int8_t *w, uint32_t d, const int8_t *v, int32_t zp, int32_t *acc) {
    const int32_t zp2 = tq_pack(zp, zp);
    const int8_t *const v4 = v + (d & ~3u), *const end = v + d;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (; v < v4; v += 4, w += 16) {
        const uint32_t x = tq_load32(v);
        const int32_t xe = tq_ssub16(tq_sxtb16(x), zp2), xo = tq_ssub16(tq_sxtb16_ror8(x), zp2);
        uint32_t q0 = tq_load32(w), q1 = tq_load32(w + 4);
        a0 = tq_smlad(tq_sxtb16_ror8(q0), xo, tq_smlad(tq_sxtb16(q0), xe, a0));
        a1 = tq_smlad(tq_sxtb16_ror8(q1), xo, tq_smlad(tq_sxtb16(q1), xe, a1));
        q0 = tq_load32(w + 8), q1 = tq_load32(w + 12);
        a2 = tq_smlad(tq_sxtb16_ror8(q0), xo, tq_smlad(tq_sxtb16(q0), xe, a2));
        a3 = tq_smlad(tq_sxtb16_ror8(q1), xo, tq_smlad(tq_sxtb16(q1), xe, a3));
    }
    for (; v < end; ++v, w += 4) {  /* a column: the four rows' bytes in one word */
        const int32_t x = (int32_t)*v - zp, x2 = tq_pack(x, x);
        const uint32_t q = tq_load32(w);
        const int32_t e = tq_sxtb16(q), o = tq_sxtb16_ror8(q);  /* rows 0, 2 and rows 1, 3 */
        a0 = tq_smlabb(e, x2, a0);
        a1 = tq_smlabb(o, x2, a1);
        a2 = tq_smlatt(e, x2, a2);
        a3 = tq_smlatt(o, x2, a3);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* A row past the last block of four (units % 4 of them), stored as it is. */
static int32_t dot_row(const int8_t *w, uint32_t d, const int8_t *v, int32_t zp, int32_t a) {
    const int32_t zp2 = tq_pack(zp, zp);
    uint32_t k = 0;
    for (; k + 4 <= d; k += 4) {
        const uint32_t x = tq_load32(v + k), q = tq_load32(w + k);
        a = tq_smlad(tq_sxtb16(q), tq_ssub16(tq_sxtb16(x), zp2), a);
        a = tq_smlad(tq_sxtb16_ror8(q), tq_ssub16(tq_sxtb16_ror8(x), zp2), a);
    }
    for (; k < d; ++k) a += (int32_t)w[k] * ((int32_t)v[k] - zp);
    return a;
}

/* acc[r] += row r of w . (v - zp), for `rows` (1..4) rows of d weights starting at w (a block when 4). */
static void dot_rows(const int8_t *w, uint32_t d, const int8_t *v, int32_t zp, uint32_t rows, int32_t *acc) {
    if (rows == 4) {
        dot_block(w, d, v, zp, acc);
        return;
    }
    for (uint32_t r = 0; r < rows; ++r) acc[r] = dot_row(w + r * d, d, v, zp, acc[r]);
}

/* One gate: FC(input) + FC(hidden), each int8 -> int16 (Q3.12) and clamped, summed with saturation. h is the
 * previous step's output, or NULL at the first step, where the reset state (every element h_zp) makes the
 * recurrent sum 0. */
static void gate(const tq_lstm_params_t *p, int g, const int8_t *x, const int8_t *h, int16_t *out) {
    const uint32_t n = p->units, d = p->in_dim;
    const int8_t *wi = p->w_in + (uint32_t)g * n * d, *wr = p->w_rec + (uint32_t)g * n * n;
    const int32_t *b = p->bias + (uint32_t)g * n;
    for (uint32_t j = 0; j < n; j += 4) {
        const uint32_t rows = n - j < 4u ? n - j : 4u;
        int32_t acc[4] = {0, 0, 0, 0}, racc[4] = {0, 0, 0, 0};
        for (uint32_t r = 0; r < rows; ++r) acc[r] = b[j + r];
        dot_rows(wi + j * d, d, x, p->in_zp, rows, acc);
        if (h) dot_rows(wr + j * n, n, h, p->h_zp, rows, racc);
        for (uint32_t r = 0; r < rows; ++r) {
            const int32_t a = sat16(tq_requant(acc[r], p->in_mult[g], p->in_shift[g]));
            const int32_t rr = sat16(tq_requant(racc[r], p->rec_mult[g], p->rec_shift[g]));
            out[j + r] = sat16(a + rr);
        }
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
    /* The hidden state is the previous step's output, read where it was written. */
    int16_t *c = (int16_t *)p->scratch;
    int16_t *fg = c + n, *ig = fg + n, *cg = ig + n, *og = cg + n;
    for (uint32_t j = 0; j < n; ++j) c[j] = 0;  /* the reset state: TFLM's ResetVariableTensors */
    for (uint32_t s = 0; s < p->steps; ++s) {
        const int8_t *x = in + s * p->in_dim;
        const int8_t *h = s ? out + (s - 1u) * n : NULL;
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
        for (uint32_t j = 0; j < n; ++j)
            y[j] = (int8_t)tq_ssat8(p->h_zp + tq_requant((int32_t)fg[j] * og[j], p->out_mult, p->out_shift));
    }
}
