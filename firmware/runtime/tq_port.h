/* What the runtime needs from a board: a console, a cycle clock, an exit. */
#ifndef TQ_PORT_H
#define TQ_PORT_H

#include <stdint.h>

void tq_console_init(void);
void tq_console_putc(char c);
int tq_console_getc(void);          /* blocks; returns the byte */
const char *tq_console_names(void); /* which consoles are live, for the boot line: "uart", "uart+usb" */
/* Between inference runs, never inside a timed one: keep the console's links answering (a USB host's
 * control requests time out after about 5 s, and a long `infer` would otherwise leave them unanswered). */
#ifdef TQ_CONSOLE_USB
void tq_console_service(void);
#else
static inline void tq_console_service(void) {} /* a UART needs no tending: compiles to nothing */
#endif

void tq_timer_init(void);
uint32_t tq_timer_now(void);         /* ticks of tq_timer_hz() */
uint32_t tq_timer_hz(void);
const char *tq_timer_kind(void);     /* "dwt" or "systick" */

void tq_exit(int status);            /* semihosting exit on the emulator; reset on a board */

#endif
