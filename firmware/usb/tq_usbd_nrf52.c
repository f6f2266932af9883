/*
 * USB CDC-ACM console on the nRF52840's USBD: the register layer.
 *
 * Written from the nRF52840 Product Specification v1.7 (section 6.35 USBD, 6.4 CLOCK,
 * 5.3 POWER) and errata sheet, checked against the order nrfx's USBD driver keeps.
 * Everything USB *means* (descriptors, requests, the 1200-baud touch) is in tq_usb_cdc.c;
 * this file only moves bytes between RAM and the endpoints and is polled from the console
 * (no interrupts). Registers are reached through tq_mmio.h, the seam that lets the host
 * tests link this very file against a register-level USBD model
 * (tests/data/usb/nrf52_model.c); it has not run on silicon in CI.
 *
 * Rules kept here, each a defect once:
 *  - One EasyDMA transfer at a time: every STARTEP* task is followed by a wait for its END
 *    event before anything else starts one (errata 199's latch is set and cleared around it).
 *  - OUT flow control: a bulk OUT packet stays in the endpoint (the USBD NAKs the host) until
 *    the receive ring has room for a whole packet; only then is it moved. SIZE.EPOUT is
 *    written (which drops whatever the endpoint holds) only when the endpoint is opened
 *    (SET_CONFIGURATION) and when its halt is cleared.
 *  - Nothing here calls back into the console: a host opening the port is reported by
 *    tq_usb_console_take_connect(), which the console's read loop asks.
 *  - Every wait is bounded: a USBD that never gets ready leaves the UART console working.
 *
 * Errata handled: 171 and 187 (enable sequence), 199 (tasks during DMA). Not applicable:
 * 166 (isochronous endpoints: none here), 211 (suspend: this console never enters low
 * power). Not applied: 223 (unexpected behaviour after reset): its workaround was not
 * available to check here; it is the first thing to look at if enumeration fails after
 * a bus reset on silicon.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_mmio.h"
#include "tq_port.h"
#include "tq_usb_cdc.h"
#include "tq_usb_console.h"

#define RD(a) tq_mmio_read(a)
#define WR(a, v) tq_mmio_write((a), (v))

/* POWER and CLOCK */
#define POWER_EVENTS_USBDETECTED 0x4000011Cu
#define POWER_EVENTS_USBREMOVED 0x40000120u
#define POWER_USBREGSTATUS 0x40000438u   /* bit 0 VBUSDETECT, bit 1 OUTPUTRDY */
#define POWER_GPREGRET 0x4000051Cu
#define CLOCK_TASKS_HFCLKSTART 0x40000000u
#define CLOCK_EVENTS_HFCLKSTARTED 0x40000100u
#define CLOCK_HFCLKSTAT 0x4000040Cu      /* bit 0 SRC (1: crystal), bit 16 STATE (running) */
#define AIRCR 0xE000ED0Cu
/* FICR: the 64-bit device identifier, for the USB serial number */
#define FICR_DEVICEID0 0x10000060u
#define FICR_DEVICEID1 0x10000064u

/* USBD */
#define USBD 0x40027000u
#define TASKS_STARTEPIN(n) (USBD + 0x004u + 4u * (n))
#define TASKS_STARTEPOUT(n) (USBD + 0x028u + 4u * (n))
#define TASKS_EP0RCVOUT (USBD + 0x04Cu)
#define TASKS_EP0STATUS (USBD + 0x050u)
#define TASKS_EP0STALL (USBD + 0x054u)
#define EVENTS_USBRESET (USBD + 0x100u)
#define EVENTS_ENDEPIN(n) (USBD + 0x108u + 4u * (n))
#define EVENTS_EP0DATADONE (USBD + 0x128u)
#define EVENTS_ENDEPOUT(n) (USBD + 0x130u + 4u * (n))
#define EVENTS_USBEVENT (USBD + 0x158u)
#define EVENTS_EP0SETUP (USBD + 0x15Cu)
#define EVENTS_EPDATA (USBD + 0x160u)
#define EVENTCAUSE (USBD + 0x400u)
#define EPDATASTATUS (USBD + 0x46Cu)
#define SETUP_BYTE(i) (USBD + 0x480u + 4u * (i)) /* BMREQUESTTYPE .. WLENGTHH, one byte each */
#define SIZE_EPOUT(n) (USBD + 0x4A0u + 4u * (n))
#define ENABLE (USBD + 0x500u)
#define USBPULLUP (USBD + 0x504u)
#define DTOGGLE (USBD + 0x50Cu)
#define EPINEN (USBD + 0x510u)
#define EPOUTEN (USBD + 0x514u)
#define EPSTALL (USBD + 0x518u)
#define EPIN_PTR(n) (USBD + 0x600u + 0x14u * (n))
#define EPIN_MAXCNT(n) (USBD + 0x604u + 0x14u * (n))
#define EPOUT_PTR(n) (USBD + 0x700u + 0x14u * (n))
#define EPOUT_MAXCNT(n) (USBD + 0x704u + 0x14u * (n))

#define EVENTCAUSE_READY (1u << 11)
#define EPDATA_IN(n) (1u << (n))
#define EPDATA_OUT(n) (1u << (16u + (n)))
#define DTOGGLE_IN 0x80u
#define DTOGGLE_DATA0 (1u << 8)
#define EPSTALL_STALL (1u << 8)

/* Undocumented registers the errata workarounds write (nRF52840 errata sheet). */
#define ERRATA_UNLOCK 0x4006EC00u
#define ERRATA_171_REG 0x4006EC14u
#define ERRATA_187_REG 0x4006ED14u
#define ERRATA_199_REG 0x40027C1Cu

/* Bounds on waits for the chip itself (register polls; the slowest, HFXO start-up, is
 * about 0.4 ms, a few thousand polls), and on waits for the host (milliseconds). */
#define SPIN_LIMIT 2000000u
#define HOST_WRITE_TIMEOUT_MS 100u

static tq_usb_t usb;
static int started;     /* VBUS was there at boot: this console exists */
static int enabled;     /* the USBD is enabled and pulled up (VBUS present) */
/* EasyDMA moves data to and from Data RAM only: every endpoint has a RAM buffer. */
static uint8_t ep0_buf[TQ_USB_EP0_SIZE] __attribute__((aligned(4)));
static uint8_t in_buf[TQ_USB_BULK_SIZE] __attribute__((aligned(4)));
static uint8_t out_buf[TQ_USB_BULK_SIZE] __attribute__((aligned(4)));
enum { EP0_IDLE, EP0_IN, EP0_OUT };
static uint8_t ep0_state;
static const uint8_t *ep0_data; /* the rest of a control IN data stage */
static uint16_t ep0_left;
static uint8_t ep0_zlp;
static uint8_t rx[512];         /* bytes from the host not yet read by the console */
static uint16_t rx_head, rx_tail;
static int in_busy;             /* a bulk IN packet waits in the endpoint for the host */
static int out_pending;         /* a bulk OUT packet waits in the endpoint (NAKed) for ring room */
static int host_deaf;           /* the host left a packet unread past the timeout: drop output */
static int was_live, connect_pending;
static int touch_pending;
static uint32_t touch_t0;

static int ms_passed(uint32_t t0, uint32_t ms) {
    return tq_timer_now() - t0 >= ms * (tq_timer_hz() / 1000u); /* modulo 2^32: wraps are fine */
}

static int spin_until(uint32_t addr, uint32_t mask) {
    for (uint32_t i = 0; i < SPIN_LIMIT; ++i) {
        if (RD(addr) & mask) return 1;
    }
    return 0;
}

static void errata_write(uint32_t reg, uint32_t value) {
    /* The errata registers are behind an unlock word (errata 171/187 workaround sequence). */
    if (RD(ERRATA_UNLOCK) == 0u) {
        WR(ERRATA_UNLOCK, 0x9375u);
        WR(reg, value);
        WR(ERRATA_UNLOCK, 0x9375u);
    } else {
        WR(reg, value);
    }
}

/* One EasyDMA transfer, start to END: nothing else can start one meanwhile. */
static int dma(uint32_t task, uint32_t end_event) {
    WR(end_event, 0u);
    WR(ERRATA_199_REG, 0x82u); /* errata 199: USBD cannot receive tasks during DMA */
    WR(task, 1u);
    const int ok = spin_until(end_event, 1u);
    WR(end_event, 0u);
    WR(ERRATA_199_REG, 0u);    /* errata 199, after the END event */
    return ok;
}

static void ep0_send_next(void) {
    const uint16_t n = ep0_left < TQ_USB_EP0_SIZE ? ep0_left : TQ_USB_EP0_SIZE;
    for (uint16_t i = 0; i < n; ++i) ep0_buf[i] = ep0_data[i];
    ep0_data += n;
    ep0_left = (uint16_t)(ep0_left - n);
    WR(EPIN_PTR(0), tq_mmio_addr(ep0_buf));
    WR(EPIN_MAXCNT(0), n);
    ep0_state = EP0_IN;
    dma(TASKS_STARTEPIN(0), EVENTS_ENDEPIN(0)); /* the packet is in the endpoint; EP0DATADONE when sent */
}

static void dtoggle_data0(uint32_t ep_and_dir) {
    WR(DTOGGLE, ep_and_dir);                 /* select */
    WR(DTOGGLE, DTOGGLE_DATA0 | ep_and_dir); /* then set DATA0 */
}

static void halt(uint8_t ep, uint8_t op) {
    const uint32_t reg = (ep & 0x80u) ? (DTOGGLE_IN | (ep & 7u)) : (ep & 7u);
    if (op == TQ_USB_HALT_SET) {
        WR(EPSTALL, EPSTALL_STALL | reg);
        return;
    }
    /* CLEAR_FEATURE(ENDPOINT_HALT): unstall, the data toggle back to DATA0 (USB 2.0, 9.4.5),
     * and an OUT endpoint re-armed (the host reset its pipe: what the endpoint held is gone). */
    dtoggle_data0(reg);
    if (!(ep & 0x80u)) {
        WR(SIZE_EPOUT(ep & 7u), 0u);
        if ((ep & 7u) == TQ_USB_EP_DATA_OUT) out_pending = 0;
    } else if ((ep & 7u) == TQ_USB_EP_DATA_IN) {
        in_busy = 0;
    }
    WR(EPSTALL, reg); /* unstalled last, on a clean endpoint */
}

static void on_setup(void) {
    uint8_t setup[8];
    tq_usb_reply_t r;
    for (unsigned i = 0; i < 8u; ++i) setup[i] = (uint8_t)RD(SETUP_BYTE(i));
    ep0_state = EP0_IDLE; /* a new SETUP ends whatever control transfer was under way */
    tq_usb_setup(&usb, setup, &r);
    if (setup[1] == TQ_USB_REQ_SET_ADDRESS && (setup[0] & 0x60u) == 0u) {
        return; /* the USBD answers SET_ADDRESS itself, status stage included (PS 6.35.9) */
    }
    if (r.stall) {
        WR(TASKS_EP0STALL, 1u);
        return;
    }
    if (setup[1] == TQ_USB_REQ_SET_CONFIGURATION && (setup[0] & 0x60u) == 0u && usb.configuration) {
        /* Data endpoints on: bulk IN 1, interrupt IN 3, bulk OUT 2, each on DATA0, unstalled. */
        WR(EPINEN, 1u | (1u << TQ_USB_EP_DATA_IN) | (1u << TQ_USB_EP_NOTIFY_IN));
        WR(EPOUTEN, 1u | (1u << TQ_USB_EP_DATA_OUT));
        halt(0x80u | TQ_USB_EP_DATA_IN, TQ_USB_HALT_CLEAR);
        halt(0x80u | TQ_USB_EP_NOTIFY_IN, TQ_USB_HALT_CLEAR);
        halt(TQ_USB_EP_DATA_OUT, TQ_USB_HALT_CLEAR); /* opens the OUT endpoint */
        in_busy = 0;
        host_deaf = 0;
    }
    if (r.halt_op) halt(r.halt_ep, r.halt_op);
    if (r.data_out) {
        /* Control OUT (SET_LINE_CODING): accept the data stage; EP0DATADONE when it is in. */
        ep0_state = EP0_OUT;
        WR(TASKS_EP0RCVOUT, 1u);
        return;
    }
    if (r.len == 0u && !r.zlp) {
        WR(TASKS_EP0STATUS, 1u); /* no data stage */
        return;
    }
    ep0_data = r.data;
    ep0_left = r.len;
    ep0_zlp = r.zlp;
    ep0_send_next();
}

static void on_ep0_done(void) {
    if (ep0_state == EP0_OUT) {
        ep0_state = EP0_IDLE;
        WR(EPOUT_PTR(0), tq_mmio_addr(ep0_buf));
        WR(EPOUT_MAXCNT(0), TQ_USB_EP0_SIZE);
        uint32_t n = RD(SIZE_EPOUT(0));
        if (n > TQ_USB_EP0_SIZE) n = TQ_USB_EP0_SIZE;
        if (!dma(TASKS_STARTEPOUT(0), EVENTS_ENDEPOUT(0)) || tq_usb_control_out(&usb, ep0_buf, (uint16_t)n)) {
            WR(TASKS_EP0STALL, 1u);
            return;
        }
        WR(TASKS_EP0STATUS, 1u);
    } else if (ep0_state == EP0_IN) {
        if (ep0_left) {
            ep0_send_next();
        } else if (ep0_zlp) {
            ep0_zlp = 0;
            ep0_send_next(); /* a zero-length packet ends a short answer of whole packets */
        } else {
            ep0_state = EP0_IDLE;
            WR(TASKS_EP0STATUS, 1u);
        }
    }
}

static uint16_t rx_room(void) {
    return (uint16_t)(sizeof rx - 1u - (uint16_t)((rx_head + sizeof rx - rx_tail) % sizeof rx));
}

static void take_out_packet(void) {
    /* Only with room for a whole packet: until then the packet stays in the endpoint and the
     * USBD NAKs the host, which retries; nothing is dropped. */
    if (!out_pending || rx_room() < TQ_USB_BULK_SIZE) return;
    uint32_t n = RD(SIZE_EPOUT(TQ_USB_EP_DATA_OUT));
    if (n > TQ_USB_BULK_SIZE) n = TQ_USB_BULK_SIZE;
    WR(EPOUT_PTR(TQ_USB_EP_DATA_OUT), tq_mmio_addr(out_buf));
    WR(EPOUT_MAXCNT(TQ_USB_EP_DATA_OUT), n);
    out_pending = 0;
    /* The END of this transfer also re-opens the endpoint for the next packet (PS 6.35.9.3). */
    if (!dma(TASKS_STARTEPOUT(TQ_USB_EP_DATA_OUT), EVENTS_ENDEPOUT(TQ_USB_EP_DATA_OUT))) return;
    for (uint32_t i = 0; i < n; ++i) {
        rx[rx_head] = out_buf[i];
        rx_head = (uint16_t)((rx_head + 1u) % sizeof rx);
    }
}

static void reset_state(void) {
    tq_usb_bus_reset(&usb);
    rx_head = rx_tail = 0;
    in_busy = 0;
    out_pending = 0;
    host_deaf = 0;
    ep0_state = EP0_IDLE;
    touch_pending = 0;
}

/* The enable sequence (PS 6.35.4 and errata 171/187), each wait bounded. 1: pulled up. */
static int enable_usbd(void) {
    /* The USBD needs the crystal oscillator (PS 6.35.1); the bootloader may have left it
     * running (it jumps to the application without a reset). */
    if ((RD(CLOCK_HFCLKSTAT) & 0x10001u) != 0x10001u) {
        WR(CLOCK_EVENTS_HFCLKSTARTED, 0u);
        WR(CLOCK_TASKS_HFCLKSTART, 1u);
        if (!spin_until(CLOCK_EVENTS_HFCLKSTARTED, 1u)) return 0;
    }
    errata_write(ERRATA_187_REG, 3u);    /* errata 187: USB cannot be enabled */
    errata_write(ERRATA_171_REG, 0xC0u); /* errata 171: USBD might not reach its active state */
    WR(EVENTCAUSE, EVENTCAUSE_READY);    /* a READY left over from before must not count */
    WR(ENABLE, 1u);
    const int ready = spin_until(EVENTCAUSE, EVENTCAUSE_READY);
    WR(EVENTCAUSE, EVENTCAUSE_READY);
    errata_write(ERRATA_171_REG, 0u);    /* errata 171, second half, once READY */
    errata_write(ERRATA_187_REG, 0u);    /* errata 187, second half, once READY */
    if (!ready || !spin_until(POWER_USBREGSTATUS, 2u)) { /* USB supply regulator ready */
        WR(ENABLE, 0u);
        return 0;
    }
    WR(EPSTALL, 0u);
    WR(USBPULLUP, 1u); /* D+ pull-up: the host sees the device */
    return 1;
}

static void disable_usbd(void) {
    WR(USBPULLUP, 0u);
    WR(ENABLE, 0u);
    enabled = 0;
    reset_state();
}

void tq_usb_console_poll(void) {
    if (!started) return;
    /* VBUS: the cable pulled (USBD off, state gone) and plugged in again (enabled again). */
    if (RD(POWER_EVENTS_USBREMOVED)) WR(POWER_EVENTS_USBREMOVED, 0u);
    if (RD(POWER_EVENTS_USBDETECTED)) WR(POWER_EVENTS_USBDETECTED, 0u);
    const int vbus = (RD(POWER_USBREGSTATUS) & 1u) != 0u;
    if (enabled && !vbus) disable_usbd();
    if (!enabled) {
        if (vbus) enabled = enable_usbd();
        if (!enabled) {
            was_live = 0;
            return;
        }
    }
    if (RD(EVENTS_USBRESET)) {
        WR(EVENTS_USBRESET, 0u);
        reset_state();
        WR(EPINEN, 1u);
        WR(EPOUTEN, 1u);
    }
    if (RD(EVENTS_USBEVENT)) {
        WR(EVENTS_USBEVENT, 0u);
        WR(EVENTCAUSE, RD(EVENTCAUSE)); /* clear by writing the bits back */
    }
    if (RD(EVENTS_EP0SETUP)) {
        WR(EVENTS_EP0SETUP, 0u);
        on_setup();
    }
    if (RD(EVENTS_EP0DATADONE)) {
        WR(EVENTS_EP0DATADONE, 0u);
        on_ep0_done();
    }
    if (RD(EVENTS_EPDATA)) {
        WR(EVENTS_EPDATA, 0u);
        const uint32_t status = RD(EPDATASTATUS);
        WR(EPDATASTATUS, status); /* clear what was read */
        if (status & EPDATA_IN(TQ_USB_EP_DATA_IN)) {
            in_busy = 0;
            host_deaf = 0;
        }
        if (status & EPDATA_OUT(TQ_USB_EP_DATA_OUT)) out_pending = 1;
    }
    take_out_packet();
    if (usb.bootloader_requested && !touch_pending) {
        touch_pending = 1;
        touch_t0 = tq_timer_now();
    }
    if (!usb.bootloader_requested) touch_pending = 0;
    if (touch_pending && !(usb.control_lines & 1u) && ms_passed(touch_t0, TQ_USB_TOUCH_DELAY_MS)) {
        /* The 1200-baud touch, as the board's Arduino core answers it: DTR low for 200 ms
         * (the host's SET_CONTROL_LINE_STATE long complete), then into the bootloader. */
        WR(POWER_GPREGRET, TQ_USB_DFU_MAGIC_SERIAL_ONLY_RESET);
        WR(AIRCR, 0x05FA0004u); /* SYSRESETREQ */
        for (;;) {}
    }
    const int live = tq_usb_console_live();
    if (live && !was_live) connect_pending = 1;
    if (!live) connect_pending = 0;
    was_live = live;
}

int tq_usb_console_start(void) {
    if (!(RD(POWER_USBREGSTATUS) & 1u)) {
        return 0; /* no VBUS (no cable, or an emulator): USB stays off, the UART is the console */
    }
    const tq_usb_ids_t ids = {TQ_USB_VID, TQ_USB_PID, 0x0100u, TQ_USB_MANUFACTURER, TQ_USB_PRODUCT};
    tq_usb_init(&usb, &ids, RD(FICR_DEVICEID0), RD(FICR_DEVICEID1));
    reset_state();
    enabled = enable_usbd();
    if (!enabled) return -1; /* the USBD did not come up: the UART stays the console */
    started = 1;
    return 1;
}

int tq_usb_console_live(void) { return started && enabled && usb.configuration && (usb.control_lines & 1u); }

int tq_usb_console_take_connect(void) {
    const int c = connect_pending;
    connect_pending = 0;
    return c;
}

int tq_usb_console_getc(void) {
    tq_usb_console_poll();
    if (rx_tail == rx_head) return -1;
    const uint8_t c = rx[rx_tail];
    rx_tail = (uint16_t)((rx_tail + 1u) % sizeof rx);
    return c;
}

void tq_usb_console_write(const uint8_t *p, uint32_t n) {
    tq_usb_console_poll();
    while (n && tq_usb_console_live()) {
        if (in_busy) {
            if (host_deaf) return; /* the host is not reading: drop, do not hang the board */
            const uint32_t t0 = tq_timer_now();
            while (in_busy && tq_usb_console_live()) {
                tq_usb_console_poll();
                if (in_busy && ms_passed(t0, HOST_WRITE_TIMEOUT_MS)) {
                    host_deaf = 1;
                    return;
                }
            }
            if (!tq_usb_console_live()) return;
        }
        const uint32_t k = n < TQ_USB_BULK_SIZE ? n : TQ_USB_BULK_SIZE;
        for (uint32_t i = 0; i < k; ++i) in_buf[i] = p[i];
        WR(EPIN_PTR(TQ_USB_EP_DATA_IN), tq_mmio_addr(in_buf));
        WR(EPIN_MAXCNT(TQ_USB_EP_DATA_IN), k);
        in_busy = 1;
        if (!dma(TASKS_STARTEPIN(TQ_USB_EP_DATA_IN), EVENTS_ENDEPIN(TQ_USB_EP_DATA_IN))) return;
        p += k;
        n -= k;
    }
}
