/*
 * tinyq's port (tq_port.h) over the Arduino API, for the Arduino library a build exports:
 * the console is Serial (the board's USB CDC port on a Nano 33 BLE), the clock is the
 * Cortex-M4's DWT cycle counter. The protocol itself is tq_protocol.c, the same source
 * as the bare-metal firmware's.
 */
#include <Arduino.h>

extern "C" {
#include "tq_board.h"
#include "tq_port.h"
#include "tq_protocol.h"
}

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

extern "C" void tq_console_init(void) {
    Serial.begin(TQ_CONSOLE_BAUD);
    while (!Serial) {
        /* wait for the host to open the port: the boot line must not go out unheard */
    }
}

extern "C" void tq_console_putc(char c) { Serial.write((uint8_t)c); }

extern "C" int tq_console_getc(void) {
    while (Serial.available() <= 0) {
    }
    return Serial.read();
}

extern "C" const char *tq_console_names(void) { return "arduino-serial"; }

extern "C" void tq_timer_init(void) {
    DEMCR |= 1u << 24; /* TRCENA: the DWT on */
    DWT_CYCCNT = 0u;
    DWT_CTRL |= 1u;    /* CYCCNTENA */
}

extern "C" uint32_t tq_timer_now(void) { return DWT_CYCCNT; }
extern "C" uint32_t tq_timer_hz(void) { return TQ_BOARD_CPU_HZ; }
extern "C" const char *tq_timer_kind(void) { return "dwt"; }
extern "C" void tq_exit(int status) { (void)status; }
/* The Arduino core owns the stack: no painted stack to measure. */
extern "C" uint32_t tq_stack_high_water(void) { return 0u; }

void tinyq_run(void) { tq_protocol_main(0u, 0u); }
