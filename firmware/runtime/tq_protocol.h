/* The tinyq line protocol loop (tq_protocol.c), over the console and timer of tq_port.h. */
#ifndef TQ_PROTOCOL_H
#define TQ_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Boot line, then commands until "quit" (returns 0). The sizes go into the boot line (0: unknown). */
int tq_protocol_main(uint32_t static_ram_bytes, uint32_t flash_bytes);
/* Called by a console when a host opens it after boot (USB): prints the boot line again. */
void tq_console_on_connect(void);

#ifdef __cplusplus
}
#endif

#endif
