/* emberflow int8 kernels: TFLite-Micro reference arithmetic, restructured for speed.
 *
 * Convolutions and fully connected layers are one matrix product: rows of int8 inputs (an
 * im2col patch, or the pixel itself for a 1x1 convolution) against rows of int8 weights. The
 * compiler folds `input_offset * sum(weights)` into the bias, so the inner loop multiplies raw
 * int8 values; padded taps are filled with the input zero point, which then contributes
 * exactly nothing, as TFLM's skipped taps do. Products are accumulated in int32 with
 * wrap-around, like TFLM's accumulator, so results are equal bit for bit.
 */
#include <string.h>

#include "ef_fixedpoint.h"
#include "ef_runtime.h"

#if defined(__ARM_FEATURE_DSP) && !defined(EF_KERNELS_PORTABLE)
#define EF_KERNELS_DSP 1
#include <arm_acle.h>
#define EF_SXTB16(x) ((uint32_t)__sxtb16((int32_t)(x)))
/* GCC does not fold a rotate into SXTB16's ROR #8 operand: say it in assembly */
static inline uint32_t ef_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
#define EF_SXTB16_ROR8(x) ef_sxtb16_ror8(x)
#define EF_SMLAD(x, y, acc) __smlad((int16x2_t)(x), (int16x2_t)(y), (acc))
#define EF_SMLABB(x, y, acc) __smlabb((int32_t)(x), (int32_t)(y), (acc))
#define EF_SMLATT(x, y, acc) __smlatt((int32_t)(x), (int32_t)(y), (acc))
#define EF_SADD16(x, y) ((uint32_t)__sadd16((int16x2_t)(x), (int16x2_t)(y)))
#elif defined(EF_EMULATE_DSP)
/* The DSP code path on a host, to test its logic without a board. */
#define EF_KERNELS_DSP 1
static inline uint32_t ef_pack16(int32_t lo, int32_t hi) { return ((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16); }
static inline int32_t ef_lo16(uint32_t x) { return (int16_t)(x & 0xffff); }
static inline int32_t ef_hi16(uint32_t x) { return (int16_t)(x >> 16); }
#define EF_SXTB16(x) ef_pack16((int8_t)((x) & 0xff), (int8_t)(((x) >> 16) & 0xff))
#define EF_SXTB16_ROR8(x) ef_pack16((int8_t)(((x) >> 8) & 0xff), (int8_t)(((x) >> 24) & 0xff))
#define EF_SMLAD(x, y, acc) \
  ((int32_t)((uint32_t)(acc) + (uint32_t)(ef_lo16(x) * ef_lo16(y)) + (uint32_t)(ef_hi16(x) * ef_hi16(y))))
#define EF_SMLABB(x, y, acc) ((int32_t)((uint32_t)(acc) + (uint32_t)(ef_lo16(x) * ef_lo16(y))))
#define EF_SMLATT(x, y, acc) ((int32_t)((uint32_t)(acc) + (uint32_t)(ef_hi16(x) * ef_hi16(y))))
#define EF_SADD16(x, y) ef_pack16(ef_lo16(x) + ef_lo16(y), ef_hi16(x) + ef_hi16(y))
#endif

void ef_memcpy(void *dst, const void *src, uint32_t n) {
  if (dst != src) memcpy(dst, src, n);
}

#if defined(EF_KERNELS_DSP)
static inline uint32_t ef_read32(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4); /* one LDR: Cortex-M3+ loads unaligned words */
  return v;
}
#endif

/* Requantize an accumulator of output channel ch. Kernels copy their parameters into locals
 * first: an int8 store may alias anything, so fields read through a pointer would be reloaded
 * after every output byte. */
#define EF_REQUANT(acc, ch) \
  ((int8_t)ef_clamp(ef_mbqm_pos((acc), mult[(ch) * qs], shift[(ch) * qs]) + zp, lo, hi))

/* out0 = row0 x W^T (+ out1 = row1 x W^T when row1 != NULL), requantized. */
static void ef_gemm_rows(const ef_gemm *g, const int8_t *row0, const int8_t *row1, int8_t *out0, int8_t *out1) {
  const uint32_t k = g->k, n = g->n, qs = g->q.per_channel;
  const int8_t *w = g->weights, *shift = g->q.shift;
  const int32_t *bias = g->bias, *mult = g->q.mult;
  const int32_t zp = g->out_zp, lo = g->act_min, hi = g->act_max;
  uint32_t oc = 0;
  if (row1) {
    for (; oc + 2 <= n; oc += 2, w += 2 * k) {
      const int8_t *w0 = w, *w1 = w + k;
      int32_t a00 = bias[oc], a01 = bias[oc + 1], a10 = a00, a11 = a01;
      uint32_t i = 0;
#if defined(EF_KERNELS_DSP)
      {
        const int8_t *p0 = row0, *p1 = row1, *q0 = w0, *q1 = w1;
        uint32_t blocks = k >> 2;
        for (; blocks; --blocks, p0 += 4, p1 += 4, q0 += 4, q1 += 4) {
          const uint32_t x0 = ef_read32(p0), x1 = ef_read32(p1);
          const uint32_t x0l = EF_SXTB16(x0), x0h = EF_SXTB16_ROR8(x0);
          const uint32_t x1l = EF_SXTB16(x1), x1h = EF_SXTB16_ROR8(x1);
          uint32_t y = ef_read32(q0), yl = EF_SXTB16(y), yh = EF_SXTB16_ROR8(y);
          a00 = EF_SMLAD(x0l, yl, a00);
          a00 = EF_SMLAD(x0h, yh, a00);
          a10 = EF_SMLAD(x1l, yl, a10);
          a10 = EF_SMLAD(x1h, yh, a10);
          y = ef_read32(q1);
          yl = EF_SXTB16(y);
          yh = EF_SXTB16_ROR8(y);
          a01 = EF_SMLAD(x0l, yl, a01);
          a01 = EF_SMLAD(x0h, yh, a01);
          a11 = EF_SMLAD(x1l, yl, a11);
          a11 = EF_SMLAD(x1h, yh, a11);
        }
        i = k & ~3u;
      }
#endif
      for (; i < k; ++i) {
        const int32_t x0 = row0[i], x1 = row1[i], y0 = w0[i], y1 = w1[i];
        a00 += x0 * y0;
        a01 += x0 * y1;
        a10 += x1 * y0;
        a11 += x1 * y1;
      }
      out0[oc] = EF_REQUANT(a00, oc);
      out1[oc] = EF_REQUANT(a10, oc);
      out0[oc + 1] = EF_REQUANT(a01, oc + 1);
      out1[oc + 1] = EF_REQUANT(a11, oc + 1);
    }
  } else {
    for (; oc + 2 <= n; oc += 2, w += 2 * k) {
      const int8_t *w0 = w, *w1 = w + k;
      int32_t a0 = bias[oc], a1 = bias[oc + 1];
      uint32_t i = 0;
#if defined(EF_KERNELS_DSP)
      {
        const int8_t *p0 = row0, *q0 = w0, *q1 = w1;
        uint32_t blocks = k >> 2;
        for (; blocks; --blocks, p0 += 4, q0 += 4, q1 += 4) {
          const uint32_t x = ef_read32(p0), y0 = ef_read32(q0), y1 = ef_read32(q1);
          const uint32_t xl = EF_SXTB16(x), xh = EF_SXTB16_ROR8(x);
          a0 = EF_SMLAD(xl, EF_SXTB16(y0), a0);
          a0 = EF_SMLAD(xh, EF_SXTB16_ROR8(y0), a0);
          a1 = EF_SMLAD(xl, EF_SXTB16(y1), a1);
          a1 = EF_SMLAD(xh, EF_SXTB16_ROR8(y1), a1);
        }
        i = k & ~3u;
      }
#endif
      for (; i < k; ++i) {
        a0 += row0[i] * w0[i];
        a1 += row0[i] * w1[i];
      }
      out0[oc] = EF_REQUANT(a0, oc);
      out0[oc + 1] = EF_REQUANT(a1, oc + 1);
    }
  }
  for (; oc < n; ++oc, w += k) { /* odd last row */
    int32_t a0 = bias[oc], a1 = a0;
    uint32_t i;
    for (i = 0; i < k; ++i) {
      a0 += row0[i] * w[i];
      if (row1) a1 += row1[i] * w[i];
    }
    out0[oc] = EF_REQUANT(a0, oc);
    if (row1) out1[oc] = EF_REQUANT(a1, oc);
  }
}

/* The (kh, kw, ic) patch of output pixel (oy, ox): a pointer into the input when the patch is
 * contiguous there (1x1 kernels, full-width kernels), else gathered into `buf`. */
static const int8_t *ef_patch(const ef_conv_params *p, const int8_t *in, uint32_t oy, uint32_t ox, int8_t *buf) {
  const int32_t y0 = (int32_t)(oy * p->stride_h) - p->pad_top;
  const int32_t x0 = (int32_t)(ox * p->stride_w) - p->pad_left;
  const uint32_t c = p->in_c;
  const int32_t y_last = y0 + (p->k_h - 1) * p->dil_h, x_last = x0 + (p->k_w - 1) * p->dil_w;
  const int inside = y0 >= 0 && x0 >= 0 && y_last < p->in_h && x_last < p->in_w;
  /* one row of taps, or taps spanning whole rows: the patch is a contiguous run of the input */
  if (inside && p->dil_w == 1 && (p->k_h == 1 || (p->k_w == p->in_w && p->dil_h == 1)))
    return in + ((uint32_t)y0 * p->in_w + (uint32_t)x0) * c;
  {
    int8_t *dst = buf;
    uint32_t ky, kx;
    for (ky = 0; ky < p->k_h; ++ky) {
      const int32_t y = y0 + (int32_t)(ky * p->dil_h);
      for (kx = 0; kx < p->k_w; ++kx, dst += c) {
        const int32_t x = x0 + (int32_t)(kx * p->dil_w);
        if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w)
          memset(dst, (uint8_t)p->in_zp, c);
        else
          memcpy(dst, in + ((uint32_t)y * p->in_w + (uint32_t)x) * c, c);
      }
    }
    return buf;
  }
}

void ef_conv_s8(const ef_conv_params *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const uint32_t pixels = (uint32_t)p->out_h * p->out_w, n = p->g.n, k = p->g.k;
  uint32_t px = 0;
  for (; px + 2 <= pixels; px += 2) {
    const int8_t *r0 = ef_patch(p, in, px / p->out_w, px % p->out_w, scratch);
    const int8_t *r1 = ef_patch(p, in, (px + 1) / p->out_w, (px + 1) % p->out_w, scratch + k);
    ef_gemm_rows(&p->g, r0, r1, out + px * n, out + (px + 1) * n);
  }
  if (px < pixels) ef_gemm_rows(&p->g, ef_patch(p, in, px / p->out_w, px % p->out_w, scratch), 0, out + px * n, 0);
}

void ef_fc_s8(const ef_fc_params *p, const int8_t *in, int8_t *out) {
  const uint32_t k = p->g.k, n = p->g.n;
  uint32_t b = 0;
  for (; b + 2 <= p->batches; b += 2) ef_gemm_rows(&p->g, in + b * k, in + (b + 1) * k, out + b * n, out + (b + 1) * n);
  if (b < p->batches) ef_gemm_rows(&p->g, in + b * k, 0, out + b * n, 0);
}

/* Taps [first, last) of a kernel of k taps, dilation d, starting at o, that land inside [0, size). */
static inline void ef_valid_taps(int32_t o, uint32_t k, uint32_t d, int32_t size, uint32_t *first, uint32_t *last) {
  const int32_t f = o >= 0 ? 0 : (-o + (int32_t)d - 1) / (int32_t)d;
  const int32_t l = size - o <= 0 ? 0 : (size - o + (int32_t)d - 1) / (int32_t)d;
  *first = (uint32_t)f;
  *last = (uint32_t)(l < (int32_t)k ? (l > f ? l : f) : (int32_t)k);
}

void ef_dwconv_s8(const ef_dwconv_params *p, const int8_t *in, int8_t *out) {
  const uint32_t in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult, qs = p->q.per_channel;
  const int32_t *mult = p->q.mult, *bias = p->bias;
  const int8_t *shift = p->q.shift;
  const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max, in_offset = p->in_offset;
  uint32_t oy, ox, oc;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t y0 = (int32_t)(oy * p->stride_h) - p->pad_top;
    uint32_t ky0, ky1;
    ef_valid_taps(y0, p->k_h, p->dil_h, p->in_h, &ky0, &ky1);
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t x0 = (int32_t)(ox * p->stride_w) - p->pad_left;
      int8_t *o = out + (oy * p->out_w + ox) * out_c;
      uint32_t kx0, kx1;
      ef_valid_taps(x0, p->k_w, p->dil_w, p->in_w, &kx0, &kx1);
      oc = 0;
#if defined(EF_KERNELS_DSP)
      if (dm == 1) {
        /* four channels at a time: SXTB16 splits (c0, c2) and (c1, c3), SMLABB/SMLATT accumulate */
        const uint32_t offset2 = ((uint32_t)(uint16_t)in_offset) * 0x10001u;
        const uint32_t in_step = p->dil_w * in_c;
        for (; oc + 4 <= out_c; oc += 4) {
          int32_t a0 = bias[oc], a1 = bias[oc + 1], a2 = bias[oc + 2], a3 = bias[oc + 3];
          uint32_t ky, kx;
          for (ky = ky0; ky < ky1; ++ky) {
            const int32_t y = y0 + (int32_t)(ky * p->dil_h);
            const int8_t *ip = in + ((uint32_t)y * p->in_w + (uint32_t)(x0 + (int32_t)(kx0 * p->dil_w))) * in_c + oc;
            const int8_t *wp = p->weights + (ky * p->k_w + kx0) * out_c + oc;
            for (kx = kx0; kx < kx1; ++kx, ip += in_step, wp += out_c) {
              const uint32_t xv = ef_read32(ip), wv = ef_read32(wp);
              const uint32_t xl = EF_SADD16(EF_SXTB16(xv), offset2), xh = EF_SADD16(EF_SXTB16_ROR8(xv), offset2);
              const uint32_t wl = EF_SXTB16(wv), wh = EF_SXTB16_ROR8(wv);
              a0 = EF_SMLABB(xl, wl, a0);
              a2 = EF_SMLATT(xl, wl, a2);
              a1 = EF_SMLABB(xh, wh, a1);
              a3 = EF_SMLATT(xh, wh, a3);
            }
          }
          o[oc] = EF_REQUANT(a0, oc);
          o[oc + 1] = EF_REQUANT(a1, oc + 1);
          o[oc + 2] = EF_REQUANT(a2, oc + 2);
          o[oc + 3] = EF_REQUANT(a3, oc + 3);
        }
      }
#endif
      for (; oc < out_c; ++oc) {
        const uint32_t ic = oc / dm;
        int32_t acc = bias[oc];
        uint32_t ky, kx;
        for (ky = ky0; ky < ky1; ++ky) {
          const int32_t y = y0 + (int32_t)(ky * p->dil_h);
          for (kx = kx0; kx < kx1; ++kx) {
            const int32_t x = x0 + (int32_t)(kx * p->dil_w);
            acc += (in[((uint32_t)y * p->in_w + (uint32_t)x) * in_c + ic] + in_offset) *
                   p->weights[(ky * p->k_w + kx) * out_c + oc];
          }
        }
        o[oc] = EF_REQUANT(acc, oc);
      }
    }
  }
}

static void ef_pool(const ef_pool_params *p, const int8_t *in, int8_t *out, int is_max) {
  uint32_t b, oy, ox, c;
  const uint32_t ch = p->c;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *img = in + (uint32_t)b * p->in_h * p->in_w * ch;
    for (oy = 0; oy < p->out_h; ++oy) {
      const int32_t y0 = (int32_t)(oy * p->stride_h) - p->pad_top;
      const int32_t fy0 = y0 < 0 ? -y0 : 0;
      const int32_t fy1 = (p->in_h - y0) < p->k_h ? (p->in_h - y0) : p->k_h;
      for (ox = 0; ox < p->out_w; ++ox) {
        const int32_t x0 = (int32_t)(ox * p->stride_w) - p->pad_left;
        const int32_t fx0 = x0 < 0 ? -x0 : 0;
        const int32_t fx1 = (p->in_w - x0) < p->k_w ? (p->in_w - x0) : p->k_w;
        const int32_t count = (fy1 - fy0) * (fx1 - fx0);
        int8_t *o = out + (((uint32_t)b * p->out_h + oy) * p->out_w + ox) * ch;
        for (c = 0; c < ch; ++c) {
          int32_t acc = is_max ? -128 : 0, fy, fx;
          for (fy = fy0; fy < fy1; ++fy) {
            const int8_t *row = img + ((uint32_t)(y0 + fy) * p->in_w) * ch + c;
            for (fx = fx0; fx < fx1; ++fx) {
              const int32_t v = row[(uint32_t)(x0 + fx) * ch];
              if (is_max) {
                if (v > acc) acc = v;
              } else {
                acc += v;
              }
            }
          }
          if (!is_max && count > 0) /* round half away from zero, as TFLM does */
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          o[c] = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}

void ef_avgpool_s8(const ef_pool_params *p, const int8_t *in, int8_t *out) { ef_pool(p, in, out, 0); }
void ef_maxpool_s8(const ef_pool_params *p, const int8_t *in, int8_t *out) { ef_pool(p, in, out, 1); }

static void ef_binary(const ef_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out, int is_mul) {
  uint32_t i0, i1, i2, i3;
  const uint16_t *sh = p->out_shape;
  for (i0 = 0; i0 < sh[0]; ++i0)
    for (i1 = 0; i1 < sh[1]; ++i1)
      for (i2 = 0; i2 < sh[2]; ++i2) {
        const uint32_t base1 = i0 * p->stride1[0] + i1 * p->stride1[1] + i2 * p->stride1[2];
        const uint32_t base2 = i0 * p->stride2[0] + i1 * p->stride2[1] + i2 * p->stride2[2];
        for (i3 = 0; i3 < sh[3]; ++i3) {
          const int32_t x = a[base1 + i3 * p->stride1[3]] + p->in1_offset;
          const int32_t y = b[base2 + i3 * p->stride2[3]] + p->in2_offset;
          int32_t r;
          if (is_mul) {
            r = ef_mbqm(x * y, p->out_mult, p->out_shift) + p->out_offset;
          } else {
            const int32_t sx = ef_mbqm_small(ef_shl(x, p->left_shift), p->in1_mult, p->in1_shift);
            const int32_t sy = ef_mbqm_small(ef_shl(y, p->left_shift), p->in2_mult, p->in2_shift);
            r = ef_mbqm_small(sx + sy, p->out_mult, p->out_shift) + p->out_offset;
          }
          *out++ = (int8_t)ef_clamp(r, p->act_min, p->act_max);
        }
      }
}

void ef_add_s8(const ef_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out) { ef_binary(p, a, b, out, 0); }
void ef_mul_s8(const ef_binary_params *p, const int8_t *a, const int8_t *b, int8_t *out) { ef_binary(p, a, b, out, 1); }

/* 1/x for x in Q(ibits).(31-ibits), as a Q0.31 significand and the bits above one. */
static int32_t ef_reciprocal(int32_t x, int32_t ibits, int32_t *bits_over_unit) {
  const int32_t headroom_plus_one = ef_clz((uint32_t)x);
  const int32_t shifted_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - (1u << 31));
  *bits_over_unit = ibits - headroom_plus_one;
  return ef_one_over_one_plus_x(shifted_minus_one);
}

void ef_softmax_s8(const ef_softmax_params *p, const int8_t *in, int8_t *out) {
  enum { kScaledDiffBits = 5, kAccumBits = 12 };
  uint32_t i, c;
  for (i = 0; i < p->outer; ++i, in += p->depth, out += p->depth) {
    int32_t max = -128, sum = 0, bits_over_unit, scale, exponent;
    for (c = 0; c < p->depth; ++c)
      if (in[c] > max) max = in[c];
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = in[c] - max;
      if (diff >= p->diff_min) {
        const int32_t scaled = ef_mbqm_big(diff, p->input_multiplier, p->input_left_shift);
        sum += ef_rescale(ef_exp_neg(scaled, kScaledDiffBits), 0 - kAccumBits);
      }
    }
    scale = ef_reciprocal(sum, kAccumBits, &bits_over_unit);
    exponent = bits_over_unit + 31 - 8;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = in[c] - max;
      if (diff >= p->diff_min) {
        const int32_t scaled = ef_mbqm_big(diff, p->input_multiplier, p->input_left_shift);
        const int32_t e = ef_exp_neg(scaled, kScaledDiffBits);
        const int32_t unsat = ef_rdbpot(ef_srdhm(scale, e), exponent);
        out[c] = (int8_t)ef_clamp(unsat - 128, -128, 127);
      } else {
        out[c] = -128;
      }
    }
  }
}

void ef_logistic_s8(const ef_logistic_params *p, const int8_t *in, int8_t *out) {
  uint32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t x = in[i] - p->in_zp;
    if (x <= -p->range_radius) {
      out[i] = -128;
    } else if (x >= p->range_radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = ef_mbqm(x, p->input_multiplier, p->input_left_shift);
      const int32_t q0 = ef_logistic_fp(q4, 4);
      out[i] = (int8_t)ef_clamp(ef_rdbpot(q0, 23) - 128, -128, 127);
    }
  }
}

void ef_copy(const ef_copy_params *p, const void *in, void *out) {
  const uint8_t *src = (const uint8_t *)in + (size_t)p->in_start * p->elem;
  uint8_t *dst = (uint8_t *)out;
  const uint32_t e = p->elem;
  uint32_t i0, i1, i2, i3;
  for (i0 = 0; i0 < p->count[0]; ++i0)
    for (i1 = 0; i1 < p->count[1]; ++i1)
      for (i2 = 0; i2 < p->count[2]; ++i2)
        for (i3 = 0; i3 < p->count[3]; ++i3) {
          const uint8_t *s = src + ((int32_t)i0 * p->in_stride[0] + (int32_t)i1 * p->in_stride[1] +
                                    (int32_t)i2 * p->in_stride[2] + (int32_t)i3 * p->in_stride[3]) * (int32_t)e;
          if (p->in_stride[4] == 1) { /* innermost run is contiguous */
            memcpy(dst, s, p->count[4] * e);
            dst += p->count[4] * e;
          } else {
            uint32_t i4;
            for (i4 = 0; i4 < p->count[4]; ++i4, dst += e) memcpy(dst, s + (int32_t)i4 * p->in_stride[4] * (int32_t)e, e);
          }
        }
}

void ef_concat(const ef_concat_params *p, const void *const *in, void *out) {
  uint8_t *dst = (uint8_t *)out;
  uint32_t o, j;
  for (o = 0; o < p->outer; ++o)
    for (j = 0; j < p->n_inputs; ++j) {
      memcpy(dst, (const uint8_t *)in[j] + o * p->inner[j], p->inner[j]);
      dst += p->inner[j];
    }
}

void ef_pad(const ef_pad_params *p, const void *in, void *out) {
  const uint8_t *src = (const uint8_t *)in;
  uint8_t *o = (uint8_t *)out;
  const uint32_t e = p->elem;
  uint32_t i, i0, i1, i2, i3, i4;
  if (e == 1) {
    memset(o, (uint8_t)p->pad_value, p->out_size);
  } else {
    for (i = 0; i < p->out_size; ++i) memcpy(o + i * e, &p->pad_value, e);
  }
  for (i0 = 0; i0 < p->count[0]; ++i0)
    for (i1 = 0; i1 < p->count[1]; ++i1)
      for (i2 = 0; i2 < p->count[2]; ++i2)
        for (i3 = 0; i3 < p->count[3]; ++i3) {
          uint8_t *row = o + ((int32_t)p->out_start + (int32_t)i0 * p->out_stride[0] + (int32_t)i1 * p->out_stride[1] +
                              (int32_t)i2 * p->out_stride[2] + (int32_t)i3 * p->out_stride[3]) * (int32_t)e;
          for (i4 = 0; i4 < p->count[4]; ++i4, src += e) memcpy(row + (int32_t)i4 * p->out_stride[4] * (int32_t)e, src, e);
        }
}

void ef_mean_s8(const ef_mean_params *p, const int8_t *in, int8_t *out) {
  uint32_t o, r, i;
  for (o = 0; o < p->outer; ++o)
    for (i = 0; i < p->inner; ++i) {
      int32_t sum = 0, v;
      const int8_t *x = in + o * p->reduce * p->inner + i;
      for (r = 0; r < p->reduce; ++r) sum += x[r * p->inner];
      sum -= p->in_zp * (int32_t)p->reduce;
      v = ef_mbqm(sum, p->mult, p->shift) + p->out_zp;
      *out++ = (int8_t)ef_clamp(v, p->act_min, p->act_max);
    }
}

static int32_t ef_load(const void *p, uint32_t i, uint8_t type) {
  switch (type) {
    case EF_UINT8: return ((const uint8_t *)p)[i];
    case EF_INT16: return ((const int16_t *)p)[i];
    case EF_INT32: return ((const int32_t *)p)[i];
    default: return ((const int8_t *)p)[i];
  }
}

static void ef_store(void *p, uint32_t i, uint8_t type, int32_t v) {
  switch (type) {
    case EF_UINT8: ((uint8_t *)p)[i] = (uint8_t)ef_clamp(v, 0, 255); break;
    case EF_INT16: ((int16_t *)p)[i] = (int16_t)ef_clamp(v, -32768, 32767); break;
    case EF_INT32: ((int32_t *)p)[i] = v; break;
    default: ((int8_t *)p)[i] = (int8_t)ef_clamp(v, -128, 127); break;
  }
}

void ef_requantize(const ef_requantize_params *p, const void *in, void *out) {
  uint32_t i;
  if (p->flip_sign) {
    for (i = 0; i < p->size; ++i) ((uint8_t *)out)[i] = (uint8_t)(((const uint8_t *)in)[i] ^ 0x80u);
    return;
  }
  for (i = 0; i < p->size; ++i)
    ef_store(out, i, p->out_type, ef_mbqm(ef_load(in, i, p->in_type) - p->in_zp, p->mult, p->shift) + p->out_zp);
}

#if !defined(EF_NO_FLOAT_IO)
/* Only for models whose graph inputs or outputs are float: the one place the runtime uses float. */

/* std::round of a float quotient (halves away from zero), as TFLM's AffineQuantize does after
 * dividing in float. Without libm: the fraction a - trunc(a) of a float is exact (Sterbenz), so
 * the comparison with 0.5 is too; adding 0.5 first would round 0.49999997 up to 1. Quotients
 * beyond +-512 clamp to the int8 range whatever the zero point, so they saturate there, and NaN
 * gives 0 (the zero point): TFLM casts such values to int32 out of range, which is undefined
 * (x86 gives INT_MIN, Arm saturates), so they are outside the bit-exact guarantee. */
static int32_t ef_round_half_away(float v) {
  float a;
  int32_t t;
  if (v != v) return 0;
  if (v > 512.0f) return 512;
  if (v < -512.0f) return -512;
  a = v < 0.0f ? -v : v;
  t = (int32_t)a;
  if (a - (float)t >= 0.5f) ++t;
  return v < 0.0f ? -t : t;
}

void ef_quantize_f32(const ef_float_params *p, const float *in, int8_t *out) {
  uint32_t i;
  for (i = 0; i < p->size; ++i)
    out[i] = (int8_t)ef_clamp(ef_round_half_away(in[i] / p->scale) + p->zp, -128, 127);
}

void ef_dequantize_s8(const ef_float_params *p, const int8_t *in, float *out) {
  uint32_t i;
  for (i = 0; i < p->size; ++i) out[i] = (float)(in[i] - p->zp) * p->scale;
}
#endif
