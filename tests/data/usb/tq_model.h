/* A stand-in model for the USB transport tests (device.c): a large input (6 KB, a line of
 * 12 KB of hex), a small output computed from every input byte. Same interface as
 * templates/model/tq_model.h.j2. */
#ifndef TQ_MODEL_H
#define TQ_MODEL_H

#include <stdint.h>

#define TQ_MODEL_INPUT_BYTES 6144u
#define TQ_MODEL_OUTPUT_BYTES 16u
#define TQ_MODEL_ARENA_BYTES 6160u
#define TQ_MODEL_RAM_BYTES TQ_MODEL_ARENA_BYTES
#define TQ_MODEL_WEIGHT_BYTES 0u
#define TQ_MODEL_NUM_OPS 2u
#define TQ_MODEL_MACS 98304u

extern const char tq_model_id[];
extern const char *const tq_model_op_names[TQ_MODEL_NUM_OPS];
int tq_model_run(const int8_t *input, int8_t *output);
typedef uint32_t (*tq_clock_fn)(void);
int tq_model_run_profiled(const int8_t *input, int8_t *output, tq_clock_fn clock, uint32_t *op_cycles);

#endif
