/*
 * The inner loops of tinyq's int8 kernels on the Cortex-M4 DSP extension.
 *
 * Plain-C twins with the same data layout and the same integer results are in each
 * family's tq_<family>.c (compiled where these are not: the host, cores without DSP); the
 * host tests run those, the QEMU tests run these, both against TFLM bit for bit.
 *
 * Hand-written because each loop needs all 14 usable registers (accumulators,
 * operands and pointers) and GCC spills to the stack in the C versions, which
 * costs about 40 % more instructions per MAC. SMLAD/SMUAD are two 16x16 MACs
 * in one single-cycle instruction; SXTB16 (ROR 8) sign-extends bytes 0 and 2
 * (1 and 3) of a word into two int16 lanes.
 */
/* Shared by the Cortex-M4 assembly of every kernel family (tq_m4_<family>.S, which include this file):
 * the FUNC macro, the requantization and store macros, the offsets of the structs they read. It only
 * defines macros, so assembled on its own (the build assembles every .S) it gives an empty object. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TQ_M4_S)
#define TQ_M4_S

#include "tq_layout.h"
#include "tq_offsets.h"

    .syntax unified
    .thumb

    .macro FUNC name                    @ a global Thumb function in a section of its own (--gc-sections)
    .section .text.\name, "ax", %progbits
    .global \name
    .type   \name, %function
    .thumb_func
\name:
    .endm

    .macro COUNTDOWN reg, off, target   @ the counter at [sp, #off] less one; on to target while not 0
    ldr     \reg, [sp, #\off]
    subs    \reg, \reg, #1
    str     \reg, [sp, #\off]
    bne     \target
    .endm

    .macro REQUANT_X2 acc, rnd, mult, shift, tmp, z=0   @ acc = 2 * (sum + bias): tq_rq_fast_x2, saturated to int8
    .if \z                              @ an output zero point of -128: tq_rq_fast_x2_z, no correction
    smmlar  \acc, \acc, \mult, \rnd
    .else
    add     \tmp, \rnd, \acc, asr #31   @ rnd - [sum < 0] (tmp may be rnd)
    smmlar  \acc, \acc, \mult, \tmp
    .endif
    asr     \acc, \acc, \shift
    ssat    \acc, #8, \acc
    .endm

    .macro REQUANT acc, bias, rnd, mult, shift, tmp   @ tq_rq_fast, then saturate to int8
    add     \acc, \bias, \acc, lsl #1   @ 2 * (sum + bias) (tmp may be bias: read here)
    REQUANT_X2 \acc, \rnd, \mult, \shift, \tmp
    .endm

    .macro RQ acc, w16=0, z=0           @ r10-lr: the channel's bias, rnd, mult, shift
    .if \w16 == 2                       @ acc is already 2 * (sum + bias)
    REQUANT_X2 \acc, r11, r12, lr, r1, \z
    .else
    REQUANT \acc, r10, r11, r12, lr, r1
    .endif
    .endm

    .macro RQ4 w16, a, b, c, d, z=0     @ one channel's four sums
    RQ      \a, \w16, \z
    RQ      \b, \w16, \z
    RQ      \c, \w16, \z
    RQ      \d, \w16, \z
    .endm

    .macro RQ_STREAM ptr, z=0           @ both channels' sums, their rnd, mult, shift read on from ptr
    ldmia   \ptr!, {r11, r12, lr}       @ channel c
    RQ4     2, r2, r3, r4, r5, \z
    ldmia   \ptr!, {r11, r12, lr}       @ channel c + 1
    RQ4     2, r6, r7, r8, r9, \z
    .endm

    .macro STORE_PAIRS o, s, t, post=0  @ 4 pixels s bytes apart from o: channel c (r2-r5) and c + 1 (r6-r9), a halfword each
    bfi     r2, r6, #8, #8
    bfi     r3, r7, #8, #8
    bfi     r4, r8, #8, #8
    bfi     r5, r9, #8, #8
    add     \t, \o, \s, lsl #1
    strh    r4, [\t]
    strh    r5, [\t, \s]
    strh    r3, [\o, \s]
    .if \post
    strh    r2, [\o], #\post
    .else
    strh    r2, [\o]
    .endif
    .endm

#endif
