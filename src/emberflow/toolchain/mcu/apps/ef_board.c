/* Startup and board support for the emberflow apps (vector table, .data/.bss, FPU, SysTick,
 * semihosting, CMSDK UART). Kept minimal: the apps measure the model, not a HAL. */
#include "ef_board.h"

#include <string.h>

#ifndef EF_UART_BASE
#define EF_UART_BASE 0x40004000u
#endif

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);

#define STACK_PAINT 0xCDCDCDCDu
#define REG(addr) (*(volatile uint32_t *)(addr))

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

static volatile uint32_t systick_wraps;

__attribute__((naked, noreturn)) void Reset_Handler(void) {
  /* paint the stack below the current frame first, for ef_stack_used() */
  __asm volatile(
      "ldr r0, =_sstack\n"
      "ldr r1, =0xCDCDCDCD\n"
      "mov r2, sp\n"
      "sub r2, r2, #64\n"
      "1: cmp r0, r2\n"
      "bhs 2f\n"
      "str r1, [r0], #4\n"
      "b 1b\n"
      "2: bl ef_c_start\n");
  for (;;) {
  }
}

__attribute__((used)) void ef_c_start(void) {
  uint32_t *src = &_sidata, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0;
  REG(0xE000ED88) |= 0xFu << 20; /* CPACR: full access to CP10/CP11, the FPU */
  __asm volatile("dsb\n isb");
  ef_exit(main());
}

void Default_Handler(void) {
  ef_print("emberflow: fault\n");
  ef_exit(3);
}

void SysTick_Handler(void) { systick_wraps++; }

__attribute__((section(".isr_vector"), used)) void (*const ef_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    SysTick_Handler};

void ef_board_init(void) {
  REG(0xE000E014) = 0x00FFFFFFu; /* SYST_RVR: the full 24 bits */
  REG(0xE000E018) = 0;           /* SYST_CVR */
  REG(0xE000E010) = 7;           /* SYST_CSR: processor clock, interrupt on wrap, enable */
}

uint64_t ef_ticks(void) {
  uint32_t wraps, now;
  do { /* a wrap between the two reads shows as a changed count: read again */
    wraps = systick_wraps;
    now = REG(0xE000E018);
  } while (wraps != systick_wraps);
  return (uint64_t)wraps * 0x1000000u + (0x00FFFFFFu - now);
}

static int semihost(int op, void *arg) {
  register int r0 __asm("r0") = op;
  register void *r1 __asm("r1") = arg;
  __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void ef_print(const char *text) { semihost(0x04, (void *)text); }

void ef_print_u(const char *label, uint64_t value) {
  char buf[24];
  int i = (int)sizeof(buf) - 1;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + (int)(value % 10u));
    value /= 10u;
  } while (value && i > 0);
  ef_print(label);
  ef_print(buf + i);
}

void ef_exit(int code) {
  uint32_t block[2];
  block[0] = 0x20026; /* ADP_Stopped_ApplicationExit */
  block[1] = (uint32_t)code;
  semihost(0x20, block); /* SYS_EXIT_EXTENDED */
  for (;;) {
  }
}

uint32_t ef_stack_used(void) {
  const uint32_t *p = &_sstack;
  while (p < &_estack && *p == STACK_PAINT) ++p;
  return (uint32_t)((&_estack - p) * 4);
}

/* CMSDK APB UART: DATA +0, STATE +4 (bit0 TX full, bit1 RX full), CTRL +8 (TX/RX enable), BAUDDIV +16 */
void ef_uart_init(void) {
  REG(EF_UART_BASE + 0x10) = 16;
  REG(EF_UART_BASE + 0x08) = 3;
}

void ef_uart_write(const void *data, uint32_t n) {
  const uint8_t *p = (const uint8_t *)data;
  while (n--) {
    while (REG(EF_UART_BASE + 0x04) & 1u) {
    }
    REG(EF_UART_BASE) = *p++;
  }
}

void ef_uart_read(void *data, uint32_t n) {
  uint8_t *p = (uint8_t *)data;
  while (n--) {
    while (!(REG(EF_UART_BASE + 0x04) & 2u)) {
    }
    *p++ = (uint8_t)REG(EF_UART_BASE);
  }
}
