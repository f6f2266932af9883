/*
 * Console on the nRF52840's UART0 (legacy, non-DMA registers; nRF52840 product
 * specification v1.7, section 6.33), on the board's TX/RX header pins.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_port.h"

#define UART0_BASE 0x40002000u
#define REG(off) (*(volatile uint32_t *)(UART0_BASE + (off)))
#define TASKS_STARTRX REG(0x000u)
#define TASKS_STARTTX REG(0x008u)
#define EVENTS_RXDRDY REG(0x108u)
#define EVENTS_TXDRDY REG(0x11Cu)
#define ENABLE REG(0x500u)
#define PSEL_TXD REG(0x50Cu)
#define PSEL_RXD REG(0x514u)
#define RXD REG(0x518u)
#define TXD REG(0x51Cu)
#define BAUDRATE REG(0x524u)
#define AIRCR (*(volatile uint32_t *)0xE000ED0Cu)

void tq_console_init(void) {
    PSEL_TXD = TQ_CONSOLE_TX_PIN;   /* (port << 5) | pin */
    PSEL_RXD = TQ_CONSOLE_RX_PIN;
    BAUDRATE = 0x01D7E000u;         /* 115200 baud */
    ENABLE = 4u;
    EVENTS_TXDRDY = 0;
    EVENTS_RXDRDY = 0;
    TASKS_STARTTX = 1u;
    TASKS_STARTRX = 1u;
}

void tq_console_putc(char c) {
    TXD = (uint8_t)c;
    while (!EVENTS_TXDRDY) {}
    EVENTS_TXDRDY = 0;
}

int tq_console_getc(void) {
    while (!EVENTS_RXDRDY) {}
    EVENTS_RXDRDY = 0;
    return (int)(RXD & 0xFFu);
}

void tq_exit(int status) {
    (void)status;
    AIRCR = 0x05FA0004u; /* SYSRESETREQ: back to the bootloader's reset path */
    for (;;) {}
}
