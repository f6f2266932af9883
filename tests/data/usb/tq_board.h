/* tq_board.h as tinyq generates it for the Nano 33 BLE (target board), for the host harness. */
#define TQ_BOARD_ID "nano33"
#define TQ_TARGET "board"
#define TQ_BOARD_CPU_HZ 64000000u
#define TQ_CPU_HZ 64000000u
#define TQ_STACK_BYTES 8192u
#define TQ_CONSOLE_TX_PIN 35u
#define TQ_CONSOLE_RX_PIN 42u
#define TQ_CONSOLE_BAUD 115200u
#define TQ_USB_VID 0x2341u
#define TQ_USB_PID 0x805au
#define TQ_USB_MANUFACTURER "Arduino"
#define TQ_USB_PRODUCT "Nano 33 BLE (tinyq)"
