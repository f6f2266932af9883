"""Requantization math, computed on the host exactly as TFLite / TFLM compute it.

Scales in a .tflite are float32; TFLite converts them to double at the points noted
below, and those points matter for bit-exactness.
"""

from __future__ import annotations

import math

import numpy as np

from tinyq.errors import UnsupportedModelError


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^shift with q a Q0.31 int32 in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > 31:
        # x * 2^shift cannot be formed in int32 (TFLite's kernels overflow the same way): no model a
        # converter makes has such a ratio of scales, only a damaged or hand-edited one.
        raise UnsupportedModelError(f"a requantization factor of {m:.3g} (input scale x weight scale / output "
                                    "scale): past what int32 fixed point can hold",
                                    hint="the model's quantization scales are not a converter's: re-convert it")
    return int(q_fixed), int(shift)


def per_channel_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int):
    """PopulateConvolutionQuantizationParams: double(in) * double(filter_c) / double(out)."""
    scales = list(filter_scales) if len(filter_scales) > 1 else [filter_scales[0]] * channels
    pairs = [quantize_multiplier(float(input_scale) * float(s) / float(output_scale)) for s in scales]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def per_tensor_fc_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler: the scale product is taken in float32, then double."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / float(output_scale))


def _quantize_float(scale: float, zero_point: int, f: float) -> int:
    # TfLiteRound(f / scale) in float32
    return zero_point + tflite_round(float(np.float32(f) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation."""
    if activation == "RELU":
        return max(qmin, _quantize_float(scale, zero_point, 0.0)), qmax
    if activation == "RELU6":
        return max(qmin, _quantize_float(scale, zero_point, 0.0)), min(qmax, _quantize_float(scale, zero_point, 6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, _quantize_float(scale, zero_point, -1.0)), min(qmax, _quantize_float(scale, zero_point, 1.0))
    if activation in ("NONE", None):
        return qmin, qmax
    raise ValueError(f"fused activation {activation} has no int8 range")


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """ComputePaddingHeightWidth: the leading padding (the odd pixel goes at the end)."""
    effective = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective - in_size
    return max(total, 0) // 2


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius for int8 (Q5.26 differences)."""
    integer_bits = 5
    real = min(beta * input_scale * (1 << (31 - integer_bits)), float((1 << 31) - 1))
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        # TFLM's CalculateInputRadius shifts by a negative amount here (undefined; it aborts on some models):
        # a limit of int8 softmax, not a damaged file.
        raise UnsupportedModelError(
            f"SOFTMAX's input scale {input_scale:.3g} is too small for an int8 softmax (TFLM's kernel cannot scale "
            f"it either): the values before it span only {255 * input_scale:.3g}",
            hint="an untrained model (random weights) gives its softmax tiny inputs: train it, or calibrate with "
                 "data that reach its real outputs")
    max_rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    diff_min = -int(math.floor(max_rescaled))
    return mult, left_shift, diff_min


def wrap_int32(v: int) -> int:
    """``v`` as C's int32 arithmetic leaves it (two's complement wrap)."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def multiply_by_quantized_multiplier(x: int, mult: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier on int32 (left shift wraps; double rounding), exactly."""
    left, right = max(shift, 0), max(-shift, 0)
    x = wrap_int32(x << left)
    if x == mult == -(1 << 31):
        t = (1 << 31) - 1
    else:
        t = (x * mult + (1 << 30)) >> 31  # = SaturatingRoundingDoublingHighMul (see tq_sat_rdh_mul)
    mask = (1 << right) - 1
    return (t >> right) + (1 if (t & mask) > (mask >> 1) + (1 if t < 0 else 0) else 0)
