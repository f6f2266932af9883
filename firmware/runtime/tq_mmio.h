/*
 * Peripheral register access: the one seam between a driver and its hardware.
 *
 * On the target these are plain volatile loads and stores. Built with TQ_MMIO_HOST they
 * are calls into a register-level model (tests/data/usb/nrf52_model.c), so the very
 * driver source that goes on the board runs on the host against a model of the
 * peripheral. tq_mmio_addr() is what a driver writes into an EasyDMA PTR register.
 */
#ifndef TQ_MMIO_H
#define TQ_MMIO_H

#include <stdint.h>

#ifdef TQ_MMIO_HOST
uint32_t tq_mmio_read(uint32_t addr);
void tq_mmio_write(uint32_t addr, uint32_t value);
uint32_t tq_mmio_addr(const volatile void *p);
#else
static inline uint32_t tq_mmio_read(uint32_t addr) { return *(volatile uint32_t *)(uintptr_t)addr; }
static inline void tq_mmio_write(uint32_t addr, uint32_t value) { *(volatile uint32_t *)(uintptr_t)addr = value; }
static inline uint32_t tq_mmio_addr(const volatile void *p) { return (uint32_t)(uintptr_t)p; }
#endif

#endif
