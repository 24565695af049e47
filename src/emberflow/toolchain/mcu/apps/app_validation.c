/* Validation: the device side of `emberflow validate --on qemu-*|serial:URL`.
 *
 * Frames on the UART: 0xA5 0x5A, type (1), payload length (4, little endian), payload,
 * CRC-32 (IEEE, over type, length and payload). The host starts with HELLO carrying its
 * protocol version; the device answers with its version and the models it holds. RUN sends
 * the concatenated inputs; the device streams LAYER frames (when asked), then OUTPUT frames,
 * then DONE with the inference's SysTick ticks. A bad CRC or an unknown request gets ERROR.
 */
#include <string.h>

#include "ef_board.h"
#include "ef_runtime.h"

#define EF_PROTOCOL_VERSION 1
#ifndef EF_IO_MAX
#define EF_IO_MAX 65536
#endif

enum { HELLO = 1, HELLO_ACK = 2, RUN = 3, LAYER = 4, OUTPUT = 5, DONE = 6, RESET = 7, BYE = 8, ERROR = 15 };

extern const ef_model __start_nn_models[], __stop_nn_models[];

static uint8_t io[EF_IO_MAX];
static ai_handle handles[8];

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n) {
  uint32_t k;
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

typedef struct {
  uint8_t type;
  uint32_t len;
  uint32_t crc;
} frame_tx;

static void tx_begin(frame_tx *f, uint8_t type, uint32_t len) {
  static const uint8_t sync[2] = {0xA5, 0x5A};
  uint8_t head[5];
  head[0] = type;
  head[1] = (uint8_t)len;
  head[2] = (uint8_t)(len >> 8);
  head[3] = (uint8_t)(len >> 16);
  head[4] = (uint8_t)(len >> 24);
  f->type = type;
  f->len = len;
  ef_uart_write(sync, 2);
  ef_uart_write(head, 5);
  f->crc = crc32_update(0, head, 5);
}

static void tx_data(frame_tx *f, const void *data, uint32_t n) {
  ef_uart_write(data, n);
  /* crc32_update negates in and out, so chained calls give the CRC of the whole frame */
  f->crc = crc32_update(f->crc, (const uint8_t *)data, n);
}

static void tx_end(frame_tx *f) {
  uint8_t c[4];
  c[0] = (uint8_t)f->crc;
  c[1] = (uint8_t)(f->crc >> 8);
  c[2] = (uint8_t)(f->crc >> 16);
  c[3] = (uint8_t)(f->crc >> 24);
  ef_uart_write(c, 4);
}

static void send(uint8_t type, const void *data, uint32_t n) {
  frame_tx f;
  tx_begin(&f, type, n);
  if (n) tx_data(&f, data, n);
  tx_end(&f);
}

static void send_error(uint8_t code, const char *why) {
  frame_tx f;
  tx_begin(&f, ERROR, 1 + (uint32_t)strlen(why));
  tx_data(&f, &code, 1);
  tx_data(&f, why, (uint32_t)strlen(why));
  tx_end(&f);
}

static uint32_t put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
  return 4;
}

static int recv(uint8_t *type, uint32_t *len) {
  uint8_t b = 0, head[5], c[4];
  uint32_t crc;
  for (;;) { /* resynchronise on 0xA5 0x5A */
    ef_uart_read(&b, 1);
    if (b != 0xA5) continue;
    ef_uart_read(&b, 1);
    if (b == 0x5A) break;
  }
  ef_uart_read(head, 5);
  *type = head[0];
  *len = head[1] | (uint32_t)head[2] << 8 | (uint32_t)head[3] << 16 | (uint32_t)head[4] << 24;
  if (*len > EF_IO_MAX) return -1;
  ef_uart_read(io, *len);
  ef_uart_read(c, 4);
  crc = crc32_update(crc32_update(0, head, 5), io, *len);
  return crc == (c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24) ? 0 : -2;
}

static void on_layer(void *ctx, uint32_t layer, uint32_t output, const void *data, uint32_t nbytes) {
  uint8_t head[6];
  frame_tx f;
  (void)ctx;
  if (!data || !nbytes) return;
  put32(head, layer);
  head[4] = (uint8_t)output;
  head[5] = 0;
  tx_begin(&f, LAYER, 6 + nbytes);
  tx_data(&f, head, 6);
  tx_data(&f, data, nbytes);
  tx_end(&f);
}

static void hello(void) {
  uint8_t *p = io;
  const ef_model *m;
  *p++ = EF_PROTOCOL_VERSION;
  *p++ = (uint8_t)(__stop_nn_models - __start_nn_models);
  for (m = __start_nn_models; m < __stop_nn_models; ++m) {
    uint32_t i, n = (uint32_t)strlen(m->name);
    *p++ = (uint8_t)n;
    memcpy(p, m->name, n);
    p += n;
    *p++ = m->report->n_inputs;
    *p++ = m->report->n_outputs;
    p += put32(p, m->n_layers);
    for (i = 0; i < m->report->n_inputs; ++i) p += put32(p, m->report->inputs[i].size);
    for (i = 0; i < m->report->n_outputs; ++i) p += put32(p, m->report->outputs[i].size);
  }
  send(HELLO_ACK, io, (uint32_t)(p - io));
}

static void run(uint32_t len) {
  const uint32_t index = io[0], per_layer = io[1] & 1u;
  const ef_model *m = __start_nn_models + index;
  uint32_t i, at = 2;
  uint64_t t0, t1;
  uint8_t done[12];
  if (m >= __stop_nn_models || index >= 8) {
    send_error(2, "no such model");
    return;
  }
  if (!handles[index] && m->create_and_init(&handles[index], 0, 0).type) {
    send_error(3, "create_and_init failed");
    return;
  }
  for (i = 0; i < m->report->n_inputs; ++i) {
    const uint32_t n = m->report->inputs[i].size;
    if (at + n > len) {
      send_error(4, "input too short");
      return;
    }
    memcpy(m->input(handles[index], i), io + at, n);
    at += n;
  }
  m->set_observer(handles[index], per_layer ? on_layer : 0, 0);
  t0 = ef_ticks();
  if (m->run(handles[index], 0, 0) != 1) {
    send_error(5, "run failed");
    return;
  }
  t1 = ef_ticks();
  for (i = 0; i < m->report->n_outputs; ++i) {
    frame_tx f;
    const uint8_t k = (uint8_t)i;
    tx_begin(&f, OUTPUT, 1 + m->report->outputs[i].size);
    tx_data(&f, &k, 1);
    tx_data(&f, m->output(handles[index], i), m->report->outputs[i].size);
    tx_end(&f);
  }
  put32(done, 0);
  put32(done + 4, (uint32_t)(t1 - t0));
  put32(done + 8, (uint32_t)((t1 - t0) >> 32));
  send(DONE, done, 12);
}

int main(void) {
  ef_board_init();
  ef_uart_init();
  for (;;) {
    uint8_t type;
    uint32_t len;
    const int status = recv(&type, &len);
    if (status == -1) {
      send_error(1, "frame too long");
      continue;
    }
    if (status == -2) {
      send_error(1, "bad CRC");
      continue;
    }
    if (type == HELLO) {
      if (len < 1 || io[0] != EF_PROTOCOL_VERSION) send_error(6, "protocol version mismatch");
      hello();
    } else if (type == RUN) {
      run(len);
    } else if (type == RESET) {
      const ef_model *m = __start_nn_models + io[0];
      if (m < __stop_nn_models && io[0] < 8 && handles[io[0]]) m->reset(handles[io[0]]);
      send(DONE, 0, 0);
    } else if (type == BYE) {
      send(DONE, 0, 0);
      return 0;
    } else {
      send_error(7, "unknown request");
    }
  }
}
