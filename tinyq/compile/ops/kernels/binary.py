"""Binary element-wise ops with NumPy broadcasting, int8, bit-exact with TFLM: SUB, MAXIMUM, MINIMUM,
SQUARED_DIFFERENCE, DIV, PRELU, and the broadcasting ADD (the same-shape ADD keeps its table kernel).

One C loop runs them all (firmware/kernels/tq_binary.c, an entry point an op): the broadcast is MUL's scheme
(tq_mul_params_t: an output shape and each input's stride per output axis, 0 where it is broadcast), with
the axes first merged as TFLM's BroadcastBinaryOpSimple merges them, so that a same-shape op is one row, a
per-channel vector over the last axis is rows of that vector, and the loop calls the op's own row function
on each row. Every multiplier is computed here, as each op's Prepare in TFLM computes it.
"""

from __future__ import annotations

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator, Tensor
from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import activation_range, quantize_multiplier

#: Loops of the merged broadcast the kernel walks: every broadcast of up to 5-D tensors (what analyze admits for
#: these ops; TFLM takes up to 8) merges to at most 5.
AXES = 5

PARAMS = struct(Struct("tq_binary_params_t", (
    F("uint32_t", f"shape[{AXES}]", "output shape, axes that broadcast alike merged, outermost first, padded with 1s"),
    F("uint32_t", f"stride1[{AXES}], stride2[{AXES}]", "input elements per step of each axis, 0 where broadcast"),
    F("int32_t", "input1_offset, input2_offset, output_offset", "-zp1, -zp2, zp_out"),
    F("int32_t", "left_shift", "ADD, SUB: 20; SQUARED_DIFFERENCE: 7"),
    F("int32_t", "mult1, shift1", "ADD, SUB, SQUARED_DIFFERENCE: input 1's; PRELU: x >= 0 (in / out)"),
    F("int32_t", "mult2, shift2", "ADD, SUB, SQUARED_DIFFERENCE: input 2's; PRELU: x < 0 (in * alpha / out)"),
    F("int32_t", "output_mult, output_shift", "ADD, SUB, SQUARED_DIFFERENCE, DIV: the result's"),
    F("int32_t", "act_min, act_max"),
    F("const int32_t", "*recip", "DIV: GetReciprocal(d) for d = 0..255 (the Q0.31 raw; d = 0 as x86 TFLM computes it)"),
), doc="The binary element-wise ops, broadcasting (tinyq/compile/ops/kernels/binary.py). MAXIMUM and MINIMUM\n"
       "compare the raw bytes (TFLM does: the converter gives inputs and output one scale); the others compute\n"
       "TFLM's reference arithmetic (ADD/SUB: each input scaled after << left_shift, the sum requantized)."))

_IO2 = "const int8_t *in1, const int8_t *in2, int8_t *out"
#: One entry point an op (each links only its own row function), all of them tq_binary.c's broadcast loop.
KERNELS = {code: kernel(Kernel(symbol, "binary", PARAMS.name, _IO2, opcodes=(code,), doc=doc))
           for code, symbol, doc in (
    ("ADD", "tq_add_bcast_s8", "ADD with broadcasting (a same-shape ADD runs tq_add_s8)."),
    ("SUB", "tq_sub_s8", "SUB with broadcasting."),
    ("SQUARED_DIFFERENCE", "tq_squared_difference_s8", "SQUARED_DIFFERENCE with broadcasting."),
    ("MAXIMUM", "tq_maximum_s8", "MAXIMUM with broadcasting (the raw int8 values)."),
    ("MINIMUM", "tq_minimum_s8", "MINIMUM with broadcasting (the raw int8 values)."),
    ("DIV", "tq_div_s8", "DIV with broadcasting."),
    ("PRELU", "tq_prelu_s8", "PRELU, in1 the input, in2 alpha (broadcast)."),
)}

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def merged_broadcast(a_shape, b_shape, y_shape) -> list[tuple[int, int, int]]:
    """(size, stride1, stride2) of each loop of the broadcast, outermost first, as TFLM's
    BroadcastBinaryOpSimple builds them: axes of size 1 dropped, an axis merged into the next inner loop
    where each input either steps on contiguously or stays broadcast across both. The innermost loop's
    input strides are 0 or 1. A scalar op is one loop of one element."""
    rank = len(y_shape)
    if len(a_shape) > rank or len(b_shape) > rank:
        raise ValueError(f"inputs {list(a_shape)}, {list(b_shape)} of higher rank than the output {list(y_shape)}")
    ea = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    eb = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    loops: list[list[int]] = []  # innermost first
    acc_a = acc_b = 1
    for n, da, db in zip(reversed(tuple(y_shape)), reversed(ea), reversed(eb)):
        if n == 1:
            continue  # da = db = 1 too (shapes.py checked the broadcast)
        sa, sb = (0 if da == 1 else acc_a), (0 if db == 1 else acc_b)
        if loops:
            m, pa, pb = loops[-1]
            if (sa == 0) == (pa == 0) and (sb == 0) == (pb == 0) and (pa == 0 or sa == pa * m) \
                    and (pb == 0 or sb == pb * m):
                loops[-1][0] *= n
                acc_a, acc_b = acc_a * da, acc_b * db
                continue
        loops.append([n, sa, sb])
        acc_a, acc_b = acc_a * da, acc_b * db
    return [tuple(x) for x in reversed(loops)] or [(1, 0, 0)]


def broadcast_fields(a: Tensor, b: Tensor, y: Tensor, what: str) -> tuple[tuple[str, object], ...]:
    """The shape and stride fields of tq_binary_params_t, or a refusal of a broadcast of more loops than it has."""
    loops = merged_broadcast(a.shape, b.shape, y.shape)
    if len(loops) > AXES:
        raise UnsupportedModelError(
            f"{what} broadcasts {list(a.shape)} with {list(b.shape)} in {len(loops)} alternating axes",
            hint=f"tinyq's broadcasting kernel walks at most {AXES}: reshape the operands to fewer axes")
    loops = [(1, 0, 0)] * (AXES - len(loops)) + loops

    def arr(col: int) -> str:
        return "{" + ", ".join(f"{int(x[col])}u" for x in loops) + "}"

    return ("shape", arr(0)), ("stride1", arr(1)), ("stride2", arr(2))


def _f32(x) -> float:
    return float(np.float32(x))


def _io(graph: Graph, op: Operator) -> tuple[Tensor, Tensor, Tensor]:
    t = graph.tensors
    return t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]


def _act(op: Operator, y: Tensor) -> tuple[int, int]:
    return activation_range(op.options.get("fused_activation_function", "NONE"), y.quant.scale[0],
                            y.quant.zero_point[0])


def _smaller_than_one(m: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: TFLM's kernels divide by 2^-shift, which needs shift <= 0."""
    mult, shift = quantize_multiplier(m)
    if shift > 0:
        raise UnsupportedModelError(f"{what}: a rescaling factor of {m:.3g} (at least 1), which TFLM's int8 "
                                    "kernel cannot apply", hint="the model's quantization scales are not a "
                                    "converter's: re-convert it")
    return mult, shift


def _call(graph: Graph, op: Operator, fields, arrays=()) -> KernelCall:
    a, b, y = _io(graph, op)
    what = f"op {op.index} {op.opcode}"
    return KernelCall(
        function=KERNELS[op.opcode].symbol, params_type=PARAMS.name,
        params=(*broadcast_fields(a, b, y, what), *fields),
        args=(a.index, b.index, y.index), arrays=tuple(arrays),
        # An input of the output's size is read at each element's own index before that element is written.
        overwrites=tuple(t.index for t in (a, b) if t.size == y.size and not t.is_constant),
    )


def add_sub_fields(graph: Graph, op: Operator) -> tuple[tuple[str, object], ...]:
    """ADD (add_common.cc) and SUB (sub_common.cc): each input's offset value << 20 scaled by its share
    of twice the larger input scale, the sum or difference requantized by twice that over 2^20 times the
    output scale. ADD takes the ratios in double; SUB divides in float32 and converts the quotient."""
    a, b, y = _io(graph, op)
    what = f"op {op.index} {op.opcode}"
    left_shift = 20
    s1, s2, so = _f32(a.quant.scale[0]), _f32(b.quant.scale[0]), _f32(y.quant.scale[0])
    if op.opcode == "ADD":  # add_common.cc (lower_ops._add_multipliers, the broadcast kernel's before)
        twice = 2.0 * max(s1, s2)
        r1, r2, ro = s1 / twice, s2 / twice, twice / ((1 << left_shift) * so)
    else:
        twice = _f32(2.0 * max(s1, s2))  # float32, exact
        r1, r2 = _f32(np.float32(s1) / np.float32(twice)), _f32(np.float32(s2) / np.float32(twice))
        ro = _f32(np.float32(twice) / np.float32((1 << left_shift) * so))
    m1, sh1 = _smaller_than_one(r1, what)
    m2, sh2 = _smaller_than_one(r2, what)
    mo, sho = _smaller_than_one(ro, what)
    act_min, act_max = _act(op, y)
    return (("input1_offset", -a.quant.zero_point[0]), ("input2_offset", -b.quant.zero_point[0]),
            ("output_offset", y.quant.zero_point[0]), ("left_shift", left_shift),
            ("mult1", m1), ("shift1", sh1), ("mult2", m2), ("shift2", sh2),
            ("output_mult", mo), ("output_shift", sho), ("act_min", act_min), ("act_max", act_max))


def lower_add_broadcast(graph: Graph, op: Operator) -> KernelCall:
    """A broadcasting ADD (lower_ops.lower_add keeps the same-shape one on its table kernel)."""
    return _call(graph, op, add_sub_fields(graph, op))


@lowering("SUB", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_sub(graph: Graph, op: Operator) -> KernelCall:
    return _call(graph, op, add_sub_fields(graph, op))


@lowering("MAXIMUM", "MINIMUM", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_max_min(graph: Graph, op: Operator) -> KernelCall:
    """TFLM's MaximumMinimumBroadcastSlow compares the int8 values as they are, whatever the scales."""
    return _call(graph, op, ())


@lowering("SQUARED_DIFFERENCE", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_squared_difference(graph: Graph, op: Operator) -> KernelCall:
    """squared_difference.cc's PrepareQuantized: left shift 7, the ratios in double; the output
    multiplier (twice the larger scale squared over 2^14 times the output scale, that product in float32)
    may exceed 1. No fused activation: the int8 range."""
    a, b, y = _io(graph, op)
    what = f"op {op.index} {op.opcode}"
    left_shift = 7
    s1, s2, so = _f32(a.quant.scale[0]), _f32(b.quant.scale[0]), _f32(y.quant.scale[0])
    twice = 2.0 * max(s1, s2)
    m1, sh1 = _smaller_than_one(s1 / twice, what)
    m2, sh2 = _smaller_than_one(s2 / twice, what)
    mo, sho = quantize_multiplier(twice * twice / _f32(np.float32(1 << (2 * left_shift)) * np.float32(so)))
    return (_call(graph, op, (
        ("input1_offset", -a.quant.zero_point[0]), ("input2_offset", -b.quant.zero_point[0]),
        ("output_offset", y.quant.zero_point[0]), ("left_shift", left_shift),
        ("mult1", m1), ("shift1", sh1), ("mult2", m2), ("shift2", sh2),
        ("output_mult", mo), ("output_shift", sho), ("act_min", -128), ("act_max", 127))))


@lowering("PRELU", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_prelu(graph: Graph, op: Operator) -> KernelCall:
    """prelu_common.cc's CalculatePreluParams: in / out and in * alpha / out, in double; int8 range."""
    x, alpha, y = _io(graph, op)
    if len(alpha.quant.scale) > 1:  # TFLM's Prepare reads one scale and zero point (the converter gives one)
        raise UnsupportedModelError(f"op {op.index} PRELU has a per-channel quantized alpha "
                                    f"({len(alpha.quant.scale)} scales)", hint="TFLM's int8 PRELU takes one "
                                    "scale for alpha: quantize it per tensor (TensorFlow's converter does)")
    si, sa, so = float(x.quant.scale[0]), float(alpha.quant.scale[0]), float(y.quant.scale[0])
    m1, sh1 = quantize_multiplier(si / so)
    m2, sh2 = quantize_multiplier(si * sa / so)
    return _call(graph, op, (
        ("input1_offset", -x.quant.zero_point[0]), ("input2_offset", -alpha.quant.zero_point[0]),
        ("output_offset", y.quant.zero_point[0]), ("mult1", m1), ("shift1", sh1), ("mult2", m2), ("shift2", sh2),
        ("act_min", -128), ("act_max", 127)))


# ---- DIV ----

def _wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    return (a * b + (1 << 30)) >> 31  # = TFLite's truncating form for every product (tq_sat_rdh_mul)


def _sat_shl(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else _wrap32(x << exponent)


def one_over_one_plus_x(a: int) -> int:
    """gemmlowp's one_over_one_plus_x_for_x_in_0_1 on a Q0.31 raw (tq_softmax.c's one_over_one_plus_x)."""
    s = a + INT32_MAX  # RoundingHalfSum(a, One): in 64 bits, the halving truncates
    half = int((s + (1 if s >= 0 else -1)) / 2)
    x = _wrap32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm(half, x))
        x = _wrap32(x + _sat_shl(_srdhm(x, one_minus), 2))
    return _sat_shl(x, 1)


def get_reciprocal(d: int) -> int:
    """TFLite's GetReciprocal(d, 31, &shift) raw value for 0 <= d < 2^31. For d = 0 its shift by 32 is
    undefined in C; 0 shifted by anything is 0 (x86 masks the count to 0), so the sum is -2^31 there."""
    clz = 32 - d.bit_length()
    shifted_minus_one = _wrap32(((d << clz) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x(shifted_minus_one)


def div_params(s1: float, s2: float, so: float) -> tuple[int, int]:
    """div.cc's CalculateOpDataDiv: QuantizeMultiplier(double(s1 / (s2 * so))), the ratio in float32."""
    return quantize_multiplier(_f32(np.float32(s1) / (np.float32(s2) * np.float32(so))))


@lowering("DIV", operands=Operands(inputs=(2, 2), max_rank=5, broadcast=True))
def lower_div(graph: Graph, op: Operator) -> KernelCall:
    """div.cc's int8 path (reference_ops::DivElementwise / BroadcastDivSlowQuantized): the divisor's
    reciprocal (GetReciprocal, a table of the 256 divisor magnitudes here), the dividend normalized by its
    headroom, one requantization by s1 / (s2 * so) with the shifts summed."""
    a, b, y = _io(graph, op)
    mo, sho = div_params(a.quant.scale[0], b.quant.scale[0], y.quant.scale[0])
    # The final shift right is headroom (23..31) + the reciprocal's shift (-1..7) - output_shift: TFLM's
    # RoundingDivideByPOT is defined for 0..31 of it; the kernel reproduces what x86 does up to 63.
    if not -25 <= sho <= 22:
        raise UnsupportedModelError(f"op {op.index} DIV: a rescaling factor of 2^{sho} (input 1 scale over "
                                    "input 2 scale times output scale), where TFLM's kernel shifts by an amount "
                                    "C leaves undefined", hint="the model's quantization scales are not a "
                                    "converter's: re-convert it")
    act_min, act_max = _act(op, y)
    recip = tuple(get_reciprocal(d) for d in range(256))
    return _call(graph, op, (
        ("input1_offset", -a.quant.zero_point[0]), ("input2_offset", -b.quant.zero_point[0]),
        ("output_offset", y.quant.zero_point[0]), ("output_mult", mo), ("output_shift", sho),
        ("act_min", act_min), ("act_max", act_max), ("recip", "@recip")),
        arrays=(ConstArray("recip", "int32_t", recip),))
