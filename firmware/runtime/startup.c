/*
 * Cortex-M4F start-up: vector table, .data/.bss set-up, FPU on, stack painted
 * (for the high-water mark), then main().
 */
#include <stdint.h>

#include "tq_port.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);

#define STACK_PAINT 0xA5A5A5A5u

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((naked, noreturn)) void Reset_Handler(void) {
    /* Paint the stack below the current SP before anything uses it. The naked
     * function has no frame, so painting up to 64 bytes below the top is safe. */
    __asm__ volatile(
        "ldr r0, =_sstack\n"
        "ldr r1, =_estack\n"
        "sub r1, r1, #64\n"
        "ldr r2, =0xA5A5A5A5\n"
        "1: cmp r0, r1\n"
        "bhs 2f\n"
        "str r2, [r0], #4\n"
        "b 1b\n"
        "2:\n"
        "bl tq_c_start\n"
        "b .\n");
}

__attribute__((used, noreturn)) void tq_c_start(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CP10 and CP11 full access: the FPU, used by -mfloat-abi=hard code. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\nisb");
    tq_exit(main());
    for (;;) {}
}

void Default_Handler(void) {
    /* A fault: say so on the console, then stop (the host times out otherwise). */
    static const char msg[] = "\ntq-fault\n";
    for (const char *p = msg; *p; ++p) tq_console_putc(*p);
    tq_exit(3);
    for (;;) {}
}

__attribute__((section(".isr_vector"), used)) void (*const tq_vectors[16])(void) = {
    (void (*)(void))(&_estack),
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};

uint32_t tq_stack_high_water(void) {
    /* Bytes of stack ever used: the painted words not overwritten, counted from the bottom. */
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) ++p;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}
