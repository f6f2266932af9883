/* Helpers the kernel families' C files share (not part of the kernels' interface). */
#ifndef TQ_INTERNAL_H
#define TQ_INTERNAL_H

#include "tq_kernels.h"

/* Requantize, add the zero point, clamp. `fast` and `full` (the activation range is all of
 * int8) are constants at every call site, so each loop is compiled for its case. */
static inline __attribute__((always_inline)) int8_t rq(int32_t acc, const tq_chan_t *q, int fast, int full,
                                                        int32_t zp, int32_t lo, int32_t hi) {
    return tq_out8(fast ? tq_rq_fast(acc, q) : tq_rq_exact(acc, q, zp), full, lo, hi);
}

/* Lane 0 (hi = 0) or 1 of a word of two int16 (the plain-C twins' SXTH). */
static inline int32_t lane(uint32_t word, int hi) { return (int16_t)(uint16_t)(hi ? word >> 16 : word & 0xFFFFu); }

#endif
