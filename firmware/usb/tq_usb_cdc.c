/* USB CDC-ACM device, protocol layer (see tq_usb_cdc.h). No hardware access here. */
#include "tq_usb_cdc.h"

#define DESC_DEVICE 1u
#define DESC_CONFIGURATION 2u
#define DESC_STRING 3u
#define DESC_INTERFACE 4u
#define DESC_ENDPOINT 5u
#define DESC_DEVICE_QUALIFIER 6u
#define DESC_IAD 11u
#define DESC_CS_INTERFACE 0x24u

#define REQ_GET_STATUS 0u
#define REQ_CLEAR_FEATURE 1u
#define REQ_SET_FEATURE 3u
#define REQ_GET_DESCRIPTOR 6u
#define REQ_GET_CONFIGURATION 8u
#define REQ_GET_INTERFACE 10u
#define REQ_SET_INTERFACE 11u

#define CDC_SET_LINE_CODING 0x20u
#define CDC_GET_LINE_CODING 0x21u
#define CDC_SET_CONTROL_LINE_STATE 0x22u
#define CDC_SEND_BREAK 0x23u

#define LO(x) ((uint8_t)((x) & 0xFFu))
#define HI(x) ((uint8_t)(((x) >> 8) & 0xFFu))
#define CONFIG_TOTAL 75u

/* One configuration: IAD + CDC communication interface + CDC data interface. */
static const uint8_t config_descriptor[CONFIG_TOTAL] = {
    /* configuration: 2 interfaces, value 1, bus powered, 100 mA */
    9, DESC_CONFIGURATION, LO(CONFIG_TOTAL), HI(CONFIG_TOTAL), 2, 1, 0, 0x80, 50,
    /* interface association: interfaces 0-1 are one CDC ACM function */
    8, DESC_IAD, 0, 2, 0x02, 0x02, 0x00, 0,
    /* interface 0: communication, ACM, 1 endpoint */
    9, DESC_INTERFACE, 0, 0, 1, 0x02, 0x02, 0x00, 0,
    /* CDC header, version 1.10 */
    5, DESC_CS_INTERFACE, 0x00, 0x10, 0x01,
    /* call management: no call management, data interface 1 */
    5, DESC_CS_INTERFACE, 0x01, 0x00, 1,
    /* ACM: line coding and serial state requests supported */
    4, DESC_CS_INTERFACE, 0x02, 0x02,
    /* union: control interface 0, subordinate interface 1 */
    5, DESC_CS_INTERFACE, 0x06, 0, 1,
    /* endpoint 0x83: interrupt IN, 8 bytes, every 16 ms (serial state notifications) */
    7, DESC_ENDPOINT, 0x80u | TQ_USB_EP_NOTIFY_IN, 0x03, 8, 0, 16,
    /* interface 1: data, 2 endpoints */
    9, DESC_INTERFACE, 1, 0, 2, 0x0A, 0x00, 0x00, 0,
    /* endpoint 0x02: bulk OUT */
    7, DESC_ENDPOINT, TQ_USB_EP_DATA_OUT, 0x02, LO(TQ_USB_BULK_SIZE), HI(TQ_USB_BULK_SIZE), 0,
    /* endpoint 0x81: bulk IN */
    7, DESC_ENDPOINT, 0x80u | TQ_USB_EP_DATA_IN, 0x02, LO(TQ_USB_BULK_SIZE), HI(TQ_USB_BULK_SIZE), 0,
};

const uint8_t *tq_usb_config_descriptor(uint16_t *len) {
    *len = CONFIG_TOTAL;
    return config_descriptor;
}

static void string_descriptor(uint8_t *out, const char *s) {
    /* UTF-16LE of an ASCII string, at most 32 characters. */
    uint8_t n = 0;
    while (s[n] && n < 32u) {
        out[2u + 2u * n] = (uint8_t)s[n];
        out[3u + 2u * n] = 0;
        ++n;
    }
    out[0] = (uint8_t)(2u + 2u * n);
    out[1] = DESC_STRING;
}

void tq_usb_init(tq_usb_t *u, const tq_usb_ids_t *ids, uint32_t device_id_lo, uint32_t device_id_hi) {
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t device[18] = {
        18, DESC_DEVICE, 0x00, 0x02,  /* USB 2.0 */
        0xEF, 0x02, 0x01,             /* miscellaneous class with interface associations */
        TQ_USB_EP0_SIZE,
        LO(ids->vid), HI(ids->vid), LO(ids->pid), HI(ids->pid), LO(ids->bcd_device), HI(ids->bcd_device),
        1, 2, 3,                      /* manufacturer, product, serial number strings */
        1,                            /* one configuration */
    };
    char serial[17];
    for (int i = 0; i < 8; ++i) {
        serial[i] = hex[(device_id_hi >> (28 - 4 * i)) & 15u];
        serial[8 + i] = hex[(device_id_lo >> (28 - 4 * i)) & 15u];
    }
    serial[16] = 0;
    for (unsigned i = 0; i < sizeof device; ++i) u->device[i] = device[i];
    u->strings[0][0] = 4;
    u->strings[0][1] = DESC_STRING;
    u->strings[0][2] = 0x09; /* English (United States) */
    u->strings[0][3] = 0x04;
    string_descriptor(u->strings[1], ids->manufacturer);
    string_descriptor(u->strings[2], ids->product);
    string_descriptor(u->strings[3], serial);
    /* 115200 8N1 until the host says otherwise */
    const uint8_t coding[7] = {0x00, 0xC2, 0x01, 0x00, 0, 0, 8};
    for (unsigned i = 0; i < sizeof coding; ++i) u->line_coding[i] = coding[i];
    u->control_lines = 0;
    u->bootloader_requested = 0;
    tq_usb_bus_reset(u);
}

void tq_usb_bus_reset(tq_usb_t *u) {
    u->address = 0;
    u->configuration = 0;
    u->pending_out = 0;
    u->control_lines = 0; /* a reset host has no port open: DTR is the new host's to raise */
    u->bootloader_requested = 0;
    u->halted = 0;
}

/* The halt bit of an endpoint address this configuration has (0x81, 0x02, 0x83), or 0. */
static uint32_t halt_bit(uint8_t ep) {
    switch (ep) {
    case 0x80u | TQ_USB_EP_DATA_IN: return 1uL << (16u + TQ_USB_EP_DATA_IN);
    case 0x80u | TQ_USB_EP_NOTIFY_IN: return 1uL << (16u + TQ_USB_EP_NOTIFY_IN);
    case TQ_USB_EP_DATA_OUT: return 1uL << TQ_USB_EP_DATA_OUT;
    default: return 0;
    }
}

uint32_t tq_usb_baud(const tq_usb_t *u) {
    return (uint32_t)u->line_coding[0] | ((uint32_t)u->line_coding[1] << 8) |
           ((uint32_t)u->line_coding[2] << 16) | ((uint32_t)u->line_coding[3] << 24);
}

static void answer(tq_usb_reply_t *r, const uint8_t *data, uint16_t len, uint16_t w_length) {
    /* Never more than the host asked for; a short answer that fills whole packets ends with a ZLP. */
    r->data = data;
    r->len = len < w_length ? len : w_length;
    r->zlp = (uint8_t)(r->len < w_length && r->len % TQ_USB_EP0_SIZE == 0u && r->len != 0u);
}

static void get_descriptor(tq_usb_t *u, uint8_t type, uint8_t index, uint16_t w_length, tq_usb_reply_t *r) {
    switch (type) {
    case DESC_DEVICE:
        answer(r, u->device, sizeof u->device, w_length);
        return;
    case DESC_CONFIGURATION:
        if (index == 0) {
            answer(r, config_descriptor, CONFIG_TOTAL, w_length);
            return;
        }
        break;
    case DESC_STRING:
        if (index < 4u) {
            answer(r, u->strings[index], u->strings[index][0], w_length);
            return;
        }
        break;
    default: /* a full-speed-only device stalls DEVICE_QUALIFIER (USB 2.0, 9.6.2) */
        break;
    }
    r->stall = 1;
}

static void standard(tq_usb_t *u, const uint8_t *s, uint16_t value, uint16_t index, uint16_t length,
                     tq_usb_reply_t *r) {
    const uint8_t recipient = s[0] & 0x1Fu, in = s[0] & 0x80u;
    switch (s[1]) {
    case REQ_GET_STATUS:
        if (!in || length < 2u) break;
        u->reply[0] = 0; /* bus powered, no remote wake-up; interfaces: all zero */
        u->reply[1] = 0;
        if (recipient == 2u) {
            const uint8_t ep = (uint8_t)index;
            if ((ep & 0x7Fu) != 0u) {
                const uint32_t bit = halt_bit(ep);
                if (!bit || !u->configuration) break;
                u->reply[0] = (u->halted & bit) ? 1u : 0u;
            }
        } else if (recipient == 1u) {
            if (index > 1u || !u->configuration) break;
        } else if (recipient != 0u) {
            break;
        }
        answer(r, u->reply, 2, length);
        return;
    case REQ_CLEAR_FEATURE:
    case REQ_SET_FEATURE:
        if (recipient == 2u && value == 0u) { /* ENDPOINT_HALT */
            const uint8_t ep = (uint8_t)index;
            if ((ep & 0x7Fu) == 0u) return; /* endpoint 0 is never halted by request */
            const uint32_t bit = halt_bit(ep);
            if (!bit || !u->configuration) break;
            if (s[1] == REQ_SET_FEATURE) u->halted |= bit; else u->halted &= ~bit;
            r->halt_ep = ep;
            r->halt_op = s[1] == REQ_SET_FEATURE ? TQ_USB_HALT_SET : TQ_USB_HALT_CLEAR;
            return;
        }
        /* DEVICE_REMOTE_WAKEUP: the configuration does not advertise it (bmAttributes 0x80), so
         * it is a request error (USB 2.0, 9.4.1 and 9.4.9): stall. */
        break;
    case TQ_USB_REQ_SET_ADDRESS:
        if (recipient != 0u || value > 127u) break;
        u->address = (uint8_t)value; /* the nRF52840 USBD also applies it in hardware */
        return;
    case REQ_GET_DESCRIPTOR:
        if (!in) break;
        get_descriptor(u, (uint8_t)(value >> 8), (uint8_t)value, length, r);
        return;
    case REQ_GET_CONFIGURATION:
        if (!in) break;
        u->reply[0] = u->configuration;
        answer(r, u->reply, 1, length);
        return;
    case TQ_USB_REQ_SET_CONFIGURATION:
        if (value > 1u) break;
        u->configuration = (uint8_t)value;
        return;
    case REQ_GET_INTERFACE:
        if (!in || index > 1u || !u->configuration) break;
        u->reply[0] = 0;
        answer(r, u->reply, 1, length);
        return;
    case REQ_SET_INTERFACE:
        if (index > 1u || value != 0u || !u->configuration) break;
        return;
    default:
        break;
    }
    r->stall = 1;
}

static void cdc(tq_usb_t *u, const uint8_t *s, uint16_t value, uint16_t index, uint16_t length, tq_usb_reply_t *r) {
    if (index != 0u) { /* class requests go to the communication interface */
        r->stall = 1;
        return;
    }
    switch (s[1]) {
    case CDC_SET_LINE_CODING:
        if (length != 7u) break;
        u->pending_out = CDC_SET_LINE_CODING;
        r->data_out = 1;
        return;
    case CDC_GET_LINE_CODING:
        answer(r, u->line_coding, 7, length);
        return;
    case CDC_SET_CONTROL_LINE_STATE: {
        const uint16_t before = u->control_lines;
        u->control_lines = value & 3u;
        /* The Arduino touch: the port opened at 1200 baud, then closed (DTR dropped). The
         * register layer resets once DTR has stayed low TQ_USB_TOUCH_DELAY_MS; a port opened
         * again before that cancels it. */
        if ((before & 1u) && !(value & 1u) && tq_usb_baud(u) == TQ_USB_TOUCH_BAUD) u->bootloader_requested = 1;
        if (value & 1u) u->bootloader_requested = 0;
        return;
    }
    case CDC_SEND_BREAK:
        return;
    default:
        break;
    }
    r->stall = 1;
}

void tq_usb_setup(tq_usb_t *u, const uint8_t setup[8], tq_usb_reply_t *r) {
    const uint16_t value = (uint16_t)(setup[2] | (setup[3] << 8));
    const uint16_t index = (uint16_t)(setup[4] | (setup[5] << 8));
    const uint16_t length = (uint16_t)(setup[6] | (setup[7] << 8));
    r->data = 0;
    r->len = 0;
    r->stall = 0;
    r->zlp = 0;
    r->data_out = 0;
    r->halt_ep = 0;
    r->halt_op = 0;
    u->pending_out = 0;
    switch ((setup[0] >> 5) & 3u) {
    case 0: /* standard */
        standard(u, setup, value, index, length, r);
        break;
    case 1: /* class, to an interface */
        if ((setup[0] & 0x1Fu) == 1u) {
            cdc(u, setup, value, index, length, r);
            break;
        }
        r->stall = 1;
        break;
    default: /* vendor or reserved */
        r->stall = 1;
        break;
    }
}

int tq_usb_control_out(tq_usb_t *u, const uint8_t *data, uint16_t len) {
    const uint8_t request = u->pending_out;
    u->pending_out = 0;
    if (request == CDC_SET_LINE_CODING && len == 7u) {
        for (unsigned i = 0; i < 7u; ++i) u->line_coding[i] = data[i];
        return 0;
    }
    return 1;
}
