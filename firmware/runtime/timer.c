/*
 * Cycle clock: the DWT cycle counter where it runs (real silicon), else SysTick
 * (QEMU, where DWT->CYCCNT reads 0) extended to 32 bits by counting its wraps.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_port.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static int use_dwt;
static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { ++systick_wraps; }

void tq_timer_init(void) {
    DEMCR |= 1u << 24;   /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;      /* CYCCNTENA */
    for (volatile int i = 0; i < 16; ++i) {}
    use_dwt = DWT_CYCCNT != 0;
    if (!use_dwt) {
        SYST_RVR = 0x00FFFFFFu;
        SYST_CVR = 0;
        SYST_CSR = 7u;   /* processor clock, interrupt on wrap, enable */
    }
}

uint32_t tq_timer_now(void) {
    if (use_dwt) return DWT_CYCCNT;
    uint32_t wraps, val;
    do {  /* read wraps and the counter consistently around a wrap */
        wraps = systick_wraps;
        val = SYST_CVR;
    } while (wraps != systick_wraps);
    return (wraps << 24) + (0x00FFFFFFu - val);
}

uint32_t tq_timer_hz(void) { return TQ_CPU_HZ; }

const char *tq_timer_kind(void) { return use_dwt ? "dwt" : "systick"; }
