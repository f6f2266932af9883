"""LEAKY_RELU, int8: TFLM's QuantizeLeakyRelu (its Prepare's two multipliers, reference_ops' loop).

An element-wise operator in one module: its parameter struct, its kernel descriptor and its lowering
(CONTRIBUTING.md, "Adding an element-wise operator"); its C is firmware/kernels/tq_leaky_relu.c.
"""

from __future__ import annotations

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator
from tinyq.compile.ops import KernelCall, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import quantize_multiplier

PARAMS = struct(Struct("tq_leaky_relu_params_t", (
    F("uint32_t", "size"),
    F("int32_t", "input_zp, output_zp"),
    F("int32_t", "mult_identity, shift_identity", "x >= 0: input scale / output scale"),
    F("int32_t", "mult_alpha, shift_alpha", "x < 0: input scale * alpha / output scale (alpha >= 0)"),
), doc="LEAKY_RELU: out = zp_out + M(x - zp_in), M the identity's multiplier for x >= zp_in, alpha's below."))

KERNEL = kernel(Kernel("tq_leaky_relu_s8", "leaky_relu", PARAMS.name, "const int8_t *in, int8_t *out",
                       opcodes=("LEAKY_RELU",), doc="LEAKY_RELU, int8 (out may be in)."))


@lowering("LEAKY_RELU")
def lower_leaky_relu(graph: Graph, op: Operator) -> KernelCall:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    # Both ratios in double from the float32 scales and alpha, as the tflite_micro interpreter does (tests:
    # a float division, 0.78125 where the double one is 0.7812499745, rounds x - zp = 144 the other way).
    s_in, s_out = float(np.float32(x.quant.scale[0])), float(np.float32(y.quant.scale[0]))
    alpha = float(np.float32(op.options.get("alpha", 0.2)))
    m_id, sh_id = quantize_multiplier(s_in / s_out)
    if alpha < 0:  # TFLM versions differ here (older ones quantize a negative multiplier); Keras forbids it
        raise UnsupportedModelError(f"op {op.index} LEAKY_RELU has a negative alpha ({alpha})",
                                    hint="tinyq runs LEAKY_RELU with alpha >= 0")
    m_a, sh_a = quantize_multiplier(s_in * alpha / s_out)
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=(("size", y.size), ("input_zp", x.quant.zero_point[0]), ("output_zp", y.quant.zero_point[0]),
                ("mult_identity", m_id), ("shift_identity", sh_id), ("mult_alpha", m_a), ("shift_alpha", sh_a)),
        args=(x.index, y.index),
        overwrites=(x.index,),
    )
