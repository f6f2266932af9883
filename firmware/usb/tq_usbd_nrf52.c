/*
 * USB CDC-ACM console on the nRF52840's USBD: the register layer.
 *
 * Written from the nRF52840 Product Specification v1.7 (section 6.35 USBD, 6.4 CLOCK,
 * 5.3 POWER) and errata sheet; no code of other USB stacks. Everything USB *means*
 * (descriptors, requests, the 1200-baud touch) is in tq_usb_cdc.c, tested on the host;
 * this file only moves bytes between RAM and the endpoints and is polled from the
 * console (no interrupts). It has not run on silicon in CI: there is no USB model in
 * QEMU or Renode, and without VBUS (as in both) it never starts.
 *
 * Errata handled: 171 and 187 (enable sequence), 199 (tasks during DMA). Not applicable:
 * 166 (isochronous endpoints: none here), 211 (suspend: this console never enters low
 * power). Not applied: 223 (unexpected behaviour after reset): its workaround was not
 * available to check here; it is the first thing to look at if enumeration fails after
 * a bus reset on silicon.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_usb_cdc.h"
#include "tq_protocol.h"
#include "tq_usb_console.h"

#define R(addr) (*(volatile uint32_t *)(addr))

/* POWER and CLOCK */
#define POWER_USBREGSTATUS R(0x40000438u)   /* bit 0 VBUSDETECT, bit 1 OUTPUTRDY */
#define POWER_GPREGRET R(0x4000051Cu)
#define CLOCK_TASKS_HFCLKSTART R(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED R(0x40000100u)
#define AIRCR R(0xE000ED0Cu)
/* FICR: the 64-bit device identifier, for the USB serial number */
#define FICR_DEVICEID0 R(0x10000060u)
#define FICR_DEVICEID1 R(0x10000064u)

/* USBD */
#define USBD 0x40027000u
#define TASKS_STARTEPIN(n) R(USBD + 0x004u + 4u * (n))
#define TASKS_STARTEPOUT(n) R(USBD + 0x028u + 4u * (n))
#define TASKS_EP0RCVOUT R(USBD + 0x04Cu)
#define TASKS_EP0STATUS R(USBD + 0x050u)
#define TASKS_EP0STALL R(USBD + 0x054u)
#define EVENTS_USBRESET R(USBD + 0x100u)
#define EVENTS_ENDEPIN(n) R(USBD + 0x108u + 4u * (n))
#define EVENTS_EP0DATADONE R(USBD + 0x128u)
#define EVENTS_ENDEPOUT(n) R(USBD + 0x130u + 4u * (n))
#define EVENTS_USBEVENT R(USBD + 0x158u)
#define EVENTS_EP0SETUP R(USBD + 0x15Cu)
#define EVENTS_EPDATA R(USBD + 0x160u)
#define EVENTCAUSE R(USBD + 0x400u)
#define EPDATASTATUS R(USBD + 0x46Cu)
#define SETUP_BYTE(i) R(USBD + 0x480u + 4u * (i)) /* BMREQUESTTYPE .. WLENGTHH, one byte each */
#define SIZE_EPOUT(n) R(USBD + 0x4A0u + 4u * (n))
#define ENABLE R(USBD + 0x500u)
#define USBPULLUP R(USBD + 0x504u)
#define DTOGGLE R(USBD + 0x50Cu)
#define EPINEN R(USBD + 0x510u)
#define EPOUTEN R(USBD + 0x514u)
#define EPSTALL R(USBD + 0x518u)
#define EPIN_PTR(n) R(USBD + 0x600u + 0x14u * (n))
#define EPIN_MAXCNT(n) R(USBD + 0x604u + 0x14u * (n))
#define EPOUT_PTR(n) R(USBD + 0x700u + 0x14u * (n))
#define EPOUT_MAXCNT(n) R(USBD + 0x704u + 0x14u * (n))

#define EVENTCAUSE_READY (1u << 11)
#define EPDATA_IN(n) (1u << (n))
#define EPDATA_OUT(n) (1u << (16u + (n)))

/* Undocumented registers the errata workarounds write (nRF52840 errata sheet). */
#define ERRATA_UNLOCK R(0x4006EC00u)
#define ERRATA_171_REG R(0x4006EC14u)
#define ERRATA_187_REG R(0x4006ED14u)
#define ERRATA_199_REG R(0x40027C1Cu)

static tq_usb_t usb;
static int started;
/* EasyDMA moves data to and from Data RAM only: every endpoint has a RAM buffer. */
static uint8_t ep0_buf[TQ_USB_EP0_SIZE] __attribute__((aligned(4)));
static uint8_t in_buf[TQ_USB_BULK_SIZE] __attribute__((aligned(4)));
static uint8_t out_buf[TQ_USB_BULK_SIZE] __attribute__((aligned(4)));
static const uint8_t *ep0_data; /* the rest of a control IN data stage */
static uint16_t ep0_left;
static uint8_t ep0_zlp;
static uint8_t rx[256];         /* bytes from the host not yet read by the console */
static uint16_t rx_head, rx_tail;
static volatile int in_busy;    /* a bulk IN packet waits for the host */
static int was_live;

static void errata_write(volatile uint32_t *reg, uint32_t value) {
    /* The errata registers are behind an unlock word (errata 171/187 workaround sequence). */
    if (ERRATA_UNLOCK == 0u) {
        ERRATA_UNLOCK = 0x9375u;
        *reg = value;
        ERRATA_UNLOCK = 0x9375u;
    } else {
        *reg = value;
    }
}

static void dma_start(volatile uint32_t *task) {
    ERRATA_199_REG = 0x82u; /* errata 199: USBD cannot receive tasks during DMA */
    *task = 1u;
}

static void dma_end(void) { ERRATA_199_REG = 0u; /* errata 199, after the ENDEP event */ }

static void ep0_send_next(void) {
    const uint16_t n = ep0_left < TQ_USB_EP0_SIZE ? ep0_left : TQ_USB_EP0_SIZE;
    for (uint16_t i = 0; i < n; ++i) ep0_buf[i] = ep0_data[i];
    ep0_data += n;
    ep0_left = (uint16_t)(ep0_left - n);
    EPIN_PTR(0) = (uint32_t)(uintptr_t)ep0_buf;
    EPIN_MAXCNT(0) = n;
    dma_start(&TASKS_STARTEPIN(0));
}

static void wait_dma(volatile uint32_t *event) {
    while (!*event) {}
    *event = 0u;
    dma_end();
}

static void on_setup(void) {
    uint8_t setup[8];
    tq_usb_reply_t r;
    for (unsigned i = 0; i < 8u; ++i) setup[i] = (uint8_t)SETUP_BYTE(i);
    tq_usb_setup(&usb, setup, &r);
    if (setup[1] == TQ_USB_REQ_SET_ADDRESS && (setup[0] & 0x60u) == 0u) {
        return; /* the USBD answers SET_ADDRESS itself, status stage included (PS 6.35.9) */
    }
    if (r.stall) {
        TASKS_EP0STALL = 1u;
        return;
    }
    if (setup[1] == TQ_USB_REQ_SET_CONFIGURATION && (setup[0] & 0x60u) == 0u && usb.configuration) {
        /* Data endpoints on: bulk IN 1, interrupt IN 3, bulk OUT 2, each on DATA0. */
        EPINEN = 1u | (1u << TQ_USB_EP_DATA_IN) | (1u << TQ_USB_EP_NOTIFY_IN);
        EPOUTEN = 1u | (1u << TQ_USB_EP_DATA_OUT);
        DTOGGLE = 0x80u | TQ_USB_EP_DATA_IN;   /* select, then set DATA0 */
        DTOGGLE = (1u << 8) | 0x80u | TQ_USB_EP_DATA_IN;
        DTOGGLE = TQ_USB_EP_DATA_OUT;
        DTOGGLE = (1u << 8) | TQ_USB_EP_DATA_OUT;
        SIZE_EPOUT(TQ_USB_EP_DATA_OUT) = 0u;   /* any write: accept the next OUT packet */
        in_busy = 0;
    }
    if (r.data_out) {
        /* Control OUT (SET_LINE_CODING): the data stage, then the status stage. */
        TASKS_EP0RCVOUT = 1u;
        while (!EVENTS_EP0DATADONE) {}
        EVENTS_EP0DATADONE = 0u;
        EPOUT_PTR(0) = (uint32_t)(uintptr_t)ep0_buf;
        EPOUT_MAXCNT(0) = TQ_USB_EP0_SIZE;
        dma_start(&TASKS_STARTEPOUT(0));
        wait_dma(&EVENTS_ENDEPOUT(0));
        if (tq_usb_control_out(&usb, ep0_buf, (uint16_t)SIZE_EPOUT(0))) {
            TASKS_EP0STALL = 1u;
            return;
        }
        TASKS_EP0STATUS = 1u;
        return;
    }
    if (r.len == 0u && !r.zlp) {
        TASKS_EP0STATUS = 1u; /* no data stage */
        return;
    }
    ep0_data = r.data;
    ep0_left = r.len;
    ep0_zlp = r.zlp;
    ep0_send_next();
}

static void on_ep0_in_done(void) {
    if (ep0_left) {
        ep0_send_next();
    } else if (ep0_zlp) {
        ep0_zlp = 0;
        ep0_send_next(); /* a zero-length packet ends a short answer of whole packets */
    } else {
        TASKS_EP0STATUS = 1u;
    }
}

static void on_out_data(void) {
    const uint32_t n = SIZE_EPOUT(TQ_USB_EP_DATA_OUT);
    EPOUT_PTR(TQ_USB_EP_DATA_OUT) = (uint32_t)(uintptr_t)out_buf;
    EPOUT_MAXCNT(TQ_USB_EP_DATA_OUT) = n;
    dma_start(&TASKS_STARTEPOUT(TQ_USB_EP_DATA_OUT));
    wait_dma(&EVENTS_ENDEPOUT(TQ_USB_EP_DATA_OUT));
    for (uint32_t i = 0; i < n; ++i) {
        const uint16_t next = (uint16_t)((rx_head + 1u) % sizeof rx);
        if (next == rx_tail) break; /* full: the host sends a line at a time, far less than this */
        rx[rx_head] = out_buf[i];
        rx_head = next;
    }
    SIZE_EPOUT(TQ_USB_EP_DATA_OUT) = 0u; /* ready for the next packet */
}

void tq_usb_console_poll(void) {
    if (!started) return;
    if (EVENTS_USBRESET) {
        EVENTS_USBRESET = 0u;
        tq_usb_bus_reset(&usb);
        EPINEN = 1u;
        EPOUTEN = 1u;
        rx_head = rx_tail = 0;
        in_busy = 0;
    }
    if (EVENTS_USBEVENT) {
        EVENTS_USBEVENT = 0u;
        EVENTCAUSE = EVENTCAUSE; /* clear by writing the bits back */
    }
    if (EVENTS_EP0SETUP) {
        EVENTS_EP0SETUP = 0u;
        on_setup();
    }
    if (EVENTS_ENDEPIN(0)) {
        EVENTS_ENDEPIN(0) = 0u;
        dma_end();
    }
    if (EVENTS_EP0DATADONE) {
        EVENTS_EP0DATADONE = 0u;
        on_ep0_in_done();
    }
    if (EVENTS_EPDATA) {
        EVENTS_EPDATA = 0u;
        const uint32_t status = EPDATASTATUS;
        EPDATASTATUS = status; /* clear what was read */
        if (status & EPDATA_IN(TQ_USB_EP_DATA_IN)) in_busy = 0;
        if (status & EPDATA_OUT(TQ_USB_EP_DATA_OUT)) on_out_data();
    }
    if (usb.bootloader_requested) {
        /* The 1200-baud touch, as the board's Arduino core answers it: into the bootloader. */
        POWER_GPREGRET = TQ_USB_DFU_MAGIC_SERIAL_ONLY_RESET;
        AIRCR = 0x05FA0004u; /* SYSRESETREQ */
        for (;;) {}
    }
    const int live = tq_usb_console_live();
    if (live && !was_live) tq_console_on_connect();
    was_live = live;
}

int tq_usb_console_start(void) {
    if (!(POWER_USBREGSTATUS & 1u)) {
        return 0; /* no VBUS (no cable, or an emulator): USB stays off, the UART is the console */
    }
    const tq_usb_ids_t ids = {TQ_USB_VID, TQ_USB_PID, 0x0100u, TQ_USB_MANUFACTURER, TQ_USB_PRODUCT};
    tq_usb_init(&usb, &ids, FICR_DEVICEID0, FICR_DEVICEID1);
    /* The USBD needs the crystal oscillator (PS 6.35.1). */
    CLOCK_EVENTS_HFCLKSTARTED = 0u;
    CLOCK_TASKS_HFCLKSTART = 1u;
    while (!CLOCK_EVENTS_HFCLKSTARTED) {}
    errata_write(&ERRATA_187_REG, 3u);    /* errata 187: USB cannot be enabled */
    errata_write(&ERRATA_171_REG, 0xC0u); /* errata 171: USBD might not reach its active state */
    ENABLE = 1u;
    while (!(EVENTCAUSE & EVENTCAUSE_READY)) {}
    EVENTCAUSE = EVENTCAUSE_READY;
    errata_write(&ERRATA_171_REG, 0u);    /* errata 171, second half, once READY */
    errata_write(&ERRATA_187_REG, 0u);    /* errata 187, second half, once READY */
    while (!(POWER_USBREGSTATUS & 2u)) {} /* USB supply regulator ready (USBPWRRDY) */
    EPSTALL = 0u;
    USBPULLUP = 1u; /* D+ pull-up: the host sees the device */
    started = 1;
    return 1;
}

int tq_usb_console_live(void) { return started && usb.configuration && (usb.control_lines & 1u); }

int tq_usb_console_getc(void) {
    tq_usb_console_poll();
    if (rx_tail == rx_head) return -1;
    const uint8_t c = rx[rx_tail];
    rx_tail = (uint16_t)((rx_tail + 1u) % sizeof rx);
    return c;
}

void tq_usb_console_write(const uint8_t *p, uint32_t n) {
    while (n && tq_usb_console_live()) {
        while (in_busy && tq_usb_console_live()) tq_usb_console_poll();
        const uint32_t k = n < TQ_USB_BULK_SIZE ? n : TQ_USB_BULK_SIZE;
        for (uint32_t i = 0; i < k; ++i) in_buf[i] = p[i];
        EPIN_PTR(TQ_USB_EP_DATA_IN) = (uint32_t)(uintptr_t)in_buf;
        EPIN_MAXCNT(TQ_USB_EP_DATA_IN) = k;
        in_busy = 1;
        dma_start(&TASKS_STARTEPIN(TQ_USB_EP_DATA_IN));
        wait_dma(&EVENTS_ENDEPIN(TQ_USB_EP_DATA_IN));
        p += k;
        n -= k;
    }
}
