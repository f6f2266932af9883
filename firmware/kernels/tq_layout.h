/* Layout facts that C (tq_kernels.h) and the assembly (tq_m4_*.S) both read: plain integers, so
 * the assembler takes them too. tinyq.ops.layout states them for Python; a test compares. */
#ifndef TQ_LAYOUT_H
#define TQ_LAYOUT_H

/* The biased tile stream (w16 = 2): each channel pair's two biases four times each before its
 * weights, its two channels' rnd, mult and shift after them. */
#define TQ_TILE_LEAD_WORDS 8
#define TQ_TILE_TAIL_WORDS 6

#endif
