/*
 * Console on the nRF52840's UARTE0 with EasyDMA (nRF52840 Product Specification v1.7,
 * section 6.34), on the board's TX/RX header pins.
 *
 * UARTE, not the legacy UART: Nordic deprecates the legacy registers on the nRF52840, and
 * Renode's stock nrf52840 platform models uart0 as UARTE only (easyDMA: true), so the
 * very ELF that goes on the board also runs there.
 *
 * EasyDMA reads and writes Data RAM only, so both directions go through RAM buffers:
 *  - TX: characters collect in a line buffer, sent with one DMA transfer at each newline,
 *    when the buffer is full, and before the console blocks for input.
 *  - RX: one-byte transfers, re-armed as soon as a byte is taken (the receiver keeps
 *    bytes in its 6-byte RX FIFO meanwhile). Bytes past the buffer's first would mean
 *    a transfer overran MAXCNT; a guard byte behind it catches that and the console
 *    says so on the line instead of corrupting memory silently.
 *
 * The re-arm order (rx_rearm) matters in Renode 1.14's UARTE model: its transfers do not
 * stop at MAXCNT, so a byte that arrives after ENDRX is cleared but before STARTRX resets
 * the pointer lands past the buffer (the usual clear-then-start order lost bytes and
 * overwrote tx_len there). Triggering STARTRX while ENDRX still stands resets the pointer
 * with nothing moving; then ENDRX is cleared and STARTRX pulls the next byte, and a byte
 * arriving in between lands at the fresh pointer. On silicon the same order is one extra
 * STARTRX; it has run in Renode, not yet on a board.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_port.h"
#ifdef TQ_CONSOLE_USB
/* The board's USB socket is a second console (started only with VBUS): output goes to both,
 * input is taken from either, so a board whose USB does not enumerate still answers on the UART. */
#include "tq_usb_console.h"
static int usb_on;
#endif

#define UARTE0_BASE 0x40002000u
#define REG(off) (*(volatile uint32_t *)(UARTE0_BASE + (off)))
#define TASKS_STARTRX REG(0x000u)
#define TASKS_STARTTX REG(0x008u)
#define EVENTS_ENDRX REG(0x110u)
#define EVENTS_ENDTX REG(0x120u)
#define ENABLE REG(0x500u)
#define PSEL_TXD REG(0x50Cu)
#define PSEL_RXD REG(0x514u)
#define BAUDRATE REG(0x524u)
#define RXD_PTR REG(0x534u)
#define RXD_MAXCNT REG(0x538u)
#define TXD_PTR REG(0x544u)
#define TXD_MAXCNT REG(0x548u)
#define AIRCR (*(volatile uint32_t *)0xE000ED0Cu)

#define ENABLE_UARTE 8u
#define RX_GUARD 0xA5u

/* UARTE BAUDRATE values (PS 6.34.10.28; they differ from the legacy UART's). */
static uint32_t baud_register(uint32_t baud) {
    switch (baud) {
    case 9600u: return 0x00275000u;
    case 19200u: return 0x004EA000u;
    case 38400u: return 0x009D0000u;
    case 57600u: return 0x00EB0000u;
    case 230400u: return 0x03B00000u;
    case 460800u: return 0x07400000u;
    case 921600u: return 0x0F000000u;
    case 1000000u: return 0x10000000u;
    default: return 0x01D60000u; /* 115200 */
    }
}

static uint8_t tx_buf[64];
static uint32_t tx_len;
static volatile uint8_t rx_buf[2]; /* [0] the transfer, [1] its guard */
static int rx_overrun;

static void tx_flush(void) {
    if (tx_len == 0u) {
        return;
    }
#ifdef TQ_CONSOLE_USB
    if (usb_on) tq_usb_console_write(tx_buf, tx_len);
#endif
    TXD_PTR = (uint32_t)(uintptr_t)tx_buf;
    TXD_MAXCNT = tx_len;
    EVENTS_ENDTX = 0u;
    TASKS_STARTTX = 1u;
    while (!EVENTS_ENDTX) {}
    EVENTS_ENDTX = 0u;
    tx_len = 0u;
}

static void rx_rearm(void) {
    rx_buf[1] = RX_GUARD;
    TASKS_STARTRX = 1u; /* ENDRX still set: the pointer resets, no byte moves */
    EVENTS_ENDRX = 0u;
    TASKS_STARTRX = 1u; /* the next byte, or one that arrived just now, lands in rx_buf[0] */
}

void tq_console_init(void) {
    PSEL_TXD = TQ_CONSOLE_TX_PIN; /* (port << 5) | pin; bit 31 clear: connected */
    PSEL_RXD = TQ_CONSOLE_RX_PIN;
    BAUDRATE = baud_register(TQ_CONSOLE_BAUD);
    ENABLE = ENABLE_UARTE;
    tx_len = 0u;
    rx_buf[1] = RX_GUARD;
    RXD_PTR = (uint32_t)(uintptr_t)rx_buf; /* double-buffered: kept for every transfer */
    RXD_MAXCNT = 1u;
    EVENTS_ENDRX = 0u;
    TASKS_STARTRX = 1u;
#ifdef TQ_CONSOLE_USB
    usb_on = tq_usb_console_start();
#endif
}

const char *tq_console_names(void) {
#ifdef TQ_CONSOLE_USB
    return usb_on ? "uart+usb" : "uart,usb-off";
#else
    return "uart";
#endif
}

void tq_console_putc(char c) {
    tx_buf[tx_len++] = (uint8_t)c;
    if (c == '\n' || tx_len == sizeof tx_buf) {
        tx_flush();
    }
}

int tq_console_getc(void) {
    tx_flush(); /* whatever was printed must be out before the console waits */
    while (!EVENTS_ENDRX) {
#ifdef TQ_CONSOLE_USB
        if (usb_on) {
            const int u = tq_usb_console_getc();
            if (u >= 0) return u;
        }
#endif
    }
    uint8_t c = rx_buf[0];
    if (rx_buf[1] != RX_GUARD && !rx_overrun) {
        rx_overrun = 1; /* reported once, as a line the host reads */
        static const char msg[] = "tq-error rx overrun\n";
        for (const char *p = msg; *p; p++) {
            tq_console_putc(*p);
        }
    }
    rx_rearm();
    return (int)c;
}

void tq_exit(int status) {
    (void)status;
    tx_flush();
    AIRCR = 0x05FA0004u; /* SYSRESETREQ: back to the bootloader's reset path */
    for (;;) {}
}
