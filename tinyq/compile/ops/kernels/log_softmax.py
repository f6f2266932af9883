"""LOG_SOFTMAX, int8: TFLM's log_softmax.cc (its Prepare's multipliers, reference_ops::LogSoftmaxQuantized).

Row-wise over the last axis; the C is firmware/kernels/tq_log_softmax.c.
"""

from __future__ import annotations

from tinyq.compile.ops import KernelCall, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import quantize_multiplier, softmax_params
from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator

PARAMS = struct(Struct("tq_log_softmax_params_t", (
    F("uint32_t", "rows, depth"),
    F("int32_t", "input_mult, input_left_shift", "a difference to Q5.26 (beta 1)"),
    F("int32_t", "reverse_mult, reverse_shift", "back from Q5.26 to input steps (shift <= 0)"),
    F("int32_t", "diff_min", "differences below this count as exp() = 0"),
), doc="LOG_SOFTMAX: out = x - max - log(sum(exp(x - max))) in Q5.26, output scale 16/256, zero point 127."))

KERNEL = kernel(Kernel("tq_log_softmax_s8", "log_softmax", PARAMS.name, "const int8_t *in, int8_t *out",
                       opcodes=("LOG_SOFTMAX",), doc="LOG_SOFTMAX, int8, over the last axis (out may be in)."))

#: TFLM's log_softmax.cc requires this output quantization (kOutputScale, kOutputZeroPoint).
OUTPUT_SCALE, OUTPUT_ZP = 16.0 / 256, 127


def log_softmax_params(input_scale: float) -> tuple[int, int, int, int, int]:
    """(input_mult, input_left_shift, reverse_mult, reverse_shift, diff_min) as TFLM's CalculateOpData
    computes them: PreprocessLogSoftmaxScalingExp (beta 1, 5 integer bits) and CalculateInputRadius."""
    mult, left_shift, diff_min = softmax_params(1.0, input_scale)
    real_reverse = (1 << (31 - left_shift)) / float(mult)
    if not 0.0 < real_reverse < 1.0:  # QuantizeMultiplierSmallerThanOneExp's TFLITE_CHECKs
        raise UnsupportedModelError(f"LOG_SOFTMAX's input scale {input_scale:.3g} has no int8 LOG_SOFTMAX in TFLM "
                                    "(its reverse scaling factor is not below 1)",
                                    hint="re-convert the model with a calibration set that reaches its real inputs")
    reverse_mult, reverse_shift = quantize_multiplier(real_reverse)
    return mult, left_shift, reverse_mult, reverse_shift, diff_min


@lowering("LOG_SOFTMAX")
def lower_log_softmax(graph: Graph, op: Operator) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if float(y.quant.scale[0]) != OUTPUT_SCALE or int(y.quant.zero_point[0]) != OUTPUT_ZP:
        raise UnsupportedModelError(
            f"op {op.index} LOG_SOFTMAX: int8 output scale {float(y.quant.scale[0]):g} and zero point "
            f"{int(y.quant.zero_point[0])}, where TFLM's kernel requires 16/256 and 127",
            hint="re-convert the model with TensorFlow's converter, which quantizes LOG_SOFTMAX that way")
    depth = x.shape[-1] if len(x.shape) else 1
    mult, left_shift, reverse_mult, reverse_shift, diff_min = log_softmax_params(float(x.quant.scale[0]))
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=(("rows", x.size // depth), ("depth", depth), ("input_mult", mult), ("input_left_shift", left_shift),
                ("reverse_mult", reverse_mult), ("reverse_shift", reverse_shift), ("diff_min", diff_min)),
        args=(x.index, y.index),
        overwrites=(x.index,),
    )
