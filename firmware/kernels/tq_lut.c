/* A unary element-wise int8 op as a table lookup (tq_lut_params_t, generated from
 * tinyq/compile/ops/kernels/lut.py; the table is the reference kernel's arithmetic evaluated on the host on
 * every int8 input, tinyq/compile/ops/kernels/unary.py). In place when out == in. */
#include "tq_kernels.h"

/* The four bytes of w, each through the table. */
static inline uint32_t lookup4(const uint8_t *t, uint32_t w) {
    return (uint32_t)t[w & 0xffu] | (uint32_t)t[(w >> 8) & 0xffu] << 8 | (uint32_t)t[(w >> 16) & 0xffu] << 16 |
           (uint32_t)t[w >> 24] << 24;
}

void tq_lut_s8(const tq_lut_params_t *p, const int8_t *in, int8_t *out) {
    const uint8_t *t = (const uint8_t *)p->table;
    const uint8_t *src = (const uint8_t *)in;
    uint8_t *dst = (uint8_t *)out;
    uint32_t n = p->size;
    /* Bytes up to a word boundary of the output, then a word at a time: one load, four lookups (a byte
     * extract and an LDRB each), three ORRs, one store: 15 instructions for 4 bytes with the loop's own on
     * the M4 (unrolled to two words, GCC drops the post-increments and it is no fewer). Each word is read
     * before it is written, so out may be in (or before it: the output never passes the input). */
    while (n && ((uintptr_t)dst & 3u)) {
        *dst++ = t[*src++];
        --n;
    }
    for (; n >= 4; n -= 4, src += 4, dst += 4) tq_store32(dst, lookup4(t, tq_load32(src)));
    while (n--) *dst++ = t[*src++];
}
