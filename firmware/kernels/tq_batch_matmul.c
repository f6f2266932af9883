/*
 * BATCH_MATMUL, int8: TFLM's BatchMatMul, out = requant((lhs - lhs_zp) . (rhs - rhs_zp)), batches broadcast.
 *
 * Each product runs as tq_conv.c runs a conv (see tinyq/compile/ops/kernels/batch_matmul.py): four LHS rows
 * into int16 im2col columns, the RHS's columns as _w16 weights (int16 pairs, its zero point off), every pair
 * of output columns through tq_conv_tile_w16. The zero points come off as the bytes widen to int16 (SXTAB16
 * of (-zp, -zp)), so the integer sum is TFLM's, in another order.
 */
#include "tq_internal.h"

/* The k_pairs K-pairs of one run (an LHS row, an RHS column): `depth` bytes k_step apart, less zp, as int16
 * pairs to dst[0], dst[stride], ...; past depth, zeros. K-pair j holds elements (4 (j / 2) + j % 2, + 2): what
 * SXTB16 and SXTB16 ROR 8 make of a word, which is how a contiguous run is read. */
static void expand_run(const int8_t *x, int depth, int32_t k_step, int32_t zp, int32_t *dst, int stride,
                       int k_pairs) {
    int j = 0;
    if (k_step == 1) {
        const int32_t neg_zp = tq_pack(-zp, -zp);
        for (; 2 * j + 4 <= depth; j += 2, x += 4) {
            const uint32_t v = tq_load32(x);
            dst[j * stride] = tq_sxtab16(neg_zp, v);
            dst[(j + 1) * stride] = tq_sxtab16_ror8(neg_zp, v);
        }
        x -= 2 * j;
    }
    for (; j < k_pairs; ++j) {
        const int ka = 4 * (j / 2) + j % 2, kb = ka + 2;
        dst[j * stride] = tq_pack(ka < depth ? x[ka * k_step] - zp : 0, kb < depth ? x[kb * k_step] - zp : 0);
    }
}

/* One RHS matrix into the _w16 layout: column n is channel n, pairs (n, n + 1) of 2 k_pairs words, an odd
 * last column's partner zeros. */
static void pack_rhs(const tq_bmm_params_t *p, const int8_t *b, uint32_t *w) {
    const int n_cols = p->cols, P = p->k_pairs;
    for (int n = 0; n < n_cols + n_cols % 2; ++n) {
        int32_t *d = (int32_t *)w + (n / 2) * 2 * P + (n & 1);
        if (n < n_cols) {
            expand_run(b + n * p->rhs_col_step, p->depth, p->rhs_k_step, p->rhs_zp, d, 2, P);
        } else {
            for (int j = 0; j < P; ++j) d[2 * j] = 0;
        }
    }
}

/* One product: a (rows x depth, lhs_row_step / lhs_k_step) times w (packed) into out (rows x cols). */
static inline __attribute__((always_inline)) void product(const tq_bmm_params_t *p, const int8_t *a,
                                                          const uint32_t *w, int8_t *out, int fast) {
    const int M = p->rows, N = p->cols, P = p->k_pairs;
    const int32_t zp = p->output_offset;
    int32_t *cols = (int32_t *)p->scratch;
    int8_t *tail = (int8_t *)(cols + 4 * P);  /* a partial group's rows: the tile stores 4 */
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int n = M - m0 < 4 ? M - m0 : 4;
        for (int i = 0; i < n; ++i)
            expand_run(a + (m0 + i) * p->lhs_row_step, p->depth, p->lhs_k_step, p->lhs_zp, cols + i, 4, P);
        int8_t *o = out + (int32_t)m0 * N;
        int8_t *dst = n < 4 ? tail : o;
        const uint32_t *wc = w;
        int c = 0;
        if (fast && N >= 2) {
            const tq_conv_tile_t tile = {w, cols, cols + 4 * P, p->chan, dst, N, (uint32_t)N / 2};
            tq_conv_tile_w16(&tile);
            c = N & ~1;
            wc += c * P;
        }
        for (; c < N; c += 2, wc += 2 * P) {
            int32_t acc[8];
            tq_mm_2x4_w16(wc, cols, (uint32_t)P, acc);
            for (int i = 0; i < n; ++i) dst[i * N + c] = rq(acc[i], p->chan + c, fast, 1, zp, -128, 127);
            if (c + 1 == N) break;  /* the odd last column: its partner is padding */
            for (int i = 0; i < n; ++i) dst[i * N + c + 1] = rq(acc[4 + i], p->chan + c + 1, fast, 1, zp, -128, 127);
        }
        if (n < 4)
            for (int i = 0; i < n * N; ++i) o[i] = tail[i];
    }
}

void tq_batch_matmul_s8(const tq_bmm_params_t *p, const int8_t *lhs, const void *rhs, int8_t *out) {
    const int32_t lhs_mat = (int32_t)p->rows * p->depth, rhs_mat = (int32_t)p->depth * p->cols;
    const int32_t packed_mat = (int32_t)(p->cols + p->cols % 2) * p->k_pairs;  /* words */
    uint32_t *packed = (uint32_t *)((int8_t *)p->scratch + 16 * p->k_pairs + 4 * p->cols);
    int32_t have = -1;  /* the RHS matrix packed in scratch */
    for (int b0 = 0; b0 < p->batch[0]; ++b0) {
        for (int b1 = 0; b1 < p->batch[1]; ++b1) {
            for (int b2 = 0; b2 < p->batch[2]; ++b2) {
                const int32_t li = (int32_t)(b0 * p->lhs_step[0] + b1 * p->lhs_step[1] + b2 * p->lhs_step[2]);
                const int32_t ri = (int32_t)(b0 * p->rhs_step[0] + b1 * p->rhs_step[1] + b2 * p->rhs_step[2]);
                const uint32_t *w;
                if (p->rhs_packed) {
                    w = (const uint32_t *)rhs + ri * packed_mat;
                } else {
                    if (ri != have) pack_rhs(p, (const int8_t *)rhs + ri * rhs_mat, packed);
                    have = ri;
                    w = packed;
                }
                int8_t *o = out + ((b0 * p->batch[1] + b1) * p->batch[2] + b2) * (int32_t)p->rows * p->cols;
                if (p->fast) product(p, lhs + li * lhs_mat, w, o, 1);
                else product(p, lhs + li * lhs_mat, w, o, 0);
            }
        }
    }
}
