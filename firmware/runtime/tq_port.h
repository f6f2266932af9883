/* What the runtime needs from a board: a console, a cycle clock, an exit. */
#ifndef TQ_PORT_H
#define TQ_PORT_H

#include <stdint.h>

void tq_console_init(void);
void tq_console_putc(char c);
int tq_console_getc(void);          /* blocks; returns the byte */
const char *tq_console_names(void); /* which consoles are live, for the boot line: "uart", "uart+usb" */

void tq_timer_init(void);
uint32_t tq_timer_now(void);         /* ticks of tq_timer_hz() */
uint32_t tq_timer_hz(void);
const char *tq_timer_kind(void);     /* "dwt" or "systick" */

void tq_exit(int status);            /* semihosting exit on the emulator; reset on a board */

#endif
