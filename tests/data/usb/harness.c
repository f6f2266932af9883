/* Flat functions over the USB protocol layer, for tests/test_usb.py (ctypes). */
#include <stdint.h>
#include <string.h>

#include "tq_usb_cdc.h"

static tq_usb_t usb;

void h_init(uint16_t vid, uint16_t pid, const char *manufacturer, const char *product, uint32_t lo, uint32_t hi) {
    static char m[64], p[64];
    strncpy(m, manufacturer, sizeof m - 1);
    strncpy(p, product, sizeof p - 1);
    const tq_usb_ids_t ids = {vid, pid, 0x0100, m, p};
    tq_usb_init(&usb, &ids, lo, hi);
}

/* Returns the data stage length; flags: 1 stall, 2 zlp, 4 an OUT data stage follows. */
int h_setup(const uint8_t *setup, uint8_t *out, int *flags) {
    tq_usb_reply_t r;
    tq_usb_setup(&usb, setup, &r);
    if (r.data) memcpy(out, r.data, r.len);
    *flags = (r.stall ? 1 : 0) | (r.zlp ? 2 : 0) | (r.data_out ? 4 : 0);
    return r.len;
}

int h_out(const uint8_t *data, int len) { return tq_usb_control_out(&usb, data, (uint16_t)len); }

void h_reset(void) { tq_usb_bus_reset(&usb); }

/* address, configuration, bootloader_requested, control_lines */
void h_state(int *out) {
    out[0] = usb.address;
    out[1] = usb.configuration;
    out[2] = usb.bootloader_requested;
    out[3] = usb.control_lines;
}
