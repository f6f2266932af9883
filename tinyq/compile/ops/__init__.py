"""Lowering of TFLite operators to calls of tinyq's C kernels.

Each supported opcode has one lowering function, registered with :func:`lowering`,
that turns an operator of the :class:`~tinyq.graph.Graph` into a :class:`KernelCall`:
the C function, its constant parameter struct (every multiplier, shift, padding and
activation range precomputed here, on the host) and the tensors it reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tinyq.graph import Graph, Operator


_CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4}


@dataclass(frozen=True)
class ConstArray:
    """An op-specific constant array emitted to flash (re-laid-out weights, per-channel parameters).

    ``values`` are integers, or tuples of integers for an array of structs (``tq_chan_t``).
    """

    name: str
    ctype: str
    values: tuple[int, ...] | tuple[tuple[int, ...], ...]

    @property
    def nbytes(self) -> int:
        """Bytes in flash (every struct field and word is 4 bytes)."""
        if self.values and isinstance(self.values[0], tuple):
            return 4 * sum(len(v) for v in self.values)
        return _CTYPE_BYTES[self.ctype] * len(self.values)


@dataclass(frozen=True)
class KernelCall:
    """One C call of the generated model."""

    function: str
    params_type: str | None
    #: (field, C initializer); a value "@name" refers to this call's ConstArray ``name``.
    params: tuple[tuple[str, object], ...]
    #: Pointer arguments after the params: graph tensor indices (-1: NULL) or "@name" of a ConstArray.
    args: tuple[int | str, ...]
    arrays: tuple[ConstArray, ...] = field(default=())
    #: Literal leading arguments for kernels without a params struct.
    lead_args: tuple[str, ...] = field(default=())
    #: Multiply-accumulates this call runs: conv, depthwise, FC, transpose conv and batch matmul only (the definition of
    #: :func:`tinyq.compile.analyze.op_macs`, less the constant channels it does not compute); 0 for any other kernel.
    macs: int = 0
    #: Output aliases the first input (no data movement, e.g. RESHAPE).
    alias: bool = False
    #: Bytes of the shared scratch buffer the kernel needs (im2col columns).
    scratch_bytes: int = 0
    #: Constant tensors the call carries as (re-laid-out) ConstArrays instead of passing them.
    consumes: tuple[int, ...] = ()
    #: A second const struct passed after the params (type, fields), e.g. a broadcast shape.
    params2: tuple[str, tuple[tuple[str, object], ...]] | None = None
    #: Pass all tensor args but the last as one array of pointers (CONCATENATION).
    pack_inputs: bool = False
    #: Pass all tensor args but the first as one array of pointers (an op with several outputs: SPLIT, UNPACK).
    pack_outputs: bool = False
    #: Input tensors the output may be written over when they die here (the planner decides):
    #: any input of an element-wise op, the input of a pointwise conv that does not widen or
    #: of a stride-1 3x3 depthwise conv.
    overwrites: tuple[int, ...] = ()
    #: Extra scratch bytes the kernel needs when it does run in place (a depthwise row ring).
    inplace_scratch: int = 0
    #: The output may be placed so that its input, dying here, sits in its last bytes (at this
    #: displacement from the output's start): the kernel writes in an order that never reaches an
    #: input byte it still has to read (proven at lowering). 0: no such overlay.
    end_overlay: int = 0
    #: A row-band chain (tq_band_run): the layers' own calls, and the rows each one's output window
    #: holds (0 for the last, which writes the chain's output tensor). See tinyq.compile.ops.band.
    stages: tuple["KernelCall", ...] = ()
    windows: tuple[int, ...] = ()
    #: Tensors the call keeps from one inference to the next (an SVDF's activation state, a variable tensor): the
    #: planner keeps each in a region of its own for the whole run, the kernel writes it, and the generated
    #: tq_model_reset() zeroes it (as TFLM's ResetVariableTensors does an int16 variable).
    persistent: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """The kernel as reports name it: the function, and for a conv by Winograd (w16 = 3) that too (for
        a row band, in how many of its stages)."""
        wino = sum(dict(c.params).get("w16") == 3 for c in self.stages or (self,))
        if not wino:
            return self.function
        return f"{self.function} (Winograd F(2,3)" + (f" in {wino} of {len(self.stages)} stages)" if self.stages else ")")


Lowering = Callable[[Graph, Operator], KernelCall]
LOWERINGS: dict[str, Lowering] = {}

#: Operand and output counts with no upper bound (CONCATENATION's inputs, SPLIT's outputs).
MANY = 1 << 16


@dataclass(frozen=True)
class Operands:
    """What the gate (tinyq.compile.analyze) checks of an op's tensors before its lowering runs, stated with the
    lowering (``@lowering(..., operands=Operands(...))``): the op's facts in its own module."""

    #: How many inputs (optional ones given as -1 count) and outputs a TFLite file may give it (min, max).
    inputs: tuple[int, int] = (1, 1)
    outputs: tuple[int, int] = (1, 1)
    #: Input positions the lowering reads as stored constants (weights, biases, paddings, axes).
    constant: tuple[int, ...] = ()
    #: Input positions that are int32/int64 parameters (a shape, axes, paddings, a size, indices), not int8 data.
    integer: tuple[int, ...] = ()
    #: The position of an int32 bias (the weighted ops; their weights are operand 1).
    bias: int | None = None
    #: The most dimensions an activation may have (None: any, e.g. RESHAPE's views).
    max_rank: int | None = 4
    #: A 4-D activation may have a batch other than 1 (data movement, which does not care).
    any_batch: bool = False
    #: Its output may be int32/int64 indices (ARG_MAX), not int8.
    index_output: bool = False
    #: Two inputs broadcast against each other to the output's shape (of at most max_rank dimensions).
    broadcast: bool = False
    #: Input positions of another type than int8, with it (the int8 LSTM's int32 biases, int16 cell state).
    typed: tuple[tuple[int, str], ...] = ()
    #: The op's own check of its operands' types, before the gate's per-tensor ones: ``form(graph, op)`` gives
    #: (problem, fix) when they are a form of the op tinyq does not run (a float or hybrid SVDF), said in one line
    #: instead of a line a tensor; None when they may be the one it runs.
    form: Callable[[Graph, Operator], "tuple[str, str] | None"] | None = None


OPERANDS: dict[str, Operands] = {}


def lowering(*opcodes: str, operands: "Operands | dict[str, Operands] | None" = None):
    """Register a lowering function for ``opcodes``, with what the gate checks of their operands (one
    :class:`Operands` for all, or one an opcode; default: one int8 input, one int8 output, at most 4-D)."""

    def deco(fn: Lowering) -> Lowering:
        for code in opcodes:
            LOWERINGS[code] = fn
            spec = operands.get(code) if isinstance(operands, dict) else operands
            OPERANDS[code] = spec if spec is not None else Operands()
        return fn

    return deco


def op_macs(graph: Graph, op: Operator) -> int:
    """The op's MACs by the one definition, tinyq.compile.analyze.op_macs (imported when called: analyze reads the
    lowerings' facts, so the lowerings cannot import it first)."""
    from tinyq.compile.analyze import op_macs as macs

    return macs(graph, op)


def lower(graph: Graph, op: Operator) -> KernelCall:
    """The KernelCall for ``op`` (the caller has run the compatibility gate).

    A file that passed the gate can still be malformed in ways only lowering sees (a
    pooling op without its window, a weight of the wrong rank): that is the file's
    fault, said as such, never a crash.
    """
    from tinyq.errors import InputFileError, TinyqError

    from tinyq.compile.ops.kernel import out_of_range
    from tinyq.errors import UnsupportedModelError

    try:
        call = LOWERINGS[op.opcode](graph, op)
    except TinyqError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError, AttributeError, OverflowError) as e:
        raise InputFileError(f"op {op.index} {op.opcode} is malformed ({type(e).__name__}: {e})",
                             hint="the .tflite file is damaged, or was not written by TensorFlow's converter") from e
    bad = out_of_range(call)
    if bad:  # the C struct would silently truncate it: a kernel's limit, said as such
        name, value, ctype = bad[0]
        raise UnsupportedModelError(f"op {op.index} {op.opcode}: its {name} ({value}) is beyond what tinyq's kernel "
                                    f"takes ({ctype})", hint="tinyq's kernels take dimensions, strides and dilations "
                                    "up to 65,535; a value past that is also a sign of a damaged file")
    return call


from tinyq.compile.ops import lower_ops as _lower_ops  # noqa: E402,F401  (registers the lowerings)
from tinyq.compile.ops import kernels as _kernels  # noqa: E402,F401  (the kernel descriptors, and the operators they carry)

#: Opcodes tinyq's int8 runtime can run.
SUPPORTED_OPS: frozenset[str] = frozenset(LOWERINGS)
