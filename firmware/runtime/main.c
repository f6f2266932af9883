/* Bare-metal entry point: the protocol loop, with the image's sizes from the linker script. */
#include <stdint.h>

#include "tq_protocol.h"

extern uint32_t _sdata, _ebss, _sidata, _edata, _stext_flash;

int main(void) {
    const uint32_t static_ram = (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sdata);
    const uint32_t flash = (uint32_t)((uintptr_t)&_sidata - (uintptr_t)&_stext_flash)
                         + (uint32_t)((uintptr_t)&_edata - (uintptr_t)&_sdata);
    return tq_protocol_main(static_ram, flash);
}
