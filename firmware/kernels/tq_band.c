/* Row-band execution of a chain of convolutions (MCUNetV2's patch idea, by rows).
 *
 * A chain of CONV_2D / 3x3 DEPTHWISE_CONV_2D layers, each read only by the next, runs one output
 * row of its last layer at a time. Each earlier layer keeps only the rows its reader's window
 * still needs, in a window of (k_h - 1) * dil_h + 1 rows: asked for a row it does not have, a
 * layer first asks its own input layer (recursively), then runs its kernel on that one row,
 * with the kernel's parameters narrowed to the rows in the window (in_h, out_h = 1, pad_h).
 * Nothing is computed twice; the window slides by moving its rows down (a few % of the work).
 * The first layer reads the chain's input tensor, the last writes the chain's output tensor,
 * which the planner may place over input rows that no later row reads; a last layer with a fused
 * ADD writes each row of the sum over the same row of the skip tensor, as tq_conv2d_add_s8 does. The kernels are the
 * whole-tensor kernels, so the results are theirs, bit for bit.
 */
#include "tq_kernels.h"

typedef struct {
    int32_t first;   /* the first row in the window */
    int32_t count;   /* rows in the window */
} band_window_t;

static void band_row(const tq_band_stage_t *st, band_window_t *win, uint32_t i, uint32_t last, int32_t r,
                     const int8_t *in, const int8_t *skip, int8_t *out) {
    const tq_conv_params_t *p = st[i].p;
    const int32_t top = r * p->stride_h - p->pad_h;  /* the first input row the window of row r covers */
    int32_t lo = top < 0 ? 0 : top;
    int32_t hi = top + (p->k_h - 1) * p->dil_h;
    if (hi > p->in_h - 1) hi = p->in_h - 1;
    const int32_t in_row = (int32_t)p->in_w * p->in_c;
    const int8_t *src;
    if (i == 0) {
        src = in + lo * in_row;
    } else {
        band_window_t *w = &win[i - 1];
        while (w->first + w->count <= hi) band_row(st, win, i - 1, last, w->first + w->count, in, skip, out);
        src = st[i - 1].buf + (lo - w->first) * in_row;
    }
    tq_conv_params_t q = *p;
    q.in_h = (uint16_t)(hi - lo + 1);
    q.out_h = 1;
    q.pad_h = (uint16_t)(lo - top);
    const int32_t out_row = (int32_t)p->out_w * p->out_c;
    int8_t *dst;
    if (i == last) {
        dst = out + r * out_row;
    } else {
        band_window_t *w = &win[i];
        if (w->count == st[i].cap) {
            /* Full: the oldest row is behind the reader's window from now on. tq_copy_s8 copies
             * forwards, so moving rows down over themselves is safe. */
            tq_copy_s8((uint32_t)((w->count - 1) * out_row), st[i].buf + out_row, st[i].buf);
            ++w->first;
            --w->count;
        }
        dst = st[i].buf + w->count * out_row;
        ++w->count;
    }
    if (st[i].add) tq_conv2d_add_s8(&q, st[i].add, src, st[i].filter, skip + r * out_row, dst);
    else st[i].fn(&q, src, st[i].filter, dst);
}

void tq_band_run(const tq_band_stage_t *stages, uint32_t n, const int8_t *in, const int8_t *skip, int8_t *out) {
    band_window_t win[TQ_BAND_MAX_STAGES];
    for (uint32_t i = 0; i < n; ++i) win[i].first = win[i].count = 0;
    const int32_t rows = stages[n - 1].p->out_h;
    for (int32_t r = 0; r < rows; ++r) band_row(stages, win, n - 1, n - 1, r, in, skip, out);
}
