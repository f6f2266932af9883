/*
 * The copy and the table ADD's inner loops on the Cortex-M4 (tq_pool.c holds their plain-C twins).
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "tq_m4.S"

/* ---- tq_copy_words(uint32_t blocks, const uint32_t *src, uint32_t *dst) ----
 * blocks (>= 1) of 8 words, one LDM and one STM of eight registers a block: 0.56 instructions a byte
 * where GCC's loop of single loads and stores takes about 1. Forwards, and a block is read whole
 * before it is written, so moving rows down over themselves (tq_band.c's windows) is safe. */

    FUNC    tq_copy_words
    push    {r4-r10}
1:  ldmia   r1!, {r3-r10}
    stmia   r2!, {r3-r10}
    subs    r0, r0, #1
    bne     1b
    pop     {r4-r10}
    bx      lr
    .size   tq_copy_words, . - tq_copy_words

/* ---- tq_add_fast(const tq_addtab_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out,
 *                  uint32_t quads) ----
 * Same-shape ADD by tables (tq_add_run's fast path with the full int8 range), four elements a
 * turn: one word of each input, each byte sign-extended in place (SXTB ROR) as its table index.
 * r1 / r2 / r3 in1 / in2 / out, r4 the end of in1, r5 / r6 the tables, r7-r9 rnd, mult, shift
 * (offsets from tq_offsets.h). 10.75 instructions an element. */

    .macro ADD_ONE rot, off, last=0
    .if \rot
    sxtb    r12, r10, ror #\rot
    sxtb    lr, r11, ror #\rot
    .else
    sxtb    r12, r10
    sxtb    lr, r11
    .endif
    ldr     r12, [r5, r12, lsl #2]
    ldr     lr, [r6, lr, lsl #2]
    add     r12, r12, lr                @ the doubled sum: tq_rq_fast_x2's input
    REQUANT_X2 r12, r7, r8, r9, lr
    .if \last
    strb    r12, [r3], #4
    .else
    strb    r12, [r3, #\off]
    .endif
    .endm

    FUNC    tq_add_fast
    push    {r4-r11, lr}
    ldr     r4, [sp, #36]               @ quads: the fifth argument, above the 9 registers pushed
    add     r4, r1, r4, lsl #2          @ the end of in1
    ldr     r5, [r0, #TQ_ADDTAB_T1]
    ldr     r6, [r0, #TQ_ADDTAB_T2]
    add     r0, r0, #TQ_ADDTAB_OUT + TQ_CHAN_RND
    ldmia   r0, {r7-r9}                 @ out.rnd, out.mult, out.shift
1:  ldr     r10, [r1], #4
    ldr     r11, [r2], #4
    ADD_ONE 8, 1
    ADD_ONE 16, 2
    ADD_ONE 24, 3
    ADD_ONE 0, 0, 1                     @ the last store moves out on
    cmp     r1, r4
    bne     1b
    pop     {r4-r11, pc}
    .size   tq_add_fast, . - tq_add_fast

#endif
