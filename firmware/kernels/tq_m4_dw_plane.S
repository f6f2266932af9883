/*
 * The channel-planar 3x3 depthwise's inner loop on the Cortex-M4 (tq_dw_plane.c holds its plain-C twin).
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "tq_m4.S"

/* ---- tq_dw3x3_plane(const tq_dw_plane_t *t) ----
 * The channels of tq_depthwise3x3_plane_s8, one after another (tq_kernels.h says how): each one's
 * inputs into the plane, then along each plane row four outputs at a time (rows of two quads or
 * more), then pairs, then a single one; a row that would end in a quad and a single ends in five
 * (a quint: KWS's rows of 25). A quad: per kernel row, its weights (k0 k1) (k2 k1) from the frame
 * (LDRD) and the window's six inputs x0..x5 (one LDM of three words A B C) give (k0 k1) . A + k2 x2
 * (SMLAD, SMLABB), k0 x1 + (k1 k2) . B (SMLATB, SMLADX), and the same a word on for the other two: 21 instructions an output; a quint loads a
 * fourth word D and adds (k0 k1) . C + k2 x6. A pair: weights in r0-r5, one two-word load a kernel
 * row: 33 instructions a pair, 20 a single output. Pairs and singles: r0-r5 the kernel rows'
 * weights, r6/r7 the loaded words, r8/r9 the sums. Quads: r0/r1 a kernel row's weights, r2-r4 its
 * words (and lr in a quint), r5-r8 the sums (r9 the fifth), r2 row 2 first. Both: r10 / r11 the
 * window's first and second plane rows, r12 the output, lr where the run ends. The frame is the
 * tq_dw_plane_t, copied (its offsets from tq_offsets.h), then (PLANE_W on) a channel's 6 weight
 * words, whether rows end in a quint, and what each channel starts from. */

    .macro PLANE_LOAD k                 @ kernel row k's four inputs into r6, r7; the window moves on
    .if \k == 0
    ldrd    r6, r7, [r10], #4
    .elseif \k == 1
    ldrd    r6, r7, [r11], #4
    .else                               @ row 2 is as far below row 1 as row 1 is below row 0
    rsb     r6, r10, r11, lsl #1
    ldrd    r6, r7, [r6, #-4]
    .endif
    .endm

    .macro GATHER_NEXT4 loop, end       @ four inputs on (r6 by 4 du): more fours at loop, none left: end
    add     r6, r6, r9, lsl #1
    subs    r10, r10, #4
    bhs     \loop
9:  adds    r10, r10, #4                @ else 1-3 left, or none (a row under 4 starts here: 9f)
    beq     \end
    .endm

    .macro GATHER_ROW_END row           @ the gather's next plane row (src by dv, dst by row_bytes), if any
    ldr     r7, [sp, #TQ_DW_PLANE_DV]   @ dv
    add     r0, r0, r7
    add     r3, r3, r11
    subs    r5, r5, #1
    bne     \row
    .endm

    .equ    PLANE_W, TQ_DW_PLANE_SIZEOF @ after the tq_dw_plane_t: the frame's copy of a channel's weights,
    .equ    PLANE_QUINT, PLANE_W + 24   @ 4: the rows end in a quint,
    .equ    PLANE_PA, PLANE_W + 28      @ the first plane's first window,
    .equ    PLANE_OUTC, PLANE_W + 32    @ the channel's first output,
    .equ    PLANE_ROWS, PLANE_W + 36    @ rows,
    .equ    PLANE_NV, PLANE_W + 40      @ n_v,
    .equ    PLANE_PAR, PLANE_W + 44     @ 1 after an even channel (two planes),
    .equ    PLANE_QUADB, PLANE_W + 48   @ the bytes a row's quads move the window on (0: none)
    .equ    PLANE_FRAME, PLANE_W + 52   @ (sp stays 8-byte aligned)

    .macro QROW                         @ one kernel row of a quad: r0 (k0 k1), r1 (k2 k1); r2-r4 x0..x5
    smlad   r5, r2, r0, r5
    smlatb  r6, r2, r0, r6
    smlabb  r5, r3, r1, r5
    smladx  r6, r3, r1, r6
    smlad   r7, r3, r0, r7
    smlatb  r8, r3, r0, r8
    smlabb  r7, r4, r1, r7
    smladx  r8, r4, r1, r8
    .endm

    .macro QROW5                        @ a quint's kernel row: QROW, and the fifth output from C D (lr)
    QROW
    smlad   r9, r4, r0, r9
    smlabb  r9, lr, r1, r9
    .endm

    .macro PLANE_LDM base, n            @ a kernel row's words: x0..x5 (r2-r4), and x6, x7 (lr) for five outputs
    .if \n == 5
    ldmia   \base, {r2-r4, lr}
    .else
    ldmia   \base, {r2-r4}
    .endif
    .endm

    .macro PLANE_RUN n, z=0             @ n = 4 (a quad) or 5 (a quint) outputs of the window at r10 / r11
    ldr     r5, [sp]                    @ the sums start at the bias
    mov     r6, r5
    mov     r7, r5
    mov     r8, r5
    .if \n == 5
    mov     r9, r5
    .endif
    .irp    k, 0, 1, 2
    ldrd    r0, r1, [sp, #PLANE_W + 8 * \k]
    .if \k == 0
    PLANE_LDM r10, \n
    .elseif \k == 1
    PLANE_LDM r11, \n
    .else
    rsb     r2, r10, r11, lsl #1        @ row 2 is as far below row 1 as row 1 is below row 0
    PLANE_LDM r2, \n                    @ (the base among the loaded: no writeback, so allowed)
    .endif
    .if \n == 5
    QROW5
    .else
    QROW
    .endif
    .endr
    add     r2, sp, #TQ_DW_PLANE_RND
    ldmia   r2, {r0-r3}                 @ rnd, mult, shift, out_step
    REQUANT_X2 r5, r0, r1, r2, r4, \z
    REQUANT_X2 r6, r0, r1, r2, r4, \z
    REQUANT_X2 r7, r0, r1, r2, r4, \z
    REQUANT_X2 r8, r0, r1, r2, r4, \z
    .if \n == 5
    REQUANT_X2 r9, r0, r1, r2, r4, \z
    .endif
    strb    r5, [r12]
    strb    r6, [r12, r3]
    add     r12, r12, r3, lsl #1
    strb    r7, [r12]
    strb    r8, [r12, r3]
    .if \n == 5
    strb    r9, [r12, r3, lsl #1]
    .else
    add     r12, r12, r3, lsl #1
    .endif
    .endm

    .macro DW_PLANE name, z
    FUNC    \name
    push    {r4-r11, lr}
    sub     sp, sp, #PLANE_FRAME
    mov     r12, sp
    ldmia   r0!, {r1-r8}                @ bias, bias, rnd, mult, shift, out_step, p, out
    stmia   r12!, {r1-r8}
    ldmia   r0!, {r1-r8}                @ rows, pair_bytes, single_bytes, next_row, out_next_row, row_bytes, w, src
    stmia   r12!, {r1-r8}
    ldmia   r0, {r1-r8}                 @ du, dv, dst, n_u, n_v, gather2, filter, channels
    stmia   r12, {r1-r8}
    ldrd    r1, r2, [sp, #TQ_DW_PLANE_P] @ the first plane's window, the first channel's output
    ldr     r3, [sp, #TQ_DW_PLANE_ROWS] @ rows
    ldr     r4, [sp, #TQ_DW_PLANE_N_V]  @ n_v
    add     r12, sp, #PLANE_PA
    mov     r5, #0
    stmia   r12, {r1-r5}                @ PLANE_PA, PLANE_OUTC, PLANE_ROWS, PLANE_NV, PLANE_PAR
/* How every row goes: under two quads (pair_bytes 4 a pair, 8 a quad), pairs (a quad and a pair
 * cost what three pairs do, in cycles and in instructions); else quads, and where one single and
 * no pair would be left, the last quad and the single as a quint (PLANE_QUINT 4). */
    ldrd    r1, r2, [sp, #TQ_DW_PLANE_PAIR_BYTES] @ pair_bytes, single_bytes
    mov     r3, #0                      @ the quads' bytes
    mov     r4, #0
    cmp     r1, #16
    blo     42f
    and     r4, r1, #4                  @ a pair left over
    add     r4, r2, r4, lsl #1
    bic     r3, r1, #7
    cmp     r4, #4
    it      eq
    subeq   r3, r3, #8
42: str     r3, [sp, #PLANE_QUADB]
    str     r4, [sp, #PLANE_QUINT]
/* A channel: its bias, rnd, mult, shift and weights from filter; its output and rows from the first
 * channel's; with two planes, an even channel gathers both, the odd one after it only computes, on
 * the second (gather2 bytes on). */
40: ldr     r0, [sp, #TQ_DW_PLANE_FILTER] @ filter
    ldmia   r0!, {r1-r4}                @ bias, rnd, mult, shift
    strd    r1, r1, [sp]
    add     r12, sp, #TQ_DW_PLANE_RND
    stmia   r12, {r2-r4}
    str     r0, [sp, #TQ_DW_PLANE_W]    @ w: the 6 weight words follow
    add     r0, r0, #24
    str     r0, [sp, #TQ_DW_PLANE_FILTER] @ the next channel's
    add     r12, sp, #PLANE_PA
    ldmia   r12, {r1-r4}                @ the first plane's window, this channel's output, rows, n_v
    add     r5, r2, #1
    str     r5, [sp, #PLANE_OUTC]       @ the next channel's output
    str     r2, [sp, #TQ_DW_PLANE_OUT]
    str     r3, [sp, #TQ_DW_PLANE_ROWS]
    ldr     r3, [sp, #TQ_DW_PLANE_GATHER2] @ gather2
    cbz     r3, 41f
    ldr     r5, [sp, #PLANE_PAR]
    eors    r5, r5, #1
    str     r5, [sp, #PLANE_PAR]
    itt     eq                          @ an odd channel: its plane was gathered with the last one
    addeq   r1, r1, r3
    moveq   r4, #0
41: str     r1, [sp, #TQ_DW_PLANE_P]
    str     r4, [sp, #TQ_DW_PLANE_N_V]
    ldr     r0, [sp, #TQ_DW_PLANE_SRC]  @ src: this channel's inputs; the next one's a byte on
    add     r1, r0, #1
    str     r1, [sp, #TQ_DW_PLANE_SRC]
    add     r12, sp, #TQ_DW_PLANE_DU
    ldmia   r12, {r1-r6}                @ du, dv, dst, n_u, n_v, gather2
    ldr     r11, [sp, #TQ_DW_PLANE_ROW_BYTES] @ row_bytes
    lsl     r9, r1, #1
    add     r2, r9, r1                  @ 3 du (dv stays in the frame)
    cmp     r5, #0                      @ gathered with the channel before
    beq     30f
    cmp     r6, #0
    bne     20f
/* The gather: a plane row at a time (r0 its first input, r3 its first int16), four inputs a turn
 * (two sign-extending loads a word: 11 instructions per 4 inputs). */
7:  mov     r6, r0
    mov     r8, r3
    subs    r10, r4, #4
    blo     9f
8:  ldrsb   r12, [r6]
    ldrsb   lr, [r6, r1]
    ldrsb   r7, [r6, r9]
    pkhbt   r12, r12, lr, lsl #16
    ldrsb   lr, [r6, r2]
    str     r12, [r8], #8               @ plane rows may start at an odd halfword: STR, not STRD
    pkhbt   r7, r7, lr, lsl #16
    str     r7, [r8, #-4]
    GATHER_NEXT4 8b, 11f
10: ldrsb   r12, [r6]
    add     r6, r6, r1
    strh    r12, [r8], #2
    subs    r10, r10, #1
    bne     10b
11: GATHER_ROW_END 7b
    b       30f
/* Two channels' gather (gather2: the second plane that many bytes after the first): each input
 * halfword holds both; four pixels a turn, two halfwords a word (PKHBT), then SXTB16 splits the
 * channels: 17 instructions per 4 inputs of each. r4 gather2 - 4 (the stores post-increment). */
20: sub     r4, r6, #4
21: mov     r6, r0
    mov     r8, r3
    ldr     r10, [sp, #TQ_DW_PLANE_N_U] @ n_u
    subs    r10, r10, #4
    blo     9f
22: ldrh    r12, [r6]
    ldrh    lr, [r6, r1]
    ldrh    r7, [r6, r9]
    pkhbt   r12, r12, lr, lsl #16       @ pixels 0, 1: channel c in bytes 0 and 2, c + 1 in 1 and 3
    ldrh    lr, [r6, r2]
    pkhbt   r7, r7, lr, lsl #16         @ pixels 2, 3
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    str     lr, [r8], #4
    str     r12, [r8, r4]
    sxtb16  lr, r7
    sxtb16  r7, r7, ror #8
    str     lr, [r8], #4
    str     r7, [r8, r4]
    GATHER_NEXT4 22b, 25f
24: ldrh    r12, [r6]
    add     r6, r6, r1
    sxtb    lr, r12
    sxtb    r12, r12, ror #8
    add     r7, r8, r4
    strh    r12, [r7, #4]
    strh    lr, [r8], #2
    subs    r10, r10, #1
    bne     24b
25: GATHER_ROW_END 21b
30: ldr     r7, [sp, #TQ_DW_PLANE_W]    @ the weights, into the frame for the quads
    ldmia   r7, {r0-r5}
    add     r7, sp, #PLANE_W
    stmia   r7, {r0-r5}
2:  ldrd    r10, r12, [sp, #TQ_DW_PLANE_P] @ a plane row: its first window and output
    ldr     r11, [sp, #TQ_DW_PLANE_ROW_BYTES] @ the window's second row
    add     r11, r10, r11
    ldr     lr, [sp, #PLANE_QUADB]      @ the quads' bytes, or 0: all pairs
    cmp     lr, #0
    itt     eq
    ldreq   lr, [sp, #TQ_DW_PLANE_PAIR_BYTES] @ pair_bytes
    beq     12f
    add     lr, r10, lr
13: PLANE_RUN 4, \z
    add     r10, r10, #8
    add     r11, r11, #8
    cmp     r10, lr
    bne     13b
    ldr     r9, [sp, #PLANE_QUINT]
    cmp     r9, #4
    beq     14f
    add     r7, sp, #PLANE_W            @ the pairs' and singles' weights, back in registers
    ldmia   r7, {r0-r5}
    ldr     lr, [sp, #TQ_DW_PLANE_PAIR_BYTES] @ a pair left
    and     lr, lr, #4
12: add     lr, r10, lr
    cmp     r10, lr
    beq     4f
3:  ldrd    r8, r9, [sp]                @ both sums start at the bias
    PLANE_LOAD 0
    smlad   r8, r6, r0, r8
    smlatb  r9, r6, r0, r9
    smlabb  r8, r7, r1, r8
    smladx  r9, r7, r1, r9
    PLANE_LOAD 1
    smlad   r8, r6, r2, r8
    smlatb  r9, r6, r2, r9
    smlabb  r8, r7, r3, r8
    smladx  r9, r7, r3, r9
    PLANE_LOAD 2
    smlad   r8, r6, r4, r8
    smlatb  r9, r6, r4, r9
    smlabb  r8, r7, r5, r8
    smladx  r9, r7, r5, r9
    ldrd    r6, r7, [sp, #TQ_DW_PLANE_RND] @ rnd, mult: REQUANT_X2 split around the loads (two free registers)
    .if \z
    smmlar  r8, r8, r7, r6
    smmlar  r9, r9, r7, r6
    .else
    add     r6, r6, r8, asr #31
    smmlar  r8, r8, r7, r6
    ldr     r6, [sp, #TQ_DW_PLANE_RND]
    add     r6, r6, r9, asr #31
    smmlar  r9, r9, r7, r6
    .endif
    ldrd    r6, r7, [sp, #TQ_DW_PLANE_SHIFT] @ shift, out_step
    asr     r8, r8, r6
    asr     r9, r9, r6
    ssat    r8, #8, r8
    ssat    r9, #8, r9
    strb    r8, [r12]
    strb    r9, [r12, r7]
    add     r12, r12, r7, lsl #1
    cmp     r10, lr
    bne     3b
4:  ldr     lr, [sp, #TQ_DW_PLANE_SINGLE_BYTES] @ single_bytes
    add     lr, r10, lr
    cmp     r10, lr
    beq     6f
5:  ldr     r8, [sp]
    PLANE_LOAD 0
    smlad   r8, r6, r0, r8
    smlabb  r8, r7, r1, r8
    PLANE_LOAD 1
    smlad   r8, r6, r2, r8
    smlabb  r8, r7, r3, r8
    PLANE_LOAD 2
    smlad   r8, r6, r4, r8
    smlabb  r8, r7, r5, r8
    ldrd    r6, r7, [sp, #TQ_DW_PLANE_RND]
    .if \z
    smmlar  r8, r8, r7, r6
    .else
    add     r6, r6, r8, asr #31
    smmlar  r8, r8, r7, r6
    .endif
    ldrd    r6, r7, [sp, #TQ_DW_PLANE_SHIFT]
    asr     r8, r8, r6
    ssat    r8, #8, r8
    strb    r8, [r12]
    add     r12, r12, r7
    cmp     r10, lr
    bne     5b
    b       6f
14: PLANE_RUN 5, \z                        @ a quint
6:  ldrd    r6, r7, [sp, #TQ_DW_PLANE_P] @ the next plane row: p, out
    ldrd    r8, r9, [sp, #TQ_DW_PLANE_NEXT_ROW] @ next_row, out_next_row
    add     r6, r6, r8
    add     r7, r7, r9
    strd    r6, r7, [sp, #TQ_DW_PLANE_P]
    COUNTDOWN r6, TQ_DW_PLANE_ROWS, 2b  @ rows left
    COUNTDOWN r6, TQ_DW_PLANE_CHANNELS, 40b @ channels left
    add     sp, sp, #PLANE_FRAME
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    DW_PLANE tq_dw3x3_plane, 0
    DW_PLANE tq_dw3x3_plane_z, 1        @ an output zero point of -128: tq_rq_fast_x2_z, one instruction less an output

#endif
