"""tq_lut_s8: any unary element-wise int8 operator as one 256-entry table lookup a byte.

An operator whose output byte depends on its input byte alone is, whatever its arithmetic, a function
of 256 values: the host evaluates the reference kernel's arithmetic on every one of them
(tinyq.compile.ops.kernels.unary, one function an op) and the device looks each input byte up
(firmware/kernels/tq_lut.c, in place). The table is stored as the references store theirs, indexed by
the input byte read as unsigned (0..127, then -128..-1).
"""

from __future__ import annotations

from collections.abc import Sequence

from tinyq.graph import Graph, Operator
from tinyq.compile.ops import ConstArray, KernelCall
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct

PARAMS = struct(Struct("tq_lut_params_t", (
    F("uint32_t", "size"),
    F("const int8_t", "*table", "256 outputs, indexed by the input byte as uint8_t"),
), doc="A unary element-wise op as a table: out[i] = table[(uint8_t)in[i]] (tinyq.compile.ops.kernels.unary)."))

KERNEL = kernel(Kernel("tq_lut_s8", "lut", PARAMS.name, "const int8_t *in, int8_t *out",
                       opcodes=("HARD_SWISH", "ELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "GELU", "LOGISTIC", "TANH", "RELU",
                                "QUANTIZE"),
                       doc="A unary element-wise op by table lookup, a word (4 bytes) at a time (out may be in)."))


def uint8_order(table: Sequence[int]) -> tuple[int, ...]:
    """A table in input order (entry i for the input i - 128) as the kernel indexes it: by the byte as uint8."""
    if len(table) != 256 or not all(-128 <= v <= 127 for v in table):
        raise ValueError("a LUT is 256 int8 values")
    return tuple(int(v) for v in table[128:]) + tuple(int(v) for v in table[:128])


def lut_call(graph: Graph, op: Operator, table: Sequence[int]) -> KernelCall:
    """``op`` (one int8 input, one int8 output of its shape) as tq_lut_s8 with ``table`` (input order)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.size != y.size:
        raise ValueError(f"{op.opcode}: input of {x.size} values, output of {y.size}")
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=(("size", y.size), ("table", "@table")),
        args=(x.index, y.index),
        arrays=(ConstArray("table", "int8_t", uint8_order(table)),),
        overwrites=(x.index,),
    )
