/*
 * FULLY_CONNECTED's inner loops on the Cortex-M4 (tq_fc.c holds their plain-C twins).
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "tq_m4.S"

/* ---- tq_mv_4x1(const uint32_t *w, const int32_t *vec, uint32_t k_pairs, int32_t acc[4]) ----
 * Four output channels by one vector (FULLY_CONNECTED). r0 / r4 the weights of channels
 * (c, c+1) / (c+2, c+3), r1 the vector, r2 its end, r5-r8 the sums, r9/r10 two vector
 * words, r3 r11 r12 lr the weights of two K-pairs (acc waits on the stack). Each
 * weight stream is read two K-pairs an LDM: 11 instructions, 21 cycles per two K-pairs
 * (16 MACs) with int16 weights; 19 instructions with int8 weights (SXTB16 on each). */

    .macro MV_SMLAD w16, s0, s1, wa, wb, t0, t1   @ channels (s0, s1) += weights . vec words r9, r10
    .if \w16                            @ wa wb: K-pair 0 of both channels, t0 t1: K-pair 1
    smlad   \s0, \wa, r9, \s0
    smlad   \s1, \wb, r9, \s1
    smlad   \s0, \t0, r10, \s0
    smlad   \s1, \t1, r10, \s1
    .else                               @ wa: K-pair 0, wb: K-pair 1 (both channels' bytes)
    sxtb16  \t0, \wa
    sxtb16  \wa, \wa, ror #8
    smlad   \s0, \t0, r9, \s0
    smlad   \s1, \wa, r9, \s1
    sxtb16  \t0, \wb
    sxtb16  \wb, \wb, ror #8
    smlad   \s0, \t0, r10, \s0
    smlad   \s1, \wb, r10, \s1
    .endif
    .endm

    .macro MV_2PAIRS w16
    ldmia   r1!, {r9, r10}
    .if \w16
    ldmia   r0!, {r3, r11, r12, lr}
    MV_SMLAD 1, r5, r6, r3, r11, r12, lr
    ldmia   r4!, {r3, r11, r12, lr}
    MV_SMLAD 1, r7, r8, r3, r11, r12, lr
    .else
    ldmia   r0!, {r3, r11}
    MV_SMLAD 0, r5, r6, r3, r11, r12
    ldmia   r4!, {r3, r11}
    MV_SMLAD 0, r7, r8, r3, r11, r12
    .endif
    .endm

    .macro MV_KLOOP w16                 @ r5-r8 = the 4 channels' sums: r0 weights, r1 vector, r2 its end
    .if \w16
    sub     r4, r2, r1
    add     r4, r0, r4, lsl #1          @ the second channel pair's weights (two words a K-pair)
    .else
    sub     r4, r2, r1
    add     r4, r0, r4                  @ the second channel pair's weights
    .endif
    movs    r5, #0
    movs    r6, #0
    movs    r7, #0
    movs    r8, #0
    sub     r12, r2, r1
    tst     r12, #8                     @ an odd number of K-pair pairs: two now, then fours
    beq     2f
    MV_2PAIRS \w16
    cmp     r1, r2
    beq     3f
2:  MV_2PAIRS \w16
    MV_2PAIRS \w16
    cmp     r1, r2
    bne     2b
3:
    .endm

    .macro MV_4X1 name, w16
    FUNC    \name
    push    {r3-r11, lr}
    add     r2, r1, r2, lsl #2          @ end of the vector
    MV_KLOOP \w16
    ldr     r3, [sp]
    stmia   r3, {r5-r8}
    pop     {r3-r11, pc}
    .size   \name, . - \name
    .endm

/* ---- tq_fc_tile(const tq_fc_tile_t *t) ----
 * Every group of 4 output channels of one row: the tq_mv_4x1 sums, requantized on the fast
 * path with the full int8 range and stored, without a call or a C loop per group. The tile
 * is copied to the stack and updated there: [sp] w, [sp, #4] vec, [sp, #8] vec end,
 * [sp, #12] chan, [sp, #16] out, [sp, #20] groups left. */

    .macro FC_TILE name, w16
    FUNC    \name
    push    {r4-r11, lr}
    ldmia   r0, {r1-r6}
    push    {r1-r6}
5:  ldr     r0, [sp]
    ldr     r1, [sp, #4]
    ldr     r2, [sp, #8]
    MV_KLOOP \w16
    str     r4, [sp]                    @ the next group's weights follow
    ldr     r0, [sp, #12]
    ldmia   r0!, {r9-r12}               @ bias, rnd, mult, shift
    REQUANT r5, r9, r10, r11, r12, r9
    ldmia   r0!, {r9-r12}
    REQUANT r6, r9, r10, r11, r12, r9
    ldmia   r0!, {r9-r12}
    REQUANT r7, r9, r10, r11, r12, r9
    ldmia   r0!, {r9-r12}
    REQUANT r8, r9, r10, r11, r12, r9
    str     r0, [sp, #12]
    ldr     r0, [sp, #16]
    strb    r5, [r0], #1
    strb    r6, [r0], #1
    strb    r7, [r0], #1
    strb    r8, [r0], #1
    str     r0, [sp, #16]
    COUNTDOWN r0, 20, 5b
    add     sp, sp, #24
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    FC_TILE tq_fc_tile, 0
    FC_TILE tq_fc_tile_w16, 1

    MV_4X1  tq_mv_4x1, 0
    MV_4X1  tq_mv_4x1_w16, 1

#endif
