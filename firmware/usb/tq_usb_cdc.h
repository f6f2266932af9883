/*
 * USB CDC-ACM device: the protocol layer, with no hardware in it.
 *
 * Descriptors and the answers to control requests (USB 2.0 chapter 9, CDC 1.2 PSTN
 * ACM) as a function of the 8-byte setup packet, so the host can compile this file and
 * test every request; the register layer (tq_usbd_nrf52.c) only moves bytes. One
 * configuration: an interface association, a communication interface (header, call
 * management, ACM and union functional descriptors, interrupt IN endpoint 3) and a
 * data interface (bulk OUT endpoint 2, bulk IN endpoint 1), 64-byte packets.
 */
#ifndef TQ_USB_CDC_H
#define TQ_USB_CDC_H

#include <stdint.h>

#define TQ_USB_EP0_SIZE 64u
#define TQ_USB_BULK_SIZE 64u
#define TQ_USB_EP_DATA_IN 1u    /* 0x81 */
#define TQ_USB_EP_DATA_OUT 2u   /* 0x02 */
#define TQ_USB_EP_NOTIFY_IN 3u  /* 0x83 */

/* bRequest values the register layer needs to tell apart. */
#define TQ_USB_REQ_SET_ADDRESS 5u
#define TQ_USB_REQ_SET_CONFIGURATION 9u

/* The 1200-baud touch: what the Nano 33 BLE's Arduino core (ArduinoCore-mbed,
 * variants/ARDUINO_NANO33BLE/pins_arduino.h: DFU_MAGIC_SERIAL_ONLY_RESET) writes to
 * GPREGRET before its reset; the board's bootloader compares GPREGRET with it. (0x4e is
 * the Adafruit nRF52 bootloader's value, which this board does not run.) */
#define TQ_USB_TOUCH_BAUD 1200u
#define TQ_USB_DFU_MAGIC_SERIAL_ONLY_RESET 0xb0u
/* ... and only once DTR has stayed low this long, so the host's request completes first. */
#define TQ_USB_TOUCH_DELAY_MS 200u

typedef struct {
    uint16_t vid, pid, bcd_device;
    const char *manufacturer, *product;
} tq_usb_ids_t;

typedef struct {
    /* what the host set */
    uint8_t address;
    uint8_t configuration;        /* 0 = not configured */
    uint8_t line_coding[7];       /* dwDTERate (LE), bCharFormat, bParityType, bDataBits */
    uint16_t control_lines;       /* bit 0 DTR, bit 1 RTS */
    uint8_t bootloader_requested; /* the 1200-baud touch happened: reset into the bootloader */
    uint8_t pending_out;          /* bRequest of a control OUT whose data stage is awaited, or 0 */
    uint32_t halted;              /* ENDPOINT_HALT: bit n OUT endpoint n, bit 16+n IN endpoint n */
    /* descriptors built at init */
    uint8_t device[18];
    uint8_t strings[4][2 + 2 * 32]; /* 0: languages, 1: manufacturer, 2: product, 3: serial */
    uint8_t reply[8];               /* short answers (status, configuration, line coding) */
} tq_usb_t;

typedef struct {
    const uint8_t *data; /* IN data stage, already cut to wLength (NULL: none) */
    uint16_t len;
    uint8_t stall;       /* answer with a protocol STALL */
    uint8_t zlp;         /* end the IN data stage with a zero-length packet */
    uint8_t data_out;    /* an OUT data stage of wLength bytes follows: give it to tq_usb_control_out */
    uint8_t halt_ep;     /* SET/CLEAR_FEATURE(ENDPOINT_HALT) on this endpoint address (0x81, 0x02, 0x83) ... */
    uint8_t halt_op;     /* ... TQ_USB_HALT_SET or TQ_USB_HALT_CLEAR (0: none): the register layer stalls,
                            or unstalls and resets the data toggle to DATA0 */
} tq_usb_reply_t;

#define TQ_USB_HALT_SET 1u
#define TQ_USB_HALT_CLEAR 2u

/* Build the descriptors; the serial number is the 64-bit FICR DEVICEID as 16 hex digits. */
void tq_usb_init(tq_usb_t *u, const tq_usb_ids_t *ids, uint32_t device_id_lo, uint32_t device_id_hi);
/* A bus reset: back to the default state (address 0, unconfigured, no port open, nothing
 * halted, no touch pending), descriptors kept. */
void tq_usb_bus_reset(tq_usb_t *u);
/* Answer one setup packet (8 bytes as they came off the bus). */
void tq_usb_setup(tq_usb_t *u, const uint8_t setup[8], tq_usb_reply_t *r);
/* The data stage of a control OUT announced by data_out; returns 0, or 1 to stall. */
int tq_usb_control_out(tq_usb_t *u, const uint8_t *data, uint16_t len);
/* The configuration descriptor (with everything under it) and its length. */
const uint8_t *tq_usb_config_descriptor(uint16_t *len);
/* The baud rate the host last set (0 before SET_LINE_CODING). */
uint32_t tq_usb_baud(const tq_usb_t *u);

#endif
