/*
 * A register-level model of the nRF52840's USBD, UARTE0, POWER and CLOCK, as far as the
 * tinyq console drivers touch them, written from the nRF52840 Product Specification v1.7
 * (6.35 USBD, 6.34 UARTE, 5.3 POWER, 6.4 CLOCK). The real drivers are linked against it
 * through tq_mmio.h (built with -DTQ_MMIO_HOST): every register access of the device
 * lands in tq_mmio_read/tq_mmio_write here and advances the model by one step.
 *
 * The device runs in its own thread; the scripted host (tests/test_usb.py, through the
 * m_* functions) only queues what a host does on the bus (bus reset, control transfers,
 * bulk OUT packets, reading the bulk IN endpoint, bytes on the UART). Bus activity is
 * carried out inside the device's steps, so everything that touches device RAM (EasyDMA)
 * happens in the device thread, in an order set by the device's own accesses.
 *
 * Modelled: tasks, events, EVENTCAUSE and EPDATASTATUS (write 1 to clear), EasyDMA with
 * a duration and its one-transfer-at-a-time rule (a second STARTEP* while one runs is
 * counted as a violation, as is a transfer outside errata 199's 0x82 latch), the EP0
 * state machine (SETUP event, IN data stage NAKed until the endpoint holds a packet,
 * OUT data stage NAKed until EP0RCVOUT, status stage NAKed until EP0STATUS, EP0STALL),
 * SET_ADDRESS answered by the hardware itself, data toggles on both sides of the bus
 * (a packet with the wrong toggle is acknowledged and discarded, as USB 2.0 8.6 says),
 * an OUT endpoint that NAKs while it holds a packet (until its EasyDMA transfer ends or
 * SIZE.EPOUT is written, which drops the packet), EPSTALL, DTOGGLE, VBUS detection and
 * the USB regulator, bus reset, HFXO start-up, ENABLE and EVENTCAUSE.READY, GPREGRET
 * and SYSRESETREQ. UARTE: a 6-byte RX FIFO whose bytes move as soon as a reception is
 * started, ENDRX at MAXCNT, TX by EasyDMA.
 * Not modelled: electrical timing, suspend/resume, SOF/FRAMECNTR, isochronous endpoints,
 * interrupts (the drivers poll), the errata's own misbehaviour.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define USBD 0x40027000u
#define UARTE 0x40002000u
#define RAM_BASE 0x20000000u

enum { CTL_NONE, CTL_SETUP, CTL_DATA_IN, CTL_DATA_OUT, CTL_STATUS, CTL_DONE, CTL_STALLED };

typedef struct {
    /* fault injection */
    int hfxo_never, usbd_never_ready, hfxo_running_at_boot;
    /* POWER, CLOCK, system */
    int vbus, ev_usbdetected, ev_usbremoved;
    uint32_t gpregret;
    int hf_running, hf_cd, ev_hfclkstarted;
    uint32_t misc_addr[32], misc_val[32];
    int misc_n;
    /* USBD */
    int enable, ready_cd, pullup;
    uint32_t eventcause, epdatastatus, epinen, epouten, address, errata199;
    uint32_t events[32];             /* 0x100 .. 0x17C */
    uint8_t setup[8];
    uint32_t size_epout[8], epin_ptr[8], epin_max[8], epout_ptr[8], epout_max[8];
    uint32_t stall_in, stall_out, dtoggle_sel;
    int tog_in[8], tog_out[8];
    int in_loaded[8];
    uint32_t in_len[8];
    uint8_t in_data[8][64];
    int out_full[8];
    uint8_t out_data[8][64];
    /* EasyDMA */
    int dma_active, dma_cd, dma_in, dma_ep;
    uint32_t dma_ptr, dma_cnt;
    /* control transfer of the host */
    int ctl, ep0_status, ep0_stall, ep0_rcvout;
    uint8_t ctl_setup[8];
    uint8_t ctl_data[4096];
    uint32_t ctl_len, ctl_got;
    /* bulk traffic of the host */
    uint8_t out_q[1 << 16][1];
    uint32_t out_q_head, out_q_tail;  /* bytes; split into 64-byte packets at queue time */
    uint16_t pkt_len[4096];
    uint32_t pkt_head, pkt_tail, pkt_off;
    int host_tog_out, host_tog_in, reading, bus_reset_pending;
    uint8_t in_log[1 << 20];
    uint32_t in_log_len, in_log_taken;
    /* UARTE */
    uint8_t fifo[6];
    int fifo_n;
    uint8_t uart_q[1 << 16];
    uint32_t uart_q_head, uart_q_tail;
    int rx_active, ev_endrx, ev_endtx, tx_cd;
    uint32_t rxd_ptr, rxd_max, rx_cnt, txd_ptr, txd_max, uart_enable;
    uint8_t uart_log[1 << 18];
    uint32_t uart_log_len, uart_log_taken;
    /* what the tests check */
    int dma_overlap, e199, bad_ptr, in_overwrite, out_dropped, dup_out, dup_in, stall_seen_out;
    int resets, gpregret_at_reset, ctl_open_at_reset, status_done, recursion, device_dead;
    uint64_t steps;
    int kill;
    uintptr_t stack_top;
} model_t;

static model_t M;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- EasyDMA addresses: host pointers registered as Data RAM addresses ---- */
static const volatile void *ram_ptrs[64];
static int ram_n;

uint32_t tq_mmio_addr(const volatile void *p) {
    for (int i = 0; i < ram_n; ++i)
        if (ram_ptrs[i] == p) return RAM_BASE + ((uint32_t)i << 16);
    ram_ptrs[ram_n] = p;
    return RAM_BASE + ((uint32_t)ram_n++ << 16);
}

static uint8_t *ram(uint32_t addr, uint32_t n) {
    const uint32_t i = (addr - RAM_BASE) >> 16, off = addr & 0xFFFFu;
    if (addr < RAM_BASE || (int)i >= ram_n || off + n > 0x10000u) {
        ++M.bad_ptr;
        return NULL;
    }
    return (uint8_t *)(uintptr_t)ram_ptrs[i] + off;
}

/* ---- the bus, one step per device access ---- */
static void bus_reset(void) {
    M.events[0] = 1; /* EVENTS_USBRESET */
    M.address = 0;
    for (int i = 0; i < 8; ++i) {
        M.tog_in[i] = M.tog_out[i] = 0;
        M.in_loaded[i] = 0;
        M.out_full[i] = 0;
    }
    M.stall_in = M.stall_out = 0;
    M.host_tog_in = M.host_tog_out = 0;
    M.ctl = CTL_NONE;
}

static void control_step(void) {
    switch (M.ctl) {
    case CTL_SETUP: {
        memcpy(M.setup, M.ctl_setup, 8);
        M.ep0_status = M.ep0_stall = M.ep0_rcvout = 0;
        M.in_loaded[0] = 0;
        M.events[(0x15C - 0x100) / 4] = 1; /* EP0SETUP */
        const uint16_t len = (uint16_t)(M.ctl_setup[6] | (M.ctl_setup[7] << 8));
        if (M.ctl_setup[0] == 0x00 && M.ctl_setup[1] == 5) { /* SET_ADDRESS: the USBD's own */
            M.address = M.ctl_setup[2] & 0x7Fu;
            M.ctl = CTL_DONE;
            ++M.status_done;
        } else if (len == 0) {
            M.ctl = CTL_STATUS;
        } else {
            M.ctl = (M.ctl_setup[0] & 0x80u) ? CTL_DATA_IN : CTL_DATA_OUT;
        }
        M.ctl_got = 0;
        return;
    }
    case CTL_DATA_IN:
        if (M.ep0_stall) { M.ctl = CTL_STALLED; return; }
        if (M.in_loaded[0]) { /* the host's IN token finds a packet */
            const uint32_t n = M.in_len[0];
            if (M.ctl_got + n <= sizeof M.ctl_data) memcpy(M.ctl_data + M.ctl_got, M.in_data[0], n);
            M.ctl_got += n;
            M.in_loaded[0] = 0;
            M.events[(0x128 - 0x100) / 4] = 1; /* EP0DATADONE */
            if (n < 64 || M.ctl_got >= M.ctl_len) M.ctl = CTL_STATUS;
        }
        return;
    case CTL_DATA_OUT:
        if (M.ep0_stall) { M.ctl = CTL_STALLED; return; }
        if (M.ep0_rcvout) { /* EP0RCVOUT: the data stage is ACKed now, NAKed before */
            M.ep0_rcvout = 0;
            memcpy(M.out_data[0], M.ctl_data, M.ctl_len);
            M.size_epout[0] = M.ctl_len;
            M.events[(0x128 - 0x100) / 4] = 1;
            M.ctl = CTL_STATUS;
        }
        return;
    case CTL_STATUS:
        if (M.ep0_stall) { M.ctl = CTL_STALLED; return; }
        if (M.ep0_status) {
            M.ctl = CTL_DONE;
            ++M.status_done;
            if (M.ctl_setup[0] == 0x02 && M.ctl_setup[1] == 1) { /* CLEAR_FEATURE(HALT) done: the */
                if (M.ctl_setup[4] & 0x80u) M.host_tog_in = 0;   /* host's toggle is DATA0 too */
                else M.host_tog_out = 0;
            }
        }
        return;
    default:
        return;
    }
}

static void bulk_step(void) {
    /* OUT endpoint 2 */
    /* A host sends nothing on a pipe whose SET/CLEAR_FEATURE(ENDPOINT_HALT) is under way. */
    const int halt_request = M.ctl != CTL_NONE && M.ctl != CTL_DONE && M.ctl != CTL_STALLED &&
                             M.ctl_setup[0] == 0x02 && (M.ctl_setup[1] == 1 || M.ctl_setup[1] == 3) &&
                             M.ctl_setup[4] == 0x02;
    if (M.pkt_head != M.pkt_tail && (M.epouten & (1u << 2)) && !halt_request) {
        if (M.stall_out & (1u << 2)) {
            ++M.stall_seen_out;
        } else if (!M.out_full[2]) { /* ACK: a packet moves; while full, the USBD NAKs */
            const uint16_t n = M.pkt_len[M.pkt_head % 4096u];
            uint8_t pkt[64];
            for (uint16_t i = 0; i < n; ++i) pkt[i] = M.out_q[(M.pkt_off + i) & 0xFFFFu][0];
            if (M.host_tog_out == M.tog_out[2]) {
                memcpy(M.out_data[2], pkt, n);
                M.size_epout[2] = n;
                M.out_full[2] = 1;
                M.epdatastatus |= 1u << (16 + 2);
                M.events[(0x160 - 0x100) / 4] = 1; /* EPDATA */
                M.tog_out[2] ^= 1;
            } else {
                ++M.dup_out; /* acknowledged, discarded as a retransmission */
            }
            M.host_tog_out ^= 1;
            M.pkt_off += n;
            ++M.pkt_head;
        }
    }
    /* IN endpoint 1 */
    if (M.reading && M.in_loaded[1] && (M.epinen & (1u << 1)) && !(M.stall_in & (1u << 1))) {
        if (M.tog_in[1] == M.host_tog_in) {
            const uint32_t n = M.in_len[1];
            if (M.in_log_len + n <= sizeof M.in_log) memcpy(M.in_log + M.in_log_len, M.in_data[1], n);
            M.in_log_len += n;
            M.host_tog_in ^= 1;
        } else {
            ++M.dup_in;
        }
        M.tog_in[1] ^= 1;
        M.in_loaded[1] = 0;
        M.epdatastatus |= 1u << 1;
        M.events[(0x160 - 0x100) / 4] = 1;
    }
}

static void dma_finish(void) {
    M.dma_active = 0;
    const int ep = M.dma_ep;
    if (M.dma_in) {
        const uint8_t *src = M.dma_cnt ? ram(M.dma_ptr, M.dma_cnt) : NULL;
        if (M.in_loaded[ep]) ++M.in_overwrite;
        if (src) memcpy(M.in_data[ep], src, M.dma_cnt);
        M.in_len[ep] = M.dma_cnt;
        M.in_loaded[ep] = 1;
        M.events[(0x108 - 0x100) / 4 + ep] = 1; /* ENDEPIN[n] */
    } else {
        uint32_t n = M.size_epout[ep] < M.dma_cnt ? M.size_epout[ep] : M.dma_cnt;
        uint8_t *dst = n ? ram(M.dma_ptr, n) : NULL;
        if (dst) memcpy(dst, M.out_data[ep], n);
        M.out_full[ep] = 0; /* the endpoint is free: the next OUT packet is ACKed */
        M.events[(0x130 - 0x100) / 4 + ep] = 1; /* ENDEPOUT[n] */
    }
}

static void step(void) {
    ++M.steps;
    if (M.hf_cd && --M.hf_cd == 0) { M.hf_running = 1; M.ev_hfclkstarted = 1; }
    if (M.enable && M.ready_cd && --M.ready_cd == 0) M.eventcause |= 1u << 11;
    if (M.dma_active && --M.dma_cd == 0) dma_finish();
    /* UARTE */
    if (M.tx_cd && --M.tx_cd == 0) M.ev_endtx = 1;
    if (M.uart_q_head != M.uart_q_tail && M.fifo_n < 6) M.fifo[M.fifo_n++] = M.uart_q[M.uart_q_head++ & 0xFFFFu];
    if (M.rx_active && M.fifo_n) {
        uint8_t *dst = ram(M.rxd_ptr + M.rx_cnt, 1);
        if (dst) *dst = M.fifo[0];
        memmove(M.fifo, M.fifo + 1, (size_t)--M.fifo_n);
        if (++M.rx_cnt >= M.rxd_max) { M.rx_active = 0; M.ev_endrx = 1; }
    }
    /* USB: only with VBUS, the USBD ready and the pull-up on does the host see the device */
    if (M.vbus && M.enable && (M.eventcause & (1u << 11) || !M.ready_cd) && M.pullup) {
        if (M.bus_reset_pending) { M.bus_reset_pending = 0; bus_reset(); return; }
        control_step();
        bulk_step();
    }
}

static void dma_start(int in, int ep) {
    if (M.dma_active) ++M.dma_overlap;
    if (M.errata199 != 0x82u) ++M.e199;
    M.dma_active = 1;
    M.dma_in = in;
    M.dma_ep = ep;
    M.dma_ptr = in ? M.epin_ptr[ep] : M.epout_ptr[ep];
    M.dma_cnt = in ? M.epin_max[ep] : M.epout_max[ep];
    M.dma_cd = 2 + (int)M.dma_cnt / 8; /* EasyDMA takes time: about a word a cycle on the AHB */
}

static void usbd_disable(void) {
    M.enable = 0;
    M.eventcause = 0;
    M.ready_cd = 0;
    for (int i = 0; i < 8; ++i) { M.in_loaded[i] = 0; M.out_full[i] = 0; }
}

static void enter(void) {
    pthread_mutex_lock(&mu);
    const uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (M.kill || (M.stack_top && M.stack_top - here > (1u << 20))) {
        if (!M.kill) M.recursion = 1; /* more than 1 MB of stack: runaway recursion */
        M.device_dead = 1;
        pthread_mutex_unlock(&mu);
        pthread_exit(NULL);
    }
}

static void leave(void) {
    const int yield = (M.steps & 255u) == 0u;
    pthread_mutex_unlock(&mu);
    if (yield) sched_yield();
}

static uint32_t *misc(uint32_t addr) {
    for (int i = 0; i < M.misc_n; ++i)
        if (M.misc_addr[i] == addr) return &M.misc_val[i];
    if (M.misc_n == 32) return &M.misc_val[31];
    M.misc_addr[M.misc_n] = addr;
    M.misc_val[M.misc_n] = 0;
    return &M.misc_val[M.misc_n++];
}

uint32_t tq_mmio_read(uint32_t a) {
    uint32_t v = 0;
    enter();
    if (a >= USBD + 0x100u && a < USBD + 0x180u) v = M.events[(a - USBD - 0x100u) / 4];
    else if (a == USBD + 0x400u) v = M.eventcause;
    else if (a == USBD + 0x46Cu) v = M.epdatastatus;
    else if (a >= USBD + 0x480u && a < USBD + 0x4A0u) v = M.setup[(a - USBD - 0x480u) / 4];
    else if (a >= USBD + 0x4A0u && a < USBD + 0x4C0u) v = M.size_epout[(a - USBD - 0x4A0u) / 4];
    else if (a == USBD + 0x500u) v = (uint32_t)M.enable;
    else if (a == USBD + 0x504u) v = (uint32_t)M.pullup;
    else if (a == USBD + 0x50Cu) {
        const uint32_t ep = M.dtoggle_sel & 7u;
        v = M.dtoggle_sel | ((uint32_t)((M.dtoggle_sel & 0x80u) ? M.tog_in[ep] : M.tog_out[ep]) + 1u) << 8;
    } else if (a == USBD + 0x510u) v = M.epinen;
    else if (a == USBD + 0x514u) v = M.epouten;
    else if (a == 0x4000011Cu) v = (uint32_t)M.ev_usbdetected;
    else if (a == 0x40000120u) v = (uint32_t)M.ev_usbremoved;
    else if (a == 0x40000438u) v = (M.vbus ? 1u : 0u) | (M.vbus ? 2u : 0u);
    else if (a == 0x4000051Cu) v = M.gpregret;
    else if (a == 0x40000100u) v = (uint32_t)M.ev_hfclkstarted;
    else if (a == 0x4000040Cu) v = M.hf_running ? 0x10001u : 0u;
    else if (a == 0x10000060u) v = 0x89ABCDEFu;
    else if (a == 0x10000064u) v = 0x01234567u;
    else if (a == UARTE + 0x110u) v = (uint32_t)M.ev_endrx;
    else if (a == UARTE + 0x120u) v = (uint32_t)M.ev_endtx;
    else v = *misc(a);
    step();
    leave();
    return v;
}

void tq_mmio_write(uint32_t a, uint32_t v) {
    enter();
    if (a >= USBD + 0x004u && a < USBD + 0x024u) {
        dma_start(1, (int)(a - USBD - 0x004u) / 4);
    } else if (a >= USBD + 0x028u && a < USBD + 0x048u) {
        dma_start(0, (int)(a - USBD - 0x028u) / 4);
    } else if (a == USBD + 0x04Cu) M.ep0_rcvout = 1;
    else if (a == USBD + 0x050u) M.ep0_status = 1;
    else if (a == USBD + 0x054u) M.ep0_stall = 1;
    else if (a >= USBD + 0x100u && a < USBD + 0x180u) M.events[(a - USBD - 0x100u) / 4] = v;
    else if (a == USBD + 0x400u) M.eventcause &= ~v;
    else if (a == USBD + 0x46Cu) M.epdatastatus &= ~v;
    else if (a >= USBD + 0x4A0u && a < USBD + 0x4C0u) {
        const int ep = (int)(a - USBD - 0x4A0u) / 4;
        if (M.out_full[ep]) ++M.out_dropped; /* any write: the endpoint's packet is discarded */
        M.out_full[ep] = 0;
    } else if (a == USBD + 0x500u) {
        if (v & 1u) {
            if (!M.enable) { M.enable = 1; M.ready_cd = M.usbd_never_ready ? 0 : 5; }
            if (M.usbd_never_ready) M.ready_cd = 0, M.eventcause &= ~(1u << 11);
        } else {
            usbd_disable();
        }
    } else if (a == USBD + 0x504u) M.pullup = (int)(v & 1u);
    else if (a == USBD + 0x50Cu) {
        const uint32_t ep = v & 7u, val = (v >> 8) & 3u;
        M.dtoggle_sel = v & 0x87u;
        if (val == 1u || val == 2u) {
            if (v & 0x80u) M.tog_in[ep] = (int)val - 1; else M.tog_out[ep] = (int)val - 1;
        }
    } else if (a == USBD + 0x510u) M.epinen = v;
    else if (a == USBD + 0x514u) M.epouten = v;
    else if (a == USBD + 0x518u) {
        const uint32_t bit = 1u << (v & 7u);
        uint32_t *set = (v & 0x80u) ? &M.stall_in : &M.stall_out;
        if (v & 0x100u) *set |= bit; else *set &= ~bit;
    } else if (a >= USBD + 0x600u && a < USBD + 0x600u + 8u * 0x14u && (a - USBD - 0x600u) % 0x14u < 8u) {
        const uint32_t n = (a - USBD - 0x600u) / 0x14u;
        if ((a - USBD - 0x600u) % 0x14u == 0u) M.epin_ptr[n] = v; else M.epin_max[n] = v;
    } else if (a >= USBD + 0x700u && a < USBD + 0x700u + 8u * 0x14u && (a - USBD - 0x700u) % 0x14u < 8u) {
        const uint32_t n = (a - USBD - 0x700u) / 0x14u;
        if ((a - USBD - 0x700u) % 0x14u == 0u) M.epout_ptr[n] = v; else M.epout_max[n] = v;
    } else if (a == 0x40027C1Cu) {
        if (M.dma_active && v != 0x82u) ++M.e199; /* the latch dropped mid-transfer */
        M.errata199 = v;
    } else if (a == 0x4000011Cu) M.ev_usbdetected = (int)v;
    else if (a == 0x40000120u) M.ev_usbremoved = (int)v;
    else if (a == 0x4000051Cu) M.gpregret = v;
    else if (a == 0x40000000u) { if (!M.hfxo_never && !M.hf_running && !M.hf_cd) M.hf_cd = 20; }
    else if (a == 0x40000100u) M.ev_hfclkstarted = (int)v;
    else if (a == 0xE000ED0Cu) {
        if ((v >> 16) == 0x05FAu && (v & 4u)) { /* SYSRESETREQ: the device is gone */
            ++M.resets;
            M.gpregret_at_reset = (int)M.gpregret;
            M.ctl_open_at_reset = M.ctl != CTL_NONE && M.ctl != CTL_DONE && M.ctl != CTL_STALLED;
            M.device_dead = 1;
            M.pullup = 0;
            pthread_mutex_unlock(&mu);
            pthread_exit(NULL);
        }
    }
    /* UARTE0 */
    else if (a == UARTE + 0x000u) { M.rx_active = 1; M.rx_cnt = 0; }
    else if (a == UARTE + 0x008u) {
        const uint8_t *src = ram(M.txd_ptr, M.txd_max);
        if (src && M.uart_log_len + M.txd_max <= sizeof M.uart_log) {
            memcpy(M.uart_log + M.uart_log_len, src, M.txd_max);
            M.uart_log_len += M.txd_max;
        }
        M.tx_cd = 3;
    } else if (a == UARTE + 0x110u) M.ev_endrx = (int)v;
    else if (a == UARTE + 0x120u) M.ev_endtx = (int)v;
    else if (a == UARTE + 0x534u) M.rxd_ptr = v;
    else if (a == UARTE + 0x538u) M.rxd_max = v;
    else if (a == UARTE + 0x544u) M.txd_ptr = v;
    else if (a == UARTE + 0x548u) M.txd_max = v;
    else *misc(a) = v;
    step();
    leave();
}

/* ---- the scripted host's side (tests/test_usb.py through ctypes) ---- */
void m_init(int vbus, int hfxo_never, int usbd_never_ready, int hfxo_running) {
    pthread_mutex_lock(&mu);
    memset(&M, 0, sizeof M);
    M.vbus = vbus;
    M.hfxo_never = hfxo_never;
    M.usbd_never_ready = usbd_never_ready;
    M.hf_running = hfxo_running;
    pthread_mutex_unlock(&mu);
}

void m_set_stack_top(uintptr_t top) { M.stack_top = top; }

void m_vbus(int on) {
    pthread_mutex_lock(&mu);
    if (on && !M.vbus) M.ev_usbdetected = 1;
    if (!on && M.vbus) {
        M.ev_usbremoved = 1;
        M.ctl = CTL_NONE;
        M.pkt_head = M.pkt_tail;
        M.pkt_off = M.out_q_tail;
        M.reading = 0;
    }
    M.vbus = on;
    pthread_mutex_unlock(&mu);
}

int m_pulled_up(void) {
    pthread_mutex_lock(&mu);
    const int r = M.vbus && M.enable && M.pullup && (M.eventcause & (1u << 11) || !M.ready_cd);
    pthread_mutex_unlock(&mu);
    return r;
}

void m_bus_reset(void) {
    pthread_mutex_lock(&mu);
    M.bus_reset_pending = 1;
    M.pkt_head = M.pkt_tail; /* the host's queued transfers are cancelled */
    M.pkt_off = M.out_q_tail;
    pthread_mutex_unlock(&mu);
}

int m_bus_reset_pending(void) {
    pthread_mutex_lock(&mu);
    const int r = M.bus_reset_pending;
    pthread_mutex_unlock(&mu);
    return r;
}

void m_control(const uint8_t *setup, const uint8_t *data, uint32_t len) {
    pthread_mutex_lock(&mu);
    memcpy(M.ctl_setup, setup, 8);
    const uint32_t w = (uint32_t)(setup[6] | (setup[7] << 8));
    M.ctl_len = w;
    if (!(setup[0] & 0x80u) && data) memcpy(M.ctl_data, data, len < sizeof M.ctl_data ? len : sizeof M.ctl_data);
    M.ctl = CTL_SETUP;
    pthread_mutex_unlock(&mu);
}

/* 0 under way, 1 done, 2 stalled; IN data into out (returns its length in *len). */
int m_control_result(uint8_t *out, uint32_t *len) {
    pthread_mutex_lock(&mu);
    const int s = M.ctl == CTL_DONE ? 1 : M.ctl == CTL_STALLED ? 2 : 0;
    *len = M.ctl_got < sizeof M.ctl_data ? M.ctl_got : sizeof M.ctl_data;
    if (out) memcpy(out, M.ctl_data, *len);
    pthread_mutex_unlock(&mu);
    return s;
}

/* The host resets its side of an endpoint's data toggle (what it does with CLEAR_FEATURE(HALT)). */
void m_host_toggle_reset(int in) {
    pthread_mutex_lock(&mu);
    if (in) M.host_tog_in = 0; else M.host_tog_out = 0;
    pthread_mutex_unlock(&mu);
}

void m_bulk_out(const uint8_t *data, uint32_t len) {
    pthread_mutex_lock(&mu);
    uint32_t i = 0;
    while (i < len) {
        const uint32_t n = len - i < 64u ? len - i : 64u;
        for (uint32_t k = 0; k < n; ++k) M.out_q[(M.out_q_tail + k) & 0xFFFFu][0] = data[i + k];
        M.out_q_tail += n;
        M.pkt_len[M.pkt_tail++ % 4096u] = (uint16_t)n;
        i += n;
    }
    pthread_mutex_unlock(&mu);
}

uint32_t m_bulk_out_queued(void) {
    pthread_mutex_lock(&mu);
    const uint32_t r = M.pkt_tail - M.pkt_head;
    pthread_mutex_unlock(&mu);
    return r;
}

void m_reading(int on) {
    pthread_mutex_lock(&mu);
    M.reading = on;
    pthread_mutex_unlock(&mu);
}

uint32_t m_take_in(uint8_t *out, uint32_t cap) {
    pthread_mutex_lock(&mu);
    uint32_t n = M.in_log_len - M.in_log_taken;
    if (n > cap) n = cap;
    memcpy(out, M.in_log + M.in_log_taken, n);
    M.in_log_taken += n;
    pthread_mutex_unlock(&mu);
    return n;
}

void m_uart_push(const uint8_t *data, uint32_t len) {
    pthread_mutex_lock(&mu);
    for (uint32_t i = 0; i < len; ++i) M.uart_q[M.uart_q_tail++ & 0xFFFFu] = data[i];
    pthread_mutex_unlock(&mu);
}

uint32_t m_uart_take(uint8_t *out, uint32_t cap) {
    pthread_mutex_lock(&mu);
    uint32_t n = M.uart_log_len - M.uart_log_taken;
    if (n > cap) n = cap;
    memcpy(out, M.uart_log + M.uart_log_taken, n);
    M.uart_log_taken += n;
    pthread_mutex_unlock(&mu);
    return n;
}

/* The counters the tests check, in this order (names in tests/test_usb.py). */
void m_stats(int64_t *o) {
    pthread_mutex_lock(&mu);
    const int64_t v[] = {M.dma_overlap, M.e199, M.bad_ptr, M.in_overwrite, M.out_dropped, M.dup_out, M.dup_in,
                         M.stall_seen_out, M.resets, M.gpregret_at_reset, M.ctl_open_at_reset, M.status_done,
                         M.recursion, M.device_dead, (int64_t)M.steps, M.address, M.pullup, M.enable,
                         (int64_t)M.gpregret};
    memcpy(o, v, sizeof v);
    pthread_mutex_unlock(&mu);
}

void m_kill(void) {
    pthread_mutex_lock(&mu);
    M.kill = 1;
    pthread_mutex_unlock(&mu);
}

/* Host wall clock, shared by the device's timer (tq_timer_now in device.c). */
uint32_t m_now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u);
}
