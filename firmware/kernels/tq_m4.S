/*
 * The inner loops of tinyq's int8 kernels on the Cortex-M4 DSP extension.
 *
 * Plain-C twins with the same data layout and the same integer results are in
 * tq_conv.c (compiled where this file is not: the host, cores without DSP); the
 * host tests run those, the QEMU tests run these, both against TFLM bit for bit.
 *
 * Hand-written because each loop needs all 14 usable registers (accumulators,
 * operands and pointers) and GCC spills to the stack in the C versions, which
 * costs about 40 % more instructions per MAC. SMLAD/SMUAD are two 16x16 MACs
 * in one single-cycle instruction; SXTB16 (ROR 8) sign-extends bytes 0 and 2
 * (1 and 3) of a word into two int16 lanes.
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

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

/* ---- tq_mm_2x4(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, int32_t acc[8]) ----
 * Two output channels (c, c+1) by four columns over k_pairs K-pairs (even, >= 2).
 * r0 weights (one word a K-pair: both channels), r1 columns (4 words a K-pair),
 * r2-r5 channel c . columns 0-3, r6-r9 channel c+1 . columns 0-3,
 * r10/r11 the two channels' int16 weight pairs, r12/lr two column words.
 * 13 instructions per K-pair (16 MACs). */

    .macro DUAL first, d, n, m          @ d = n.lo*m.lo + n.hi*m.hi (+ d unless first)
    .if \first
    smuad   \d, \n, \m
    .else
    smlad   \d, \n, \m, \d
    .endif
    .endm

    .macro MM_PAIR first=0, w16=0
    .if \w16                            @ weights already int16 pairs: one LDM, no SXTB16
    ldmia   r0!, {r10, r11}
    ldmia   r1!, {r12, lr}
    .else
    ldr     r11, [r0], #4
    ldmia   r1!, {r12, lr}
    sxtb16  r10, r11
    sxtb16  r11, r11, ror #8
    .endif
    DUAL    \first, r2, r10, r12
    DUAL    \first, r6, r11, r12
    DUAL    \first, r3, r10, lr
    DUAL    \first, r7, r11, lr
    ldmia   r1!, {r12, lr}
    DUAL    \first, r4, r10, r12
    DUAL    \first, r8, r11, r12
    DUAL    \first, r5, r10, lr
    DUAL    \first, r9, r11, lr
    .endm

    .equ    MM_PAIR_BYTES, 44           @ an int16-weight MM_PAIR: three LDM.W, eight SMLAD, all 32-bit

    .macro MM_ENTRY dst, kp, t1, t2, n=16   @ dst = where MM_KLOOPN \n starts (k_pairs - 1) % n + 1 pairs before its end
    sub     \dst, \kp, #1
    and     \dst, \dst, #(\n - 1)
    add     \dst, \dst, #1
    mov     \t1, #MM_PAIR_BYTES
    adr     \t2, 1f                      @ the end of the MM_KLOOPN that follows
    mls     \dst, \dst, \t1, \t2
    orr     \dst, \dst, #1                @ a Thumb address for BX
    .endm

    .macro MM_KLOOPN end, n=16          @ biased-stream K-pairs, n a turn, until r1 reaches [sp, #end]; enter by BX
0:                                      @ to MM_ENTRY's address, so a tile spends 2 instructions before
    .rept \n                            @ its K-pairs and 3 every n after
    MM_PAIR 0, 2
    .endr
1:  .if (1b - 0b) != \n * MM_PAIR_BYTES
    .error "MM_PAIR is not MM_PAIR_BYTES long: the K-loop's entry would be wrong"
    .endif
    ldr     r12, [sp, #\end]
    cmp     r1, r12
    bne     0b
    .endm

    .macro MM_KLOOP end, w16=0, long=1  @ all K-pairs; [sp, #end] holds the columns' end
    MM_PAIR 1, \w16                     @ K-pair 0 starts the sums (SMUAD)
    MM_PAIR 0, \w16                     @ K-pair 1
    ldr     r12, [sp, #\end]
    subs    r12, r12, r1                @ bytes left: 16 a K-pair, a multiple of 32
    beq     3f
    tst     r12, #32                    @ two K-pairs, then (long) four, eight, then sixteens a turn
    beq     4f                          @ (3 instructions of loop per 16 K-pairs); else fours
    MM_PAIR 0, \w16
    MM_PAIR 0, \w16
    ldr     r12, [sp, #\end]
    subs    r12, r12, r1
    beq     3f
4:
    .if \long
    tst     r12, #64
    beq     6f
    .rept 4
    MM_PAIR 0, \w16
    .endr
    ldr     r12, [sp, #\end]
    subs    r12, r12, r1
    beq     3f
6:  tst     r12, #128
    beq     2f
    .rept 8
    MM_PAIR 0, \w16
    .endr
    ldr     r12, [sp, #\end]
    cmp     r1, r12
    beq     3f
2:
    .rept 16
    MM_PAIR 0, \w16
    .endr
    .else
2:
    .rept 4
    MM_PAIR 0, \w16
    .endr
    .endif
    ldr     r12, [sp, #\end]
    cmp     r1, r12
    bne     2b
3:
    .endm

    .macro MM_2X4 name, w16
    FUNC    \name
    push    {r4-r11, lr}
    add     r2, r1, r2, lsl #4          @ end of the columns
    push    {r2, r3}                    @ [sp] end, [sp, #4] acc
    MM_KLOOP 0, \w16, 0                 @ the slow paths' loop: short, little code
    ldr     r12, [sp, #4]
    stmia   r12, {r2-r9}
    add     sp, sp, #8
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    MM_2X4  tq_mm_2x4, 0
    MM_2X4  tq_mm_2x4_w16, 1            @ weights as int16 pairs (two words a K-pair)

/* ---- tq_conv_tile(const tq_conv_tile_t *t) ----
 * Every full channel pair of one group of 4 pixels: the tq_mm_2x4 sums, requantized on
 * the fast path with the full int8 range (tq_rq_fast: add, add, SMMLAR, ASR, SSAT) and
 * stored. The tile is copied to the stack and updated there:
 * [sp] w, [sp, #4] cols, [sp, #8] cols end, [sp, #12] chan, [sp, #16] out, [sp, #20] out
 * stride, [sp, #24] out + 2 * pairs (where the last pair's pixel-0 bytes end). */

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

    .macro CONV_TILE name, w16
    FUNC    \name
    push    {r4-r11, lr}
    ldmia   r0, {r1-r7}
    add     r7, r5, r7, lsl #1          @ pairs -> the end of the output's first row: out + 2 * pairs
    push    {r1-r7}
5:  ldr     r0, [sp]
    ldr     r1, [sp, #4]
    MM_KLOOP 8, \w16
    str     r0, [sp]                    @ the next pair's weights follow
    ldr     r0, [sp, #12]
    ldmia   r0!, {r10, r11, r12, lr}    @ channel c
    RQ4     \w16, r2, r3, r4, r5
    ldmia   r0!, {r10, r11, r12, lr}    @ channel c + 1
    str     r0, [sp, #12]
    RQ4     \w16, r6, r7, r8, r9
    ldr     r0, [sp, #16]               @ pixel 0, channel c
    ldr     r1, [sp, #20]
    STORE_PAIRS r0, r1, r10, 2
    str     r0, [sp, #16]
    ldr     r1, [sp, #24]
    cmp     r0, r1
    bne     5b
    add     sp, sp, #28
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    CONV_TILE tq_conv_tile, 0
    CONV_TILE tq_conv_tile_w16, 1

/* ---- tq_conv_tile_w16b(const tq_conv_tile_t *t) ----
 * tq_conv_tile on the biased stream (layout.tile_stream): each channel pair's 8 bias words, its
 * doubled int16 weights, then its two channels' rnd, mult and shift. The sums start at the biases
 * (one LDM) and come out as tq_rq_fast_x2's input, so an output's requantization is 4 instructions;
 * the weight pointer runs on through the pair's parameters into the next pair's biases.
 * The K-loop is entered part way into its 32 unrolled K-pairs (computed once a call), so a tile
 * spends 2 instructions before its K-pairs and 3 every 32 after (one check a tile at K = 64; the
 * Winograd tile's phases are shorter and keep 16). [sp] w, [sp, #4] cols, [sp, #8] cols end,
 * [sp, #12] chan (unused), [sp, #16] out, [sp, #20] out stride, [sp, #24] out + 2 * pairs,
 * [sp, #28] the K-loop's entry. */

    .macro CONV_TILE_W16B name, z
    FUNC    \name
    push    {r4-r11, lr}
    ldmia   r0, {r1-r7}
    add     r7, r5, r7, lsl #1          @ pairs -> the end of the output's first row: out + 2 * pairs
    sub     r8, r3, r2
    lsr     r8, r8, #4                  @ K-pairs: 16 bytes each
    MM_ENTRY r8, r8, r9, r10, 32
    push    {r1-r8}
    mov     r0, r1
5:  ldr     r1, [sp, #4]
    ldmia   r0!, {r2-r9}                @ the sums start at the biases
    ldr     r12, [sp, #28]
    bx      r12
    MM_KLOOPN 8, 32
    RQ_STREAM r0, \z
    ldrd    r10, r11, [sp, #16]         @ pixel 0, channel c; the output's stride
    STORE_PAIRS r10, r11, r12, 2
    str     r10, [sp, #16]
    ldr     r12, [sp, #24]
    cmp     r10, r12
    bne     5b
    add     sp, sp, #32
    pop     {r4-r11, pc}
    .size   \name, . - \name
    .endm

    CONV_TILE_W16B tq_conv_tile_w16b, 0
    CONV_TILE_W16B tq_conv_tile_w16b_z, 1   @ an output zero point of -128: tq_rq_fast_x2_z, one instruction less an output

/* ---- tq_conv_pixel_w16b(const uint32_t *w, const int32_t *cols, uint32_t k_pairs, uint32_t pairs,
 *                         int8_t *out) ----
 * Column 0 of the biased stream's tile, two channel pairs (A, B) at a time: per two K-pairs, the
 * column's two words, A's four weight words, then B's (one LDM each), eight SMLAD: 14 instructions
 * for 16 MACs, where tq_conv_tile_w16b's 11 make 16 for four columns. r0 / r3 A's / B's stream,
 * r1 the column, r2 its end, r4/r5 A's sums, r6/r7 B's, r8/r9 the column words, r10-lr weights.
 * Frame: [sp] cols, [sp, #4] pairs left, [sp, #8] out, [sp, #12] a pair's stream bytes. */

    FUNC    tq_conv_pixel_w16b
    push    {r4-r11, lr}
    ldr     r4, [sp, #36]               @ out: the fifth argument
    lsl     r12, r2, #3
    add     r12, r12, #4 * (TQ_TILE_LEAD_WORDS + TQ_TILE_TAIL_WORDS)
    add     r2, r1, r2, lsl #4          @ the column's end: 16 bytes a K-pair
    push    {r1, r3, r4, r12}
5:  ldr     r12, [sp, #4]               @ two pairs, or the last one as both
    mov     r3, r0
    cmp     r12, #2
    itt     hs
    ldrhs   r3, [sp, #12]
    addhs   r3, r0, r3
    ldr     r4, [r0]                    @ the sums start at the biases
    ldr     r5, [r0, #16]
    ldr     r6, [r3]
    ldr     r7, [r3, #16]
    add     r0, r0, #4 * TQ_TILE_LEAD_WORDS
    add     r3, r3, #4 * TQ_TILE_LEAD_WORDS
    ldr     r1, [sp]
1:  ldr     r9, [r1, #16]
    ldr     r8, [r1], #32
    ldmia   r0!, {r10, r11, r12, lr}
    smlad   r4, r10, r8, r4
    smlad   r5, r11, r8, r5
    smlad   r4, r12, r9, r4
    smlad   r5, lr, r9, r5
    ldmia   r3!, {r10, r11, r12, lr}
    smlad   r6, r10, r8, r6
    smlad   r7, r11, r8, r7
    smlad   r6, r12, r9, r6
    smlad   r7, lr, r9, r7
    cmp     r1, r2
    bne     1b
    ldmia   r0!, {r8, r9, r10}          @ A's channels' rnd, mult, shift: the stream runs on to B
    REQUANT_X2 r4, r8, r9, r10, r11
    ldmia   r0!, {r8, r9, r10}
    REQUANT_X2 r5, r8, r9, r10, r11
    ldmia   r3, {r8, r9, r10, r11, r12, lr}
    REQUANT_X2 r6, r8, r9, r10, r1
    REQUANT_X2 r7, r11, r12, lr, r1
    ldrd    r12, r1, [sp, #4]           @ pairs left, out
    strb    r4, [r1]
    strb    r5, [r1, #1]
    subs    r12, r12, #2
    bls     6f                          @ the last pair (or the last two)
    strb    r6, [r1, #2]
    strb    r7, [r1, #3]
    add     r1, r1, #4
    strd    r12, r1, [sp, #4]
    add     r0, r3, #4 * TQ_TILE_TAIL_WORDS @ the next A follows B
    b       5b
6:  itt     eq                          @ two were left: B's too
    strbeq  r6, [r1, #2]
    strbeq  r7, [r1, #3]
    add     sp, sp, #16
    pop     {r4-r11, pc}
    .size   tq_conv_pixel_w16b, . - tq_conv_pixel_w16b

/* ---- tq_wino_tile(const tq_wino_tile_t *t) ----
 * The Winograd F(2, 3) tile (tq_conv.c's conv_wino; the C twin there says what it computes): per
 * channel pair, four phases of k_pairs K-pairs over the group's transformed inputs, the sums carried
 * from phase to phase: T = biases + M1 and U = T + M2 are kept on the stack, E = U + M0 is requantized
 * to the even pixels, then 2T - U + (-M3) to the odd ones. One unrolled K-loop for all phases (entered
 * part way, as tq_conv_tile_w16b's), a counter choosing what follows each. Frame: [sp] cols,
 * [sp, #4] a phase's column bytes, [sp, #8] the phase's end, [sp, #12] the K-loop's entry, [sp, #16]
 * out (the pair's channels, pixel 0), [sp, #20] out stride, [sp, #24] out + 2 * pairs, [sp, #28] a
 * phase's weight bytes, [sp, #32] phases done, [sp, #36] T, [sp, #68] U, [sp, #100] the columns of
 * phase 3. */

    FUNC    tq_wino_tile
    push    {r4-r11, lr}
    sub     sp, sp, #104
    ldmia   r0, {r1-r6}                 @ w, cols, k_pairs, out, out_stride, pairs
    mov     r0, r1
    str     r2, [sp]
    lsl     r7, r3, #4
    str     r7, [sp, #4]
    lsl     r7, r3, #3
    str     r7, [sp, #28]
    MM_ENTRY r7, r3, r8, r9
    str     r7, [sp, #12]
    add     r6, r4, r6, lsl #1
    strd    r4, r5, [sp, #16]
    str     r6, [sp, #24]
5:  ldr     r1, [sp]                    @ a channel pair
    ldmia   r0!, {r2-r9}                @ the sums start at the biases
    mov     r12, #0
    str     r12, [sp, #32]
6:  ldr     r12, [sp, #4]               @ a phase
    add     r12, r1, r12
    str     r12, [sp, #8]
    ldr     r12, [sp, #12]
    bx      r12
    MM_KLOOPN 8
    ldr     r12, [sp, #32]
    add     r12, r12, #1
    str     r12, [sp, #32]
    cmp     r12, #2
    bhi     3f
    add     r10, sp, #36                @ after phase 1: T; after phase 2: U
    it      eq
    addeq   r10, sp, #68
    stmia   r10, {r2-r9}
    b       6b
3:  cmp     r12, #3
    bne     4f
    str     r1, [sp, #100]              @ after phase 3: E, the even pixels
    ldr     r10, [sp, #28]
    add     r10, r0, r10                @ the pair's parameters follow phase 4's weights
    RQ_STREAM r10
    ldrd    r10, r11, [sp, #16]
    lsl     r11, r11, #1
    STORE_PAIRS r10, r11, r12           @ pixels 0, 2, 4, 6
    add     r12, sp, #36                @ 2T - U: where phase 4 starts
    ldmia   r12, {r2-r9}
    .set    at, 68
    .irp    acc, r2, r3, r4, r5, r6, r7, r8, r9
    ldr     r10, [sp, #at]
    rsb     \acc, r10, \acc, lsl #1
    .set    at, at + 4
    .endr
    ldr     r1, [sp, #100]
    b       6b
4:  RQ_STREAM r0                        @ after phase 4: the odd pixels; the stream runs on
    ldrd    r10, r11, [sp, #16]
    add     r12, r10, r11
    lsl     r11, r11, #1
    STORE_PAIRS r12, r11, lr            @ pixels 1, 3, 5, 7
    add     r10, r10, #2
    str     r10, [sp, #16]
    ldr     r12, [sp, #24]
    cmp     r10, r12
    bne     5b
    add     sp, sp, #104
    pop     {r4-r11, pc}
    .size   tq_wino_tile, . - tq_wino_tile

/* ---- tq_wino_row(tq_wino_row_t *t) ----
 * The Winograd conv's input transform of one kernel row (tq_conv.c's C twin says what; tq_kernels.h
 * the fields). Per input word and lane: 10 loads, 10 sign extensions, and for each of the 4 pixel
 * pairs the 4 positions stored to their phases (d0..d3 post-incremented): 56 instructions. r0 the
 * pixel x0's word, r1 bytes a pixel, r2-r5 d0..d3, r6-r9 the pair's inputs, r10 the walk along the
 * row, r11 / r12 pixel x0 - 1's and x0 + 8's words, lr the position. Frame: [sp] t, [sp, #4] words
 * left, [sp, #8] left_step, [sp, #12] right_step. */

    .macro WSX lane, r                  @ lane 0: bytes 0, 2 as int16 lanes; lane 1: bytes 1, 3
    .if \lane
    sxtb16  \r, \r, ror #8
    .else
    sxtb16  \r, \r
    .endif
    .endm

    .macro WPOS x0, x1, x2, x3          @ positions 1, 2, 0, 3 of one pair, to phases 0-3
    sadd16  lr, \x1, \x2
    str     lr, [r2], #4
    ssub16  lr, \x2, \x1
    str     lr, [r3], #4
    ssub16  lr, \x0, \x2
    str     lr, [r4], #4
    ssub16  lr, \x1, \x3
    str     lr, [r5], #4
    .endm

    .macro WNEXT lane, x0, x1, x2, x3   @ x2, x3 the next two pixels (r10 moves on by two); the pair x0..x3's positions
    ldr     \x2, [r10]
    ldr     \x3, [r10, r1]
    add     r10, r10, r1, lsl #1
    WSX     \lane, \x2
    WSX     \lane, \x3
    WPOS    \x0, \x1, \x2, \x3
    .endm

    .macro WLANE lane
    ldr     r6, [r11]                   @ pixel x0 - 1
    ldr     r7, [r0]                    @ x0
    WSX     \lane, r6
    WSX     \lane, r7
    add     r10, r0, r1
    WNEXT   \lane, r6, r7, r8, r9        @ pixels x0 + 1, x0 + 2
    WNEXT   \lane, r8, r9, r6, r7        @ x0 + 3, x0 + 4
    WNEXT   \lane, r6, r7, r8, r9        @ x0 + 5, x0 + 6
    ldr     r6, [r10]                   @ x0 + 7
    ldr     r7, [r12]                   @ x0 + 8
    WSX     \lane, r6
    WSX     \lane, r7
    WPOS    r8, r9, r6, r7
    .endm

    FUNC    tq_wino_row
    push    {r4-r11, lr}
    sub     sp, sp, #16
    str     r0, [sp]
    ldrd    r2, r3, [r0, #TQ_WINO_ROW_LEFT_STEP] @ left_step, right_step
    strd    r2, r3, [sp, #8]
    ldr     r2, [r0, #TQ_WINO_ROW_WORDS] @ words
    str     r2, [sp, #4]
    ldrd    r11, r12, [r0, #TQ_WINO_ROW_LEFT] @ left, right
    add     lr, r0, #TQ_WINO_ROW_D
    ldmia   lr, {r2-r5}                 @ d0..d3
    ldrd    r0, r1, [r0]                @ px, c
1:  WLANE   0
    WLANE   1
    add     r0, r0, #4
    ldrd    r6, r7, [sp, #8]
    add     r11, r11, r6
    add     r12, r12, r7
    COUNTDOWN r6, 4, 1b
    ldr     r0, [sp]
    add     r0, r0, #28
    stmia   r0, {r2-r5}                 @ the phases' pointers, moved on
    add     sp, sp, #16
    pop     {r4-r11, pc}
    .size   tq_wino_row, . - tq_wino_row

/* ---- tq_expand(const int8_t *src, int32_t *col, uint32_t words) ----
 * One im2col column: each input word becomes its two int16 K-pairs, 8 words apart in the
 * 4-column layout. 6 instructions a word. */

    .macro EXPAND_WORD
    ldr     r3, [r0], #4
    sxtb16  r12, r3
    sxtb16  r3, r3, ror #8
    str     r3, [r1, #16]
    str     r12, [r1], #32
    .endm

    FUNC    tq_expand
    tst     r2, #1
    beq     2f
    EXPAND_WORD
    subs    r2, r2, #1
    beq     3f
2:  EXPAND_WORD
    EXPAND_WORD
    subs    r2, r2, #2
    bne     2b
3:  bx      lr
    .size   tq_expand, . - tq_expand

/* ---- tq_expand4(const int8_t *src, int32_t step, int32_t *cols, uint32_t words) ----
 * The four columns of a group of pixels at once: word i of pixel n is at src + n * step + 4i;
 * its two K-pairs go to cols[8i + n] and cols[8i + 4 + n], so the eight words of one input
 * word position are consecutive and one STM stores them. 15 instructions per 4 words (tq_expand:
 * 24). r0 / r12 pixels 0 / 2, r1 step, r2 cols, r3-r6 / r7-r10 the K-pairs, r11 words left. */

    FUNC    tq_expand4
    push    {r4-r11, lr}
    mov     r11, r3
    add     r12, r0, r1, lsl #1
1:  ldr     r8, [r0, r1]
    ldr     r7, [r0], #4
    ldr     r10, [r12, r1]
    ldr     r9, [r12], #4
    sxtb16  r3, r7
    sxtb16  r4, r8
    sxtb16  r5, r9
    sxtb16  r6, r10
    sxtb16  r7, r7, ror #8
    sxtb16  r8, r8, ror #8
    sxtb16  r9, r9, ror #8
    sxtb16  r10, r10, ror #8
    stmia   r2!, {r3-r10}
    subs    r11, r11, #1
    bne     1b
    pop     {r4-r11, pc}
    .size   tq_expand4, . - tq_expand4

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
