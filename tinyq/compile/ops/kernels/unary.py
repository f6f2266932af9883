"""Unary element-wise int8 operators as 256-entry tables, each a port of its reference kernel's arithmetic.

Every op here maps one input byte to one output byte, so the host evaluates the reference kernel's exact
integer (or float32) arithmetic on all 256 int8 inputs and the device looks the answer up
(tinyq.compile.ops.kernels.lut, firmware/kernels/tq_lut.c). One function per op; each names the file it
ports and returns the table in input order (entry i is the output for the input byte i - 128).

Which reference: tflite_micro where it has an int8 kernel (HARD_SWISH, ELU, ABS, RSQRT); TFLite's
reference kernels (tf.lite.Interpreter with BUILTIN_REF) where only TFLite has one (EXP, LOG, SQRT, GELU).
NEG and SQUARE have no int8 kernel in either (TFLite's converter keeps them in float between a DEQUANTIZE
and a QUANTIZE): they are not lowered, and the op gate refuses them by name.

Float32 steps are done in numpy float32 (IEEE, as the x86-64 reference builds compute them, no FMA), the
transcendental functions through the C library's own expf / logf / tanhf / erfcf (the references call
those; numpy's vectorised versions can differ in the last bit, and a last bit can flip a rounding).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from tinyq.compile.ops import KernelCall, lowering
from tinyq.compile.ops.kernels.lut import lut_call
from tinyq.compile.ops.quant import multiply_by_quantized_multiplier, quantize_multiplier, tflite_round
from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator

f32 = np.float32
INPUTS = range(-128, 128)


# ---- the C library's float functions (what std::exp(float) etc. call) ----

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or None)


def _libm(name: str):
    fn = getattr(_LIBM, name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda x: f32(fn(float(x)))


expf, logf, tanhf, erfcf = _libm("expf"), _libm("logf"), _libm("tanhf"), _libm("erfcf")


# ---- integer helpers, with C's widths ----

def _wrap(v: int, bits: int) -> int:
    """``v`` as a signed ``bits``-bit C integer leaves it (two's complement)."""
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


def _f2i(v) -> int:
    """static_cast<int32_t>(float) as x86-64 computes it (cvttss2si): truncation, and INT32_MIN for NaN or
    a value out of int32's range (the reference's result there: clamped, it is -128)."""
    v = float(v)
    if not math.isfinite(v) or not -2.0 ** 31 <= v < 2.0 ** 31:
        return -(1 << 31)
    return int(v)


def _clamp8(v: int) -> int:
    return max(-128, min(127, v))


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul on int16."""
    if a == b == -32768:
        return 32767
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _wrap(_cdiv(ab + nudge, 1 << 15), 16)


def _sdhm16(a: int, b: int) -> int:
    """reference_ops::SaturatingDoublingHighMul (hard_swish.h): int16, rounding toward zero."""
    if a == b == -32768:
        return 32767
    return _wrap(_cdiv(a * b, 1 << 15), 16)


def _cdiv(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rdiv_pot16(x: int, e: int) -> int:
    """gemmlowp::RoundingDivideByPOT on int16 (every step in int16, as its generic template does)."""
    mask = _wrap((1 << e) - 1, 16)
    remainder = _wrap(x & mask, 16)
    threshold = _wrap((mask >> 1) + (1 if x < 0 else 0), 16)
    return _wrap((x >> e) + (1 if remainder > threshold else 0), 16)


def _rdiv_pot32(x: int, e: int) -> int:
    """gemmlowp::RoundingDivideByPOT on int32."""
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _srdhm32(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul on int32."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _wrap(_cdiv(ab + nudge, 1 << 31), 32)


def _sat_shl32(x: int, e: int) -> int:
    """gemmlowp::SaturatingRoundingMultiplyByPOT<e> for e > 0 on int32."""
    threshold = (1 << (31 - e)) - 1
    if x > threshold:
        return (1 << 31) - 1
    if x < -threshold:
        return -(1 << 31)
    return _wrap(x << e, 32)


def _downscale_int16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier (tensorflow/lite/kernels/internal/common.h)."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return 32767
    return (m + (1 << 15)) >> 16


# ---- the tables ----

def hard_swish_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """HARD_SWISH: tflite-micro tensorflow/lite/micro/kernels/hard_swish_common.cc (HardSwishPrepare: two
    multipliers from float32 ratios, quantized, then scaled down to int16) and
    tensorflow/lite/kernels/internal/reference/hard_swish.h (reference_ops::HardSwish<int8_t>: 16-bit
    fixed point, the "reluish" factor in [0, 1] times the input on the output scale)."""
    hires = f32(1.0 / 128.0) * f32(s_in)
    reluish_scale = f32(3.0) / f32(32768.0)
    out_m32, out_exp = quantize_multiplier(float(hires / f32(s_out)))
    out_m16 = _downscale_int16(out_m32)
    if out_exp > 0:  # TF_LITE_ENSURE(output_multiplier_exponent <= 0): TFLM's Prepare fails
        raise UnsupportedModelError(
            f"HARD_SWISH's output scale {s_out:.3g} is not above its input scale / 128 ({s_in:.3g} / 128): TFLM refuses "
            "such a layer (its output multiplier would need a left shift)",
            hint="re-convert the model: TensorFlow's converter gives HARD_SWISH an output range like its input's")
    rel_m32, rel_exp = quantize_multiplier(float(hires / reluish_scale))
    rel_m16 = _downscale_int16(rel_m32)

    def sat_lshift16(v: int, amount: int) -> int:  # reference_ops::SaturatingLeftShift
        return max(-32768, min(32767, _wrap(v * _wrap(1 << amount, 32), 32)))

    table = []
    for q in INPUTS:
        value = _wrap(q - zp_in, 16)
        hires_value = _wrap(value * 128, 16)
        preshift = _srdhm16(hires_value, out_m16)
        reluish = hires_value
        if rel_exp > 0:
            reluish = sat_lshift16(reluish, rel_exp - 1)
        reluish = _srdhm16(reluish, rel_m16)
        if rel_exp > 0:
            reluish = sat_lshift16(reluish, 1)
        if rel_exp < 0:
            reluish = _rdiv_pot16(reluish, -rel_exp)
        reluish = _wrap((reluish + (1 << 15)) >> 1, 16)
        out = _rdiv_pot16(_sdhm16(reluish, preshift), -out_exp)
        out = _wrap(out + zp_out, 16)
        table.append(_clamp8(out))
    return table


def _lut_populate(s_in: float, zp_in: int, s_out: float, zp_out: int, transform) -> list[int]:
    """LUTPopulateInt8 (tensorflow/lite/kernels/internal/common.h), also tflite-micro's elu.cc
    PopulateLookupTable: dequantize in float32, transform, multiply by 1 / output scale, round half away
    from zero, add the zero point (in float), convert, clamp."""
    inverse = f32(1.0) / f32(s_out)
    table = []
    with np.errstate(over="ignore", invalid="ignore"):  # an inf or NaN is a value here, as in C
        for q in INPUTS:
            t = f32(transform(f32(s_in) * f32(q - zp_in)) * inverse)
            rescaled = f32(tflite_round(float(t))) if math.isfinite(float(t)) else t  # roundf keeps inf, NaN
            table.append(_clamp8(_f2i(f32(rescaled + f32(zp_out)))))
    return table


def elu_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """ELU: tflite-micro tensorflow/lite/micro/kernels/elu.cc (CalculateOpData: a table of
    x < 0 ? expf(x) - 1 : x, by PopulateLookupTable in float32)."""
    return _lut_populate(s_in, zp_in, s_out, zp_out, lambda x: f32(expf(x) - f32(1.0)) if x < 0 else x)


def exp_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """EXP: TFLite tensorflow/lite/kernels/exp.cc (Prepare, int8: LUTPopulate of std::exp). tflite-micro's
    exp.cc runs float32 only."""
    return _lut_populate(s_in, zp_in, s_out, zp_out, expf)


def log_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """LOG: TFLite tensorflow/lite/kernels/elementwise.cc (LogLUTPrepare: LUTPopulate of std::log, inputs
    <= 0 giving the output's lowest value, (-128 - zp_out) * s_out in float32). tflite-micro runs LOG in
    float32 only."""
    out_min = f32(-128 - zp_out) * f32(s_out)
    return _lut_populate(s_in, zp_in, s_out, zp_out, lambda x: logf(x) if x > 0 else out_min)


def gelu_table(s_in: float, zp_in: int, s_out: float, zp_out: int, approximate: bool) -> list[int]:
    """GELU: TFLite tensorflow/lite/kernels/gelu.cc (Prepare, int8: LUTPopulate of
    reference_ops::GeluTransform or GeluTransformApproximate, tensorflow/lite/kernels/internal/reference/gelu.h).
    tflite-micro has no GELU kernel."""
    if approximate:
        k = f32(2.0 / math.sqrt(math.pi) * math.sqrt(0.5))  # M_2_SQRTPI * M_SQRT1_2, a float constant

        def fn(x):
            cube = f32(f32(f32(f32(0.044715) * x) * x) * x)
            return f32(f32(f32(0.5) * x) * f32(f32(1.0) + tanhf(f32(k * f32(x + cube)))))
    else:
        def fn(x):
            return f32(f32(f32(0.5) * x) * erfcf(f32(x * f32(-math.sqrt(0.5)))))
    return _lut_populate(s_in, zp_in, s_out, zp_out, fn)


def sqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """SQRT: TFLite tensorflow/lite/kernels/elementwise.cc (SqrtEvalQuantized: dequantize in float32,
    sqrtf, divide by the output scale, truncate toward zero, add the zero point, clamp). tflite-micro runs
    SQRT in float32 only. An input below the zero point (a negative value) makes TFLite's Invoke fail;
    the table gives it the output for 0."""
    table = []
    for q in INPUTS:
        x = max(f32(0.0), f32(s_in) * f32(q - zp_in))
        table.append(_clamp8(_wrap(_f2i(f32(np.sqrt(x)) / f32(s_out)) + zp_out, 32)))
    return table


def _inv_sqrt(value: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp (tensorflow/lite/kernels/internal/common.h) with kReverseShift."""
    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    clz = 32 - value.bit_length()
    pairs = (clz - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    x_in = value >> 1                                  # F3
    half_in = _rdiv_pot32(x_in, 1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28                                        # F3::One()
    for _ in range(5):
        x3 = _sat_shl32(_srdhm32(_srdhm32(x, x), x), 6)  # Rescale<3>(F9)
        x = _sat_shl32(_wrap(_srdhm32(half_three, x) - _srdhm32(half_in, x3), 32), 3)  # Rescale<3>(F6)
    x = _srdhm32(x, 1518500250)                        # * sqrt(2) / 2
    if shift < 0:
        x, shift = _wrap(x << -shift, 32), 0
    return x, -shift


def rsqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """RSQRT: tflite-micro tensorflow/lite/micro/kernels/elementwise.cc (PrepareAbsRsqrt's
    SetRsqrtOutputMultiplier: 1 / (sqrtf(s_in) * s_out) in double, quantized; RsqrtEvalQuantized: the
    input's inverse square root in fixed point, then that multiplier, with a 20-bit shift in between).
    An input below the zero point (a negative value) makes TFLM's Invoke fail; the table gives it 127,
    the output TFLM gives an input at the zero point."""
    mult, shift = quantize_multiplier(1.0 / float(f32(np.sqrt(f32(s_in))) * f32(s_out)))
    k_shift = 20
    table = []
    for q in INPUTS:
        value = q - zp_in
        if value <= 0:
            table.append(127)
            continue
        inv_mult, inv_shift = _inv_sqrt(value)
        data = multiply_by_quantized_multiplier(1, inv_mult, inv_shift + k_shift)
        table.append(_clamp8(multiply_by_quantized_multiplier(data, mult, shift - k_shift) + zp_out))
    return table


def abs_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """ABS: tflite-micro tensorflow/lite/micro/kernels/elementwise.cc (PrepareAbsRsqrt: a multiplier only
    where the scales differ, from their float32 ratio; AbsEvalQuantized)."""
    rescale = f32(s_in) != f32(s_out)
    if rescale:
        mult, shift = quantize_multiplier(float(f32(s_in) / f32(s_out)))
    table = []
    for q in INPUTS:
        value = abs(q - zp_in)
        out = multiply_by_quantized_multiplier(value, mult, shift) if rescale else value
        table.append(_clamp8(out + zp_out))
    return table


# ---- LOGISTIC and TANH: gemmlowp's fixed-point functions on Q4.27 (reference_integer_ops logistic.h, tanh.h) ----

_Q_ONE_Q0 = (1 << 31) - 1  # 1.0 in Q0.31 saturates to the largest raw value
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k = -2..4


def _exp_quarter_interval(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: the Taylor series around -1/8."""
    x = _wrap(a + (1 << 28), 32)
    x2 = _srdhm32(x, x)
    x3 = _srdhm32(x2, x)
    x4 = _srdhm32(x2, x2)
    poly = _rdiv_pot32(_wrap(_srdhm32(_wrap(_rdiv_pot32(x4, 2) + x3, 32), 715827883) + x2, 32), 1)
    return _wrap(1895147668 + _srdhm32(1895147668, _wrap(x + poly, 32)), 32)


def _exp_on_negative_values(a: int, int_bits: int) -> int:
    """gemmlowp::exp_on_negative_values: a <= 0 in Q(int_bits).(31 - int_bits), the result in Q0.31."""
    frac = 31 - int_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter_interval(_sat_shl32(a_mod, int_bits))
    remainder = a_mod - a
    for k, m in enumerate(_EXP_BARREL):
        if k - 2 >= int_bits:
            break
        if remainder & (1 << (frac + k - 2)):
            result = _srdhm32(result, m)
    return _Q_ONE_Q0 if a == 0 else result


def _one_over_half_denominator(a: int) -> int:
    """1 / ((1 + a) / 2) in Q2.29 for a in [0, 1) (Q0.31): three Newton-Raphson steps."""
    total = a + _Q_ONE_Q0
    half = _cdiv(total + (1 if total >= 0 else -1), 2)
    x = _wrap(1515870810 + _srdhm32(half, -1010580540), 32)
    for _ in range(3):
        one_minus = _wrap((1 << 29) - _srdhm32(half, x), 32)
        x = _wrap(x + _sat_shl32(_srdhm32(x, one_minus), 2), 32)
    return x


def _sigmoid_input(graph_scale: float) -> tuple[int, int, int]:
    """The Q4.27 input parameters TFLM's Prepare computes (CalculateInputRadius, no QuantizeMultiplier
    adjustment): (multiplier, left shift, range radius)."""
    int_bits = 4
    q, left_shift = math.frexp(float(graph_scale) * float(1 << (31 - int_bits)))
    mult = tflite_round(q * (1 << 31))
    radius = int(math.floor(((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift)))
    return mult, left_shift, radius


def _sigmoid_table(s_in: float, zp_in: int, tanh: bool) -> list[int]:
    mult, left_shift, radius = _sigmoid_input(s_in)
    table = []
    for q in INPUTS:
        x = q - zp_in
        if x <= -radius or x >= radius:
            table.append(-128 if x < 0 else 127)
            continue
        a = multiply_by_quantized_multiplier(x, mult, left_shift)  # Q4.27
        if tanh:
            r = 0
            if a != 0:  # exp(2n) for n = -|a|: the same raw value read as Q5.26
                t = _sat_shl32(_wrap(_one_over_half_denominator(_exp_on_negative_values(-abs(a), 5)) - (1 << 29), 32), 2)
                r = -t if a < 0 else t
            table.append(_clamp8(_rdiv_pot32(r, 24)))
        else:
            r = 1 << 30  # one half
            if a != 0:
                pos = _sat_shl32(_one_over_half_denominator(_exp_on_negative_values(-abs(a), 4)), 1)
                r = pos if a > 0 else _Q_ONE_Q0 - pos
            table.append(_clamp8(_rdiv_pot32(r, 23) - 128))
    return table


def logistic_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """LOGISTIC: reference_integer_ops::Logistic (int8), its output fixed at scale 1/256, zero point -128 (the
    converter's and TFLM's rule; analyze checks it)."""
    return _sigmoid_table(s_in, zp_in, tanh=False)


def tanh_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> list[int]:
    """TANH: reference_integer_ops::Tanh (int8), its output fixed at scale 1/128, zero point 0."""
    return _sigmoid_table(s_in, zp_in, tanh=True)


# ---- RELU and int8 -> int8 QUANTIZE: a requantization (TFLM's ReluQuantized, Requantize) ----

def requant_table(s_in: float, zp_in: int, s_out: float, zp_out: int, lo: int = -128) -> list[int]:
    """out = zp_out + M (x - zp_in), clamped to [lo, 127], M = s_in / s_out quantized as TFLM's Prepare does."""
    mult, shift = quantize_multiplier(float(s_in) / float(s_out))
    return [max(lo, min(127, multiply_by_quantized_multiplier(q - zp_in, mult, shift) + zp_out)) for q in INPUTS]


@lowering("RELU")
def lower_requant(graph: Graph, op: Operator) -> KernelCall:
    """RELU (TFLM's ReluQuantized: the lower clamp at the output zero point, roundf(0 / scale) = 0) and int8 -> int8
    QUANTIZE (Requantize), as one table."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    zp = int(y.quant.zero_point[0])
    lo = max(-128, zp) if op.opcode == "RELU" else -128
    return lut_call(graph, op, requant_table(float(x.quant.scale[0]), int(x.quant.zero_point[0]),
                                             float(y.quant.scale[0]), zp, lo))


# ---- the lowering: every op above is tq_lut_s8 with its table ----

#: The table function of each opcode (GELU's takes its `approximate` option too).
TABLES = {"HARD_SWISH": hard_swish_table, "ELU": elu_table, "EXP": exp_table, "LOG": log_table,
          "SQRT": sqrt_table, "RSQRT": rsqrt_table, "ABS": abs_table, "GELU": gelu_table,
          "LOGISTIC": logistic_table, "TANH": tanh_table}


def op_table(graph: Graph, op: Operator) -> list[int]:
    """The table (input order) of a unary op of :data:`TABLES`, from its tensors' quantization."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    q = (float(x.quant.scale[0]), int(x.quant.zero_point[0]), float(y.quant.scale[0]), int(y.quant.zero_point[0]))
    if op.opcode == "GELU":
        return gelu_table(*q, approximate=bool(op.options.get("approximate", False)))
    return TABLES[op.opcode](*q)


@lowering(*TABLES)
def lower_unary(graph: Graph, op: Operator) -> KernelCall:
    return lut_call(graph, op, op_table(graph, op))
