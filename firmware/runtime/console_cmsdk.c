/* Console on the CMSDK APB UART0 of the MPS2 boards (QEMU mps2-an386). */
#include <stdint.h>

#include "tq_port.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))

void tq_console_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 3u; /* TX and RX enable */
}

void tq_console_putc(char c) {
    while (UART_STATE & 1u) {}   /* TX buffer full */
    UART_DATA = (uint8_t)c;
}

int tq_console_getc(void) {
    while (!(UART_STATE & 2u)) {} /* RX buffer full = a byte waits */
    return (int)(UART_DATA & 0xFFu);
}

void tq_exit(int status) {
    /* Semihosting SYS_EXIT: QEMU (-semihosting-config enable=on) ends with the status. */
    register uint32_t r0 __asm__("r0") = 0x18u;
    register uint32_t r1 __asm__("r1") = status == 0 ? 0x20026u : 0x20024u;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {}
}

const char *tq_console_names(void) { return "uart"; }
