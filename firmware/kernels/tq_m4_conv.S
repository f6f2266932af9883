/*
 * CONV_2D's inner loops on the Cortex-M4 (tq_conv.c holds their plain-C twins): the matrix product
 * of two channels by four im2col columns, the requantizing tiles, the lone last pixel, the Winograd
 * F(2, 3) tile and input transform, the column expansion.
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#include "tq_m4.S"

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

#endif
