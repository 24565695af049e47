"""TFLite-Micro's compile-time quantization arithmetic, reproduced exactly.

Bit-exactness starts here: each kernel's multiplier and shift must be the integers TFLM's
Prepare computes, from the same float32 scales widened to double in the same order. The
kernels in `runtime/ef_kernels.c` then do the same integer steps.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MAX = 2**31 - 1
INT_LOWEST = -(2**31)


def round_half_away(x: float) -> int:
    """std::round: halves go away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """QuantizeMultiplier: real = m * 2^shift with m a Q0.31 significand in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if single_rounding and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return int(q_fixed), int(shift)


def per_channel_multipliers(
    in_scale: float, filter_scales: list[float], out_scale: float, channels: int
) -> tuple[list[int], list[int]]:
    """Conv/depthwise: (input * filter) / output in double, per output channel."""
    mults, shifts = [], []
    for c in range(channels):
        f = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(in_scale * f / out_scale)
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def quantize_f32(value: float, scale: float, zero_point: int) -> int:
    """TFLM's Quantize(): zero point + round(value / scale), the division in float32."""
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: int, scale: float, zero_point: int, dtype: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation (0 none, 1 relu, 2 relu_n1_to_1, 3 relu6)."""
    info = np.iinfo(np.dtype(dtype))
    qmin, qmax = int(info.min), int(info.max)
    if activation == 1:
        return max(qmin, quantize_f32(0.0, scale, zero_point)), qmax
    if activation == 3:
        return max(qmin, quantize_f32(0.0, scale, zero_point)), min(qmax, quantize_f32(6.0, scale, zero_point))
    if activation == 2:
        return max(qmin, quantize_f32(-1.0, scale, zero_point)), min(qmax, quantize_f32(1.0, scale, zero_point))
    if activation == 0:
        return qmin, qmax
    raise ValueError(f"fused activation {activation} is not supported")


def add_params(s1: float, s2: float, s_out: float) -> dict[str, int]:
    """ADD (int8): both inputs rescaled to twice the larger scale with 20 bits of headroom."""
    left_shift = 20
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * s_out))
    return {
        "left_shift": left_shift,
        "in1_mult": m1,
        "in1_shift": sh1,
        "in2_mult": m2,
        "in2_shift": sh2,
        "out_mult": mo,
        "out_shift": sho,
    }


def mul_params(s1: float, s2: float, s_out: float) -> dict[str, int]:
    mo, sho = quantize_multiplier(s1 * s2 / s_out)
    return {
        "left_shift": 0,
        "in1_mult": 0,
        "in1_shift": 0,
        "in2_mult": 0,
        "in2_shift": 0,
        "out_mult": mo,
        "out_shift": sho,
    }


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius: the largest input whose rescaled value does not saturate."""
    max_rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return math.floor(max_rescaled)


def softmax_params(beta: float, in_scale: float, single_rounding: bool = False) -> dict[str, int]:
    """PreprocessSoftmaxScaling with 5 integer bits for the scaled difference (Q5.26)."""
    integer_bits = 5
    max_real = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = min(beta * in_scale * (1 << (31 - integer_bits)), max_real)
    mult, shift = quantize_multiplier(real, single_rounding)
    if shift < 0:
        raise ValueError("softmax input scale too small for the int8 kernel")
    return {
        "input_multiplier": mult,
        "input_left_shift": shift,
        "diff_min": -input_radius(integer_bits, shift),
    }


def logistic_params(in_scale: float) -> dict[str, int]:
    """LOGISTIC (int8): input rescaled to Q4.27."""
    integer_bits = 4
    real = in_scale * (1 << (31 - integer_bits))
    q, shift = math.frexp(real)
    return {
        "input_multiplier": round_half_away(q * (1 << 31)),
        "input_left_shift": shift,
        "range_radius": input_radius(integer_bits, shift, 31),
    }


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum folds 1/count into the multiplier with an integer division."""
    mult, shift = quantize_multiplier(in_scale / out_scale)
    s = count.bit_length() - 1  # 63 - CountLeadingZeros(count)
    s = min(s, 32, 31 + shift)
    return int((mult << s) // count), shift - s
