/* Bare-metal support for the emberflow apps on Cortex-M (QEMU mps2 boards, or a real board with
 * a CMSDK-compatible UART at EF_UART_BASE): SysTick time, semihosting text and exit, the UART. */
#ifndef EF_BOARD_H
#define EF_BOARD_H

#include <stdint.h>

void ef_board_init(void);
uint64_t ef_ticks(void);            /* SysTick ticks since init, overflow-extended to 64 bits */
void ef_print(const char *text);    /* semihosting console */
void ef_print_u(const char *label, uint64_t value);
void ef_exit(int code);             /* semihosting exit: QEMU returns the code */
uint32_t ef_stack_used(void);       /* high-water mark of the stack painted at reset */

void ef_uart_init(void);
void ef_uart_write(const void *data, uint32_t n);
void ef_uart_read(void *data, uint32_t n);

#endif
