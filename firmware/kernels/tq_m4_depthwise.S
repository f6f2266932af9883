/*
 * The 3x3 depthwise's inner loops on the Cortex-M4 (tq_depthwise.c holds their plain-C twins).
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "tq_m4.S"

/* ---- tq_dw3x3_sums(const tq_dw_taps_t *taps, const int16_t *w, uint32_t groups, int32_t *sums) ----
 * 3x3 depthwise sums of one pixel, four channels a group. r0-r2 the three input rows
 * (advancing 4 bytes a group), r3 the step between a row's taps, r4 the weights (two
 * words a tap: int16 w0 w2, w1 w3), r5-r8 the sums of channels 0-3, r9/r10 the input
 * word's int16 lanes, r11/r12 the tap's weights, lr the output. 8 instructions per tap
 * (4 MACs); each row is read right to left so its last load advances the pointer. */

    .macro HALF first, op, d, n, m      @ d = n.op*m.op (+ d unless first); op bb or tt
    .if \first
    smul\op  \d, \n, \m
    .else
    smla\op  \d, \n, \m, \d
    .endif
    .endm

    .macro DW_TAP first, load:vararg
    \load
    sxtb16  r10, r9                     @ x0, x2
    sxtb16  r9, r9, ror #8              @ x1, x3
    ldrd    r11, r12, [r4], #8          @ w0 w2, w1 w3
    HALF    \first, bb, r5, r10, r11
    HALF    \first, tt, r7, r10, r11
    HALF    \first, bb, r6, r9, r12
    HALF    \first, tt, r8, r9, r12
    .endm

    .macro DW_GROUP biased=0            @ the 9 taps of one group of 4 channels
    .if \biased                         @ the sums start at the group's biases
    ldmia   r4!, {r5-r8}
    DW_TAP  0, ldr r9, [r0, r3, lsl #1]
    .else
    DW_TAP  1, ldr r9, [r0, r3, lsl #1]
    .endif
    DW_TAP  0, ldr r9, [r0, r3]
    DW_TAP  0, ldr r9, [r0], #4
    DW_TAP  0, ldr r9, [r1, r3, lsl #1]
    DW_TAP  0, ldr r9, [r1, r3]
    DW_TAP  0, ldr r9, [r1], #4
    DW_TAP  0, ldr r9, [r2, r3, lsl #1]
    DW_TAP  0, ldr r9, [r2, r3]
    DW_TAP  0, ldr r9, [r2], #4
    .endm

    .macro DW_SETUP group_bytes         @ r4 weights, lr output, [sp] end of the weights
    push    {r4-r11, lr}
    mov     r4, r1
    mov     lr, r3
    movs    r3, #\group_bytes
    mla     r12, r2, r3, r1
    push    {r12}
    ldr     r3, [r0, #12]               @ col_step
    ldr     r1, [r0, #4]
    ldr     r2, [r0, #8]
    ldr     r0, [r0]
    .endm

    .macro DW_NEXT                      @ loop while weights are left
    ldr     r9, [sp]
    cmp     r4, r9
    bne     1b
    add     sp, sp, #4
    pop     {r4-r11, pc}
    .endm

    FUNC    tq_dw3x3_sums
    DW_SETUP 72
1:  DW_GROUP
    stmia   lr!, {r5-r8}
    DW_NEXT
    .size   tq_dw3x3_sums, . - tq_dw3x3_sums

/* ---- tq_dw3x3_rq(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out) ----
 * The same sums, requantized (fast path, full int8 range) and stored. Each group's stream
 * starts with its 4 channels' biases (one LDM starts the sums there), then its 9 taps doubled,
 * then each channel's rnd, mult, shift (one LDM each): a sum comes out as 2 * (sum + bias),
 * tq_rq_fast_x2's input. 6 instructions an output. */

    .macro DW_RQ acc, z=0               @ acc is 2 * (sum + bias): tq_rq_fast_x2 (z: _z, the zero point -128)
    ldmia   r4!, {r10-r12}              @ rnd, mult, shift
    REQUANT_X2 \acc, r10, r11, r12, r9, \z
    strb    \acc, [lr], #1
    .endm

    .macro DW_RQ_GROUPS name, z
    FUNC    \name
    DW_SETUP 136
1:  DW_GROUP 1
    DW_RQ   r5, \z
    DW_RQ   r6, \z
    DW_RQ   r7, \z
    DW_RQ   r8, \z
    DW_NEXT
    .size   \name, . - \name
    .endm

    DW_RQ_GROUPS tq_dw3x3_rq, 0
    DW_RQ_GROUPS tq_dw3x3_rq_z, 1       @ an output zero point of -128: tq_rq_fast_x2_z

/* ---- tq_dw3x3_rq_row(const tq_dw_taps_t *taps, const uint32_t *w, uint32_t groups, int8_t *out,
 *                      uint32_t pixels, int32_t step) ----
 * tq_dw3x3_rq over a run of pixels: after each pixel the weights start again and the row
 * pointers (moved 4 bytes a group) move on to the next pixel's taps. 9 instructions a pixel
 * instead of a call. [sp] the weights, [sp, #4] step - 4 * groups, [sp, #8] the weights' end,
 * [sp, #12] pixels left. */

    .macro DW_RQ_ROW name, z
    FUNC    \name
    push    {r4-r11, lr}
    ldr     r12, [sp, #36]              @ pixels: the fifth argument, above the 9 registers pushed
    ldr     r9, [sp, #40]               @ step: the sixth
    mov     r4, r1
    mov     lr, r3
    movs    r3, #136
    mul     r3, r2, r3
    sub     r9, r9, r2, lsl #2
    add     r10, r1, r3
    push    {r1, r9, r10, r12}
    ldr     r3, [r0, #12]               @ col_step
    ldr     r1, [r0, #4]
    ldr     r2, [r0, #8]
    ldr     r0, [r0]
1:  DW_GROUP 1
    DW_RQ   r5, \z
    DW_RQ   r6, \z
    DW_RQ   r7, \z
    DW_RQ   r8, \z
    ldr     r9, [sp, #8]
    cmp     r4, r9
    bne     1b
    ldr     r4, [sp]
    ldr     r9, [sp, #4]
    add     r0, r0, r9
    add     r1, r1, r9
    add     r2, r2, r9
    COUNTDOWN r9, 12, 1b
    add     sp, sp, #16
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    DW_RQ_ROW tq_dw3x3_rq_row, 0
    DW_RQ_ROW tq_dw3x3_rq_row_z, 1      @ an output zero point of -128: tq_rq_fast_x2_z, one instruction less an output

#endif
