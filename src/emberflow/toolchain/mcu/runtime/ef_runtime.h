/* emberflow MCU runtime: the API every generated model exposes, and the shared int8 kernels.
 *
 * Portable C99, integer only, no malloc. Weights and per-layer parameters are const (flash);
 * activations live in one arena planned at compile time. With __ARM_FEATURE_DSP (Cortex-M4/M7/M33)
 * the matrix and depthwise kernels use the SMLAD/SXTB16 dual 16-bit MACs (EF_KERNELS_DSP); define
 * EF_KERNELS_PORTABLE to force plain C. Every kernel reproduces TFLite-Micro's reference arithmetic
 * bit for bit (same requantization, rounding and saturation).
 */
#ifndef EF_RUNTIME_H
#define EF_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_API_VERSION "1.0"

/* ---- ST-style runtime API types -------------------------------------------------------------- */

typedef void *ai_handle;

typedef struct {
  int32_t type; /* AI_ERROR_* */
  int32_t code; /* AI_ERROR_CODE_* */
} ai_error;

enum {
  AI_ERROR_NONE = 0x00,
  AI_ERROR_INVALID_HANDLE = 0x10,
  AI_ERROR_INVALID_STATE = 0x11,
  AI_ERROR_INVALID_INPUT = 0x12,
  AI_ERROR_INVALID_OUTPUT = 0x13,
  AI_ERROR_CREATE_FAILED = 0x30,
  AI_ERROR_INIT_FAILED = 0x31,
};
enum {
  AI_ERROR_CODE_NONE = 0x00,
  AI_ERROR_CODE_NETWORK = 0x10,
  AI_ERROR_CODE_IN_USE = 0x11,
  AI_ERROR_CODE_ARENA = 0x12,
  AI_ERROR_CODE_INDEX = 0x13,
};

enum { EF_INT8 = 1, EF_UINT8 = 2, EF_INT16 = 3, EF_INT32 = 4, EF_FLOAT32 = 5 };

typedef struct {
  const char *name;
  uint8_t dtype; /* EF_INT8 ... */
  uint8_t rank;
  int16_t zero_point;
  float scale; /* stored constant: no float arithmetic at run time */
  uint32_t size; /* bytes */
  int32_t shape[5];
} ai_tensor_info;

typedef struct {
  const char *name;
  const char *tool_version;
  const char *api_version;
  uint32_t macc;
  uint32_t n_nodes;
  uint32_t arena_size;   /* activations: the planned arena */
  uint32_t weights_size; /* const weights + parameters in flash */
  uint32_t state_size;   /* streaming state kept between runs */
  uint8_t n_inputs;
  uint8_t n_outputs;
  const ai_tensor_info *inputs;
  const ai_tensor_info *outputs;
} ai_network_report;

/* Called after every layer with each output it wrote (per-layer validation and timing). */
typedef void (*ef_observer)(void *ctx, uint32_t layer, uint32_t output, const void *data, uint32_t nbytes);

/* One entry per model in the `nn_models` section: applications find every model of a firmware
 * between __start_nn_models and __stop_nn_models. */
typedef struct ef_model {
  const char *name;
  const ai_network_report *report;
  uint32_t n_layers;
  ai_error (*create_and_init)(ai_handle *handle, void *activations, const void *weights);
  int32_t (*run)(ai_handle handle, const void *const *inputs, void *const *outputs);
  ai_error (*get_error)(ai_handle handle);
  ai_handle (*destroy)(ai_handle handle);
  void *(*input)(ai_handle handle, uint32_t index);
  void *(*output)(ai_handle handle, uint32_t index);
  void (*set_observer)(ai_handle handle, ef_observer observer, void *ctx);
  void (*reset)(ai_handle handle);
} ef_model;

#if defined(__GNUC__)
#define EF_SECTION(s) __attribute__((section(s)))
#define EF_ALIGNED(n) __attribute__((aligned(n)))
#define EF_USED __attribute__((used))
#else
#define EF_SECTION(s)
#define EF_ALIGNED(n)
#define EF_USED
#endif

/* ---- kernel parameters (const structs in flash, one per layer) ------------------------------- */

typedef struct {
  const int32_t *mult; /* per output channel, or one value when per_channel == 0 */
  const int8_t *shift;
  uint8_t per_channel;
} ef_requant;

/* Matrix product of int8 rows against int8 weight rows (conv as im2col, fully connected).
 * bias already holds bias + input_offset * sum(weights of that row). */
typedef struct {
  const int8_t *weights; /* n rows of k */
  const int32_t *bias;   /* n values (input offset folded in) */
  ef_requant q;
  uint16_t k, n;
  int16_t out_zp;
  int16_t act_min, act_max;
} ef_gemm;

typedef struct {
  ef_gemm g; /* weights OHWI: row oc holds (kh, kw, ic) like an im2col patch */
  uint16_t in_h, in_w, in_c, out_h, out_w;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w;
  int16_t pad_top, pad_left;
  int16_t in_zp; /* fills padded taps: with the folded bias they then add nothing, as in TFLM */
} ef_conv_params;

typedef struct {
  const int8_t *weights; /* (kh, kw, out_c) */
  const int32_t *bias;   /* out_c values (plain bias: padded taps are skipped, not folded) */
  ef_requant q;
  uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, depth_mult;
  int16_t pad_top, pad_left;
  int16_t in_offset, out_zp, act_min, act_max;
} ef_dwconv_params;

typedef struct {
  ef_gemm g;
  uint16_t batches;
} ef_fc_params;

typedef struct {
  uint16_t in_h, in_w, c, out_h, out_w, batches;
  uint8_t k_h, k_w, stride_h, stride_w;
  int16_t pad_top, pad_left;
  int16_t act_min, act_max;
} ef_pool_params;

/* Elementwise binary op with broadcasting over up to 4 dims (strides of 0 broadcast). */
typedef struct {
  uint16_t out_shape[4];
  uint32_t stride1[4], stride2[4];
  int32_t in1_offset, in2_offset, out_offset;
  int32_t in1_mult, in2_mult, out_mult;
  int8_t in1_shift, in2_shift, out_shift, left_shift;
  int16_t act_min, act_max;
} ef_binary_params;

typedef struct {
  uint32_t outer, depth;
  int32_t input_multiplier;
  int32_t input_left_shift;
  int32_t diff_min;
} ef_softmax_params;

typedef struct {
  uint32_t size;
  int32_t in_zp, range_radius, input_multiplier, input_left_shift;
} ef_logistic_params;

/* Strided copy of up to 5 dims (slice, strided slice, split, pad source); elem bytes each. */
typedef struct {
  uint32_t count[5];
  int32_t in_stride[5];  /* in elements, per step of the output index */
  uint32_t in_start;     /* element offset of the first copied element */
  uint8_t elem;
} ef_copy_params;

typedef struct {
  uint32_t outer;
  uint8_t n_inputs;
  uint32_t inner[8]; /* bytes each input contributes per outer step */
} ef_concat_params;

typedef struct {
  uint32_t count[5];     /* the input's shape, padded to 5 dims */
  int32_t out_stride[5]; /* where each input step lands in the output, in elements */
  uint32_t out_start;    /* element offset of the input block in the output */
  uint32_t out_size;     /* elements */
  int32_t pad_value;
  uint8_t elem;
} ef_pad_params;

typedef struct {
  uint32_t outer, reduce, inner;
  int32_t in_zp, out_zp, mult, shift;
  int32_t act_min, act_max;
} ef_mean_params;

typedef struct {
  uint32_t size;
  int32_t in_zp, out_zp, mult, shift;
  uint8_t in_type, out_type; /* EF_INT8 / EF_UINT8 / EF_INT16 */
  uint8_t flip_sign;         /* int8 <-> uint8 with the same scale: TFLM's xor 0x80 path */
} ef_requantize_params;

typedef struct {
  uint32_t size;
  int32_t zp;
  float scale; /* only models with float inputs/outputs use these two kernels */
} ef_float_params;

/* ---- kernels --------------------------------------------------------------------------------- */

void ef_conv_s8(const ef_conv_params *p, const int8_t *in, int8_t *out, int8_t *scratch);
void ef_dwconv_s8(const ef_dwconv_params *p, const int8_t *in, int8_t *out);
void ef_fc_s8(const ef_fc_params *p, const int8_t *in, int8_t *out);
void ef_avgpool_s8(const ef_pool_params *p, const int8_t *in, int8_t *out);
void ef_maxpool_s8(const ef_pool_params *p, const int8_t *in, int8_t *out);
void ef_add_s8(const ef_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ef_mul_s8(const ef_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ef_softmax_s8(const ef_softmax_params *p, const int8_t *in, int8_t *out);
void ef_logistic_s8(const ef_logistic_params *p, const int8_t *in, int8_t *out);
void ef_copy(const ef_copy_params *p, const void *in, void *out);
void ef_concat(const ef_concat_params *p, const void *const *in, void *out);
void ef_pad(const ef_pad_params *p, const void *in, void *out);
void ef_mean_s8(const ef_mean_params *p, const int8_t *in, int8_t *out);
void ef_requantize(const ef_requantize_params *p, const void *in, void *out);
void ef_quantize_f32(const ef_float_params *p, const float *in, int8_t *out);
void ef_dequantize_s8(const ef_float_params *p, const int8_t *in, float *out);

void ef_memcpy(void *dst, const void *src, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* EF_RUNTIME_H */
