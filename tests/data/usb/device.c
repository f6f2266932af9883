/*
 * The device side of the USB transport tests: the real console (console_nrf52_uarte.c),
 * USB driver (tq_usbd_nrf52.c, tq_usb_cdc.c) and protocol loop (tq_protocol.c) run in a
 * thread against the register model (nrf52_model.c). What the firmware gets from elsewhere
 * is stood in for here: the timer (the host's clock, in microseconds), the stack high-water
 * mark, and a stand-in model (tq_model.h) whose output depends on every input byte, so a
 * byte lost or changed on the way in shows in the output the host compares with h_reference.
 */
#include <pthread.h>
#include <stdint.h>

#include "tq_model.h"
#include "tq_port.h"
#include "tq_protocol.h"

uint32_t m_now_us(void);
void m_set_stack_top(uintptr_t top);

const char tq_model_id[] = "usb-transport-standin";
const char *const tq_model_op_names[TQ_MODEL_NUM_OPS] = {"mix", "reduce"};

int tq_model_run(const int8_t *input, int8_t *output) {
    for (uint32_t j = 0; j < TQ_MODEL_OUTPUT_BYTES; ++j) {
        uint32_t h = 2166136261u ^ j;
        for (uint32_t i = 0; i < TQ_MODEL_INPUT_BYTES; ++i) h = (h ^ (uint8_t)input[i]) * 16777619u + i;
        output[j] = (int8_t)(h >> 13);
    }
    return 0;
}

int tq_model_run_profiled(const int8_t *input, int8_t *output, tq_clock_fn clock, uint32_t *op_cycles) {
    const uint32_t t0 = clock();
    tq_model_run(input, output);
    op_cycles[0] = clock() - t0;
    op_cycles[1] = 0;
    return 0;
}

void tq_timer_init(void) {}
uint32_t tq_timer_now(void) { return m_now_us(); }
uint32_t tq_timer_hz(void) { return 1000000u; }
const char *tq_timer_kind(void) { return "host"; }
uint32_t tq_stack_high_water(void) { return 0; }

static pthread_t device;

static void *device_main(void *arg) {
    (void)arg;
    int top;
    m_set_stack_top((uintptr_t)&top);
    tq_protocol_main(0, 0);
    return NULL;
}

int h_start(void) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 16u << 20);
    return pthread_create(&device, &a, device_main, NULL);
}

void h_join(void) { pthread_join(device, NULL); }

void h_reference(const int8_t *input, int8_t *output) { tq_model_run(input, output); }
