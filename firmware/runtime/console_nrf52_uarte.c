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
 * The re-arm order (rx_rearm) is nrfx's: clear ENDRX, then STARTRX. On silicon a byte
 * already waiting in the RX FIFO moves as soon as STARTRX runs, so a second STARTRX would
 * overwrite it. Renode 1.14's UARTE model needs another order (its transfers do not stop
 * at MAXCNT, so a byte arriving between the clear and the start lands past the buffer):
 * STARTRX while ENDRX still stands, clear, STARTRX again. That order exists only for the
 * emulator and is built only with -DTQ_UARTE_RENODE_REARM; the board's firmware does not
 * carry it.
 *
 * Register access goes through tq_mmio.h, so tests/test_usb.py runs this file on the
 * host against a register-level UARTE/USBD model.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_mmio.h"
#include "tq_port.h"
#include "tq_protocol.h"
#ifdef TQ_CONSOLE_USB
/* The board's USB socket is a second console (started only with VBUS): output goes to both,
 * input is taken from either, so a board whose USB does not enumerate still answers on the UART. */
#include "tq_usb_console.h"
static int usb_on;  /* 1 started, 0 no VBUS, -1 the USBD did not come up */
#endif

#define UARTE0_BASE 0x40002000u
#define TASKS_STARTRX (UARTE0_BASE + 0x000u)
#define TASKS_STARTTX (UARTE0_BASE + 0x008u)
#define EVENTS_ENDRX (UARTE0_BASE + 0x110u)
#define EVENTS_ENDTX (UARTE0_BASE + 0x120u)
#define ENABLE (UARTE0_BASE + 0x500u)
#define PSEL_TXD (UARTE0_BASE + 0x50Cu)
#define PSEL_RXD (UARTE0_BASE + 0x514u)
#define BAUDRATE (UARTE0_BASE + 0x524u)
#define RXD_PTR (UARTE0_BASE + 0x534u)
#define RXD_MAXCNT (UARTE0_BASE + 0x538u)
#define TXD_PTR (UARTE0_BASE + 0x544u)
#define TXD_MAXCNT (UARTE0_BASE + 0x548u)
#define AIRCR 0xE000ED0Cu
#define RD(a) tq_mmio_read(a)
#define WR(a, v) tq_mmio_write((a), (v))

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
    if (usb_on > 0) tq_usb_console_write(tx_buf, tx_len); /* never calls back into the console */
#endif
    WR(TXD_PTR, tq_mmio_addr(tx_buf));
    WR(TXD_MAXCNT, tx_len);
    WR(EVENTS_ENDTX, 0u);
    WR(TASKS_STARTTX, 1u);
    while (!RD(EVENTS_ENDTX)) {}
    WR(EVENTS_ENDTX, 0u);
    tx_len = 0u;
}

static void rx_rearm(void) {
    rx_buf[1] = RX_GUARD;
#ifdef TQ_UARTE_RENODE_REARM
    WR(TASKS_STARTRX, 1u); /* Renode only: ENDRX still set, the pointer resets, no byte moves */
#endif
    WR(EVENTS_ENDRX, 0u);
    WR(TASKS_STARTRX, 1u); /* the next byte, or one waiting in the FIFO, lands in rx_buf[0] */
}

void tq_console_init(void) {
    WR(PSEL_TXD, TQ_CONSOLE_TX_PIN); /* (port << 5) | pin; bit 31 clear: connected */
    WR(PSEL_RXD, TQ_CONSOLE_RX_PIN);
    WR(BAUDRATE, baud_register(TQ_CONSOLE_BAUD));
    WR(ENABLE, ENABLE_UARTE);
    tx_len = 0u;
    rx_buf[1] = RX_GUARD;
    WR(RXD_PTR, tq_mmio_addr(rx_buf)); /* double-buffered: kept for every transfer */
    WR(RXD_MAXCNT, 1u);
    WR(EVENTS_ENDRX, 0u);
    WR(TASKS_STARTRX, 1u);
#ifdef TQ_CONSOLE_USB
    usb_on = tq_usb_console_start();
#endif
}

const char *tq_console_names(void) {
#ifdef TQ_CONSOLE_USB
    return usb_on > 0 ? "uart+usb" : usb_on < 0 ? "uart,usb-failed" : "uart,usb-off";
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

#ifdef TQ_CONSOLE_USB
void tq_console_service(void) {
    if (usb_on > 0) {
        tq_usb_console_poll(); /* control requests (a port opened, line coding) answered between runs */
    }
}
#endif

int tq_console_getc(void) {
    tx_flush(); /* whatever was printed must be out before the console waits */
    while (!RD(EVENTS_ENDRX)) {
#ifdef TQ_CONSOLE_USB
        if (usb_on > 0) {
            const int u = tq_usb_console_getc();
            if (u >= 0) return u;
            if (tq_usb_console_take_connect()) {
                /* A host opened the USB port: greet it here, at the top level, where a write
                 * may wait for the host without anything re-entering. */
                tq_console_on_connect();
                tx_flush();
            }
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
    WR(AIRCR, 0x05FA0004u); /* SYSRESETREQ: back to the bootloader's reset path */
    for (;;) {}
}
