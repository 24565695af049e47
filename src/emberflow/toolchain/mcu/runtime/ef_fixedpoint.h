/* Integer fixed-point arithmetic with TFLite-Micro's exact rounding (gemmlowp semantics).
 *
 * Written from the published definitions: a rounding doubling high multiply, a rounding
 * arithmetic right shift, and the exp / 1/(1+x) / logistic approximations used by the int8
 * softmax and logistic kernels. Signed overflow is avoided by shifting in uint32_t.
 */
#ifndef EF_FIXEDPOINT_H
#define EF_FIXEDPOINT_H

#include <stdint.h>

#define EF_INLINE static inline

/* (a * b * 2) / 2^32 rounded to nearest; -1 * -1 saturates. Equal to gemmlowp's nudge-and-divide:
 * for negative products, truncating (p + 1 - 2^30) / 2^31 is flooring (p + 2^30) / 2^31. */
EF_INLINE int32_t ef_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * b + (1 << 30)) >> 31);
}

/* x / 2^e rounded to nearest, ties away from zero. */
EF_INLINE int32_t ef_rdbpot(int32_t x, int32_t e) {
  const int32_t mask = (int32_t)((1ll << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

EF_INLINE int32_t ef_shl(int32_t x, int32_t s) { return (int32_t)((uint32_t)x << s); }

/* TFLite's MultiplyByQuantizedMultiplier: x * m * 2^shift, m a Q0.31 significand. */
EF_INLINE int32_t ef_mbqm(int32_t x, int32_t m, int32_t shift) {
#if defined(EF_SINGLE_ROUNDING)
  const int32_t total = 31 - shift;
  return (int32_t)(((int64_t)x * m + (1ll << (total - 1))) >> total);
#else
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  return ef_rdbpot(ef_srdhm(ef_shl(x, left), m), right);
#endif
}

/* The same for a multiplier m >= 0 (every requantization multiplier is): the -1 * -1 saturation
 * of the doubling multiply cannot happen, so it is not tested. */
EF_INLINE int32_t ef_mbqm_pos(int32_t x, int32_t m, int32_t shift) {
#if defined(EF_SINGLE_ROUNDING)
  return ef_mbqm(x, m, shift);
#else
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t high = (int32_t)(((int64_t)ef_shl(x, left) * m + (1 << 30)) >> 31);
  return ef_rdbpot(high, right);
#endif
}

/* ...SmallerThanOneExp (ADD): shift <= 0. */
EF_INLINE int32_t ef_mbqm_small(int32_t x, int32_t m, int32_t shift) {
#if defined(EF_SINGLE_ROUNDING)
  return ef_mbqm(x, m, shift);
#else
  return ef_rdbpot(ef_srdhm(x, m), -shift);
#endif
}

/* ...GreaterThanOne (softmax): shift >= 0. */
EF_INLINE int32_t ef_mbqm_big(int32_t x, int32_t m, int32_t shift) {
#if defined(EF_SINGLE_ROUNDING)
  return ef_mbqm(x, m, shift);
#else
  return ef_srdhm(ef_shl(x, shift), m);
#endif
}

EF_INLINE int32_t ef_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Saturating x * 2^e for a compile-time e > 0 (gemmlowp SaturatingRoundingMultiplyByPOT). */
EF_INLINE int32_t ef_sat_shl(int32_t x, int32_t e) {
  const int32_t threshold = (int32_t)((1u << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return ef_shl(x, e);
}

/* Rescale between fixed-point formats with src/dst integer bits: exponent = src - dst. */
EF_INLINE int32_t ef_rescale(int32_t x, int32_t exponent) {
  if (exponent > 0) return ef_sat_shl(x, exponent);
  if (exponent < 0) return ef_rdbpot(x, -exponent);
  return x;
}

EF_INLINE int32_t ef_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

#define EF_FP_ONE_Q0 INT32_MAX /* 1.0 in a format with 0 integer bits */

/* exp(x) for x in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
EF_INLINE int32_t ef_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;   /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883; /* 1/3 */
  const int32_t x = (int32_t)((uint32_t)a + (1u << 28));
  const int32_t x2 = ef_srdhm(x, x);
  const int32_t x3 = ef_srdhm(x2, x);
  const int32_t x4 = ef_srdhm(x2, x2);
  const int32_t x4_over_4 = ef_rdbpot(x4, 2);
  const int32_t poly = ef_rdbpot((int32_t)((uint32_t)ef_srdhm((int32_t)((uint32_t)x4_over_4 + (uint32_t)x3), constant_1_over_3) +
                                             (uint32_t)x2), 1);
  return (int32_t)((uint32_t)constant_term + (uint32_t)ef_srdhm(constant_term, (int32_t)((uint32_t)x + (uint32_t)poly)));
}

/* exp(a) for a <= 0 in a format with `ibits` integer bits; result Q0.31. */
EF_INLINE int32_t ef_exp_neg(int32_t a, int32_t ibits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t fbits = 31 - ibits;
  const int32_t one_quarter = 1 << (fbits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
  int32_t result = ef_exp_quarter(ef_rescale(a_mod_quarter_minus_quarter, ibits));
  const int32_t remainder = a_mod_quarter_minus_quarter - a;
  int32_t e;
  for (e = -2; e <= 4; ++e) {
    if (ibits > e) {
      const int32_t shift = fbits + e;
      if (remainder & (1 << shift)) result = ef_srdhm(result, multipliers[e + 2]);
    }
  }
  if (ibits > 5) {
    const int32_t clamp = -(1 << (36 - ibits)); /* -32.0 */
    if (a < clamp) result = 0;
  }
  if (a == 0) result = EF_FP_ONE_Q0;
  return result;
}

/* 1 / (1 + x) for x in (0, 1), Q0.31: Newton-Raphson in Q2.29. */
EF_INLINE int32_t ef_one_over_one_plus_x(int32_t a) {
  const int32_t half_denominator = ef_rounding_half_sum(a, EF_FP_ONE_Q0);
  const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;
  int32_t x = (int32_t)((uint32_t)c48_17 + (uint32_t)ef_srdhm(half_denominator, cneg32_17));
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hdx = ef_srdhm(half_denominator, x);
    const int32_t one_minus = (int32_t)((uint32_t)(1 << 29) - (uint32_t)hdx);
    x = (int32_t)((uint32_t)x + (uint32_t)ef_rescale(ef_srdhm(x, one_minus), 2));
  }
  /* ExactMulByPot<-1> then Rescale<0> from 1 integer bit: a saturating shift left by 1. */
  return ef_rescale(x, 1);
}

/* logistic(a) for a in a format with `ibits` integer bits; result Q0.31. */
EF_INLINE int32_t ef_logistic_fp(int32_t a, int32_t ibits) {
  if (a == 0) return 1 << 30;
  {
    const int32_t abs_a = a > 0 ? a : -a;
    const int32_t pos = ef_one_over_one_plus_x(ef_exp_neg(-abs_a, ibits));
    return a > 0 ? pos : (int32_t)((uint32_t)EF_FP_ONE_Q0 - (uint32_t)pos);
  }
}

EF_INLINE int32_t ef_clz(uint32_t x) {
#if defined(__GNUC__)
  return x ? __builtin_clz(x) : 32;
#else
  int32_t n = 0;
  if (!x) return 32;
  while (!(x & 0x80000000u)) { x <<= 1; ++n; }
  return n;
#endif
}

#endif /* EF_FIXEDPOINT_H */
