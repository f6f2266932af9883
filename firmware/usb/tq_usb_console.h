/* The USB CDC-ACM console as the UART console driver uses it (tq_usbd_<chip>.c implements it). */
#ifndef TQ_USB_CONSOLE_H
#define TQ_USB_CONSOLE_H

#include <stdint.h>

/* 1: VBUS present, USB started; 0: no VBUS; -1: VBUS, but the USBD did not come up (bounded waits). */
int tq_usb_console_start(void);
void tq_usb_console_poll(void);                          /* handle bus events; call often */
int tq_usb_console_live(void);                           /* configured and the host holds DTR */
int tq_usb_console_getc(void);                           /* a byte from the host, or -1 */
void tq_usb_console_write(const uint8_t *p, uint32_t n); /* to the host, if live; never blocks for long */
/* 1 once each time a host opens the port: the console then greets it (tq_console_on_connect(),
 * tq_protocol.h) from its read loop, never from inside a write. */
int tq_usb_console_take_connect(void);

#endif
