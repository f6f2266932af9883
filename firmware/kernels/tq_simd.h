/*
 * The Cortex-M4 DSP instructions the kernels use, and exact C equivalents for
 * other targets. The kernels are written once against these: the host build runs
 * the very same code path as the device (with these emulations), so the host's
 * bit-exactness tests cover the optimized kernels too.
 */
#ifndef TQ_SIMD_H
#define TQ_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TQ_DSP 1
#endif

/* Unaligned 32-bit load (LDR allows it on the M4; memcpy compiles to one LDR). */
static inline uint32_t tq_load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Unaligned 32-bit store (STR allows it on the M4). */
static inline void tq_store32(void *p, uint32_t v) { memcpy(p, &v, 4); }

static inline uint32_t tq_ror8(uint32_t x) { return (x >> 8) | (x << 24); }
/* Two int16 halfwords in one word: lo in bits 0-15, hi in 16-31. */
static inline int32_t tq_pack(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16));
}

#ifdef TQ_DSP
/* Bytes 0 and 2, sign-extended to the two halfwords. */
static inline int32_t tq_sxtb16(uint32_t x) { return __sxtb16((int32_t)x); }
/* acc + lo(a)*lo(b) + hi(a)*hi(b) */
static inline int32_t tq_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
/* halfword-wise add */
static inline int32_t tq_sadd16(int32_t a, int32_t b) { return __sadd16(a, b); }
/* halfword-wise subtract */
static inline int32_t tq_ssub16(int32_t a, int32_t b) { return __ssub16(a, b); }
static inline int32_t tq_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t tq_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
#else
static inline int32_t tq_lo(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu); }
static inline int32_t tq_hi(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x >> 16); }
static inline int32_t tq_sxtb16(uint32_t x) { return tq_pack((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu)); }
static inline int32_t tq_smlad(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(tq_lo(a) * tq_lo(b)) + (uint32_t)(tq_hi(a) * tq_hi(b)));
}
static inline int32_t tq_sadd16(int32_t a, int32_t b) { return tq_pack(tq_lo(a) + tq_lo(b), tq_hi(a) + tq_hi(b)); }
static inline int32_t tq_ssub16(int32_t a, int32_t b) { return tq_pack(tq_lo(a) - tq_lo(b), tq_hi(a) - tq_hi(b)); }
static inline int32_t tq_smlabb(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(tq_lo(a) * tq_lo(b))); }
static inline int32_t tq_smlatt(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(tq_hi(a) * tq_hi(b))); }
#endif

#ifdef TQ_DSP
/* One instruction: GCC does not fold the rotate into SXTB16 by itself. */
static inline int32_t tq_sxtb16_ror8(uint32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* acc + the lanes of tq_sxtb16(x) / tq_sxtb16_ror8(x), halfword-wise, in one instruction (SXTAB16). */
static inline int32_t tq_sxtab16(int32_t acc, uint32_t x) { return __sxtab16(acc, (int32_t)x); }
static inline int32_t tq_sxtab16_ror8(int32_t acc, uint32_t x) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}
#else
static inline int32_t tq_sxtb16_ror8(uint32_t x) { return tq_sxtb16(tq_ror8(x)); }
static inline int32_t tq_sxtab16(int32_t acc, uint32_t x) { return tq_sadd16(acc, tq_sxtb16(x)); }
static inline int32_t tq_sxtab16_ror8(int32_t acc, uint32_t x) { return tq_sadd16(acc, tq_sxtb16_ror8(x)); }
#endif

/* SMMLAR: acc + the high word of a*b, rounded (0x80000000 added to the 64-bit sum). */
#ifdef TQ_DSP
static inline int32_t tq_smmlar(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* Saturate to int8 / int16. */
static inline int32_t tq_ssat8(int32_t x) { return __ssat(x, 8); }
static inline int32_t tq_ssat16(int32_t x) { return __ssat(x, 16); }
#else
static inline int32_t tq_smmlar(int32_t a, int32_t b, int32_t acc) {
    const uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u;
    return (int32_t)(uint32_t)(sum >> 32);
}
static inline int32_t tq_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
static inline int32_t tq_ssat16(int32_t x) { return x < -32768 ? -32768 : (x > 32767 ? 32767 : x); }
#endif

/* Four int8 lanes at once: the larger (smaller) of each pair. SSUB8 sets each lane's GE flag where a >= b, SEL
 * picks by it; one asm block, so nothing comes between the flags and their reader. */
#ifdef TQ_DSP
static inline uint32_t tq_max_s8x4(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
static inline uint32_t tq_min_s8x4(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
#else
static inline uint32_t tq_minmax_s8x4(uint32_t a, uint32_t b, int max) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
        r |= (uint32_t)(uint8_t)((x >= y) == (max != 0) ? x : y) << i;
    }
    return r;
}
static inline uint32_t tq_max_s8x4(uint32_t a, uint32_t b) { return tq_minmax_s8x4(a, b, 1); }
static inline uint32_t tq_min_s8x4(uint32_t a, uint32_t b) { return tq_minmax_s8x4(a, b, 0); }
#endif

#endif /* TQ_SIMD_H */
