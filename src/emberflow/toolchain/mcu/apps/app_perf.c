/* SystemPerformance: run every model of the firmware on deterministic pseudo-random inputs and
 * print SysTick ticks per layer and per inference on the semihosting console.
 * Under QEMU with -icount the ticks count emulated instructions exactly (the host converts);
 * on a board they are clock ticks. */
#include <string.h>

#include "ef_board.h"
#include "ef_runtime.h"

#ifndef EF_MAX_LAYERS
#define EF_MAX_LAYERS 512
#endif

extern const ef_model __start_nn_models[], __stop_nn_models[];

static uint64_t layer_end[EF_MAX_LAYERS];

static void on_layer(void *ctx, uint32_t layer, uint32_t output, const void *data, uint32_t nbytes) {
  (void)ctx;
  (void)data;
  (void)nbytes;
  if (output == 0 && layer < EF_MAX_LAYERS) layer_end[layer] = ef_ticks();
}

static void fill(uint8_t *p, uint32_t n, uint32_t *seed) {
  while (n--) {
    *seed = *seed * 1664525u + 1013904223u;
    *p++ = (uint8_t)(*seed >> 24);
  }
}

int main(void) {
  const ef_model *m;
  ef_board_init();
  for (m = __start_nn_models; m < __stop_nn_models; ++m) {
    ai_handle h = 0;
    uint32_t seed = 1, i, layers = m->n_layers < EF_MAX_LAYERS ? m->n_layers : EF_MAX_LAYERS;
    uint64_t t0, t1;
    ai_error err = m->create_and_init(&h, 0, 0);
    if (err.type) {
      ef_print_u("EFPERF error create ", (uint64_t)err.type);
      ef_print("\n");
      return 2;
    }
    for (i = 0; i < m->report->n_inputs; ++i) fill((uint8_t *)m->input(h, i), m->report->inputs[i].size, &seed);
    ef_print("EFPERF begin ");
    ef_print(m->name);
    ef_print_u(" layers=", m->n_layers);
    ef_print_u(" macc=", m->report->macc);
    ef_print_u(" arena=", m->report->arena_size);
    ef_print("\n");
    /* the total without the observer, then the per-layer split with it */
    t0 = ef_ticks();
    if (m->run(h, 0, 0) != 1) return 4;
    t1 = ef_ticks();
    ef_print_u("EFPERF total ", t1 - t0);
    ef_print("\n");
    m->reset(h);
    m->set_observer(h, on_layer, 0);
    t0 = ef_ticks();
    if (m->run(h, 0, 0) != 1) return 4;
    for (i = 0; i < layers; ++i) {
      ef_print_u("EFPERF layer ", i);
      ef_print_u(" ", layer_end[i] - (i ? layer_end[i - 1] : t0));
      ef_print("\n");
    }
    m->destroy(h);
    ef_print("EFPERF end\n");
  }
  ef_print_u("EFPERF stack ", ef_stack_used());
  ef_print("\n");
  return 0;
}
