/* The USB CDC-ACM console as the UART console driver uses it (tq_usbd_<chip>.c implements it). */
#ifndef TQ_USB_CONSOLE_H
#define TQ_USB_CONSOLE_H

#include <stdint.h>

int tq_usb_console_start(void);                          /* 1: VBUS present, USB started */
void tq_usb_console_poll(void);                          /* handle bus events; call often */
int tq_usb_console_live(void);                           /* configured and the host holds DTR */
int tq_usb_console_getc(void);                           /* a byte from the host, or -1 */
void tq_usb_console_write(const uint8_t *p, uint32_t n); /* to the host, if live */
/* tq_console_on_connect(): tq_protocol.h, called when a host opens the port */

#endif
