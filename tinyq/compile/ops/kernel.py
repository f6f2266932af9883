"""Kernel descriptors: every fact about a C kernel stated once, in Python.

A :class:`Kernel` names the C symbol a :class:`~tinyq.compile.ops.KernelCall` calls, its parameter struct
(a :class:`Struct`: ordered fields with their C types), the scratch it asks for, its cost model, its
variants (the assembly entry points it dispatches to), the C file that holds it (one file a kernel
family, firmware/kernels/tq_<family>.c, with its assembly in tq_m4_<family>.S and the plain-C twin of
that assembly in the .c) and the opcodes whose lowering picks it.

From these descriptors :mod:`tinyq.compile.ops.gen` writes firmware/kernels/tq_params.h (every parameter
struct's typedef, and, for the structs the assembly reads, _Static_asserts that the C compiler lays
them out as Python computed) and firmware/kernels/tq_offsets.h (the byte offsets the assembly loads
fields at, ``#define TQ_DW_PLANE_FILTER 88``). Both are committed; tests/test_kernel_descriptors.py
regenerates them and fails on any difference (``python -m tinyq.compile.ops.gen`` rewrites them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

#: (size, alignment) of the C types parameter structs use, on the Cortex-M4 (AAPCS: 32-bit pointers).
_SCALARS = {"int8_t": (1, 1), "uint8_t": (1, 1), "int16_t": (2, 2), "uint16_t": (2, 2),
            "int32_t": (4, 4), "uint32_t": (4, 4), "float": (4, 4)}
_POINTER = (4, 4)


@dataclass(frozen=True)
class F:
    """One declaration line of a struct: ``ctype decl;`` where ``decl`` names one field or several
    (``"in_h, in_w, in_c"``), each maybe a pointer (``"*chan"``) or an array (``"rows[3]"``).
    ``comment`` follows the line in C; ``before`` is a comment on lines of its own above it."""

    ctype: str
    decl: str
    comment: str = ""
    before: str = ""

    def names(self) -> list[tuple[str, bool, int]]:
        """(name, is_pointer, count) of each field the line declares."""
        out = []
        for d in self.decl.split(","):
            m = re.fullmatch(r"\s*(\*?)\s*([A-Za-z_]\w*)\s*(?:\[(\d+)\])?\s*", d)
            if not m:
                raise ValueError(f"bad declaration {d!r}")
            out.append((m.group(2), bool(m.group(1)), int(m.group(3) or 1)))
        return out


@dataclass(frozen=True)
class Struct:
    """A C parameter struct (``typedef struct { ... } name;``), its fields in order.

    ``asm``: the prefix of its offsets in tq_offsets.h (``TQ_DW_PLANE`` gives ``TQ_DW_PLANE_FILTER``),
    for the structs the assembly reads at fixed offsets; None for C-only structs."""

    name: str
    lines: tuple[F, ...]
    doc: str = ""
    asm: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field's name, in order."""
        return tuple(n for ln in self.lines for n, _, _ in ln.names())

    def layout(self) -> tuple[list[tuple[str, int, int]], int, int]:
        """([(field, offset, size)], size, alignment) on the Cortex-M4."""
        rows, off, align = [], 0, 1
        for ln in self.lines:
            for name, ptr, count in ln.names():
                base = ln.ctype.replace("const ", "").strip()
                if ptr:
                    size, al = _POINTER
                elif base in _SCALARS:
                    size, al = _SCALARS[base]
                else:
                    _, size, al = STRUCTS[base].layout()
                off = -(-off // al) * al
                rows.append((name, off, size * count))
                off += size * count
                align = max(align, al)
        return rows, -(-off // align) * align, align

    def offset(self, name: str) -> int:
        return next(o for n, o, _ in self.layout()[0] if n == name)


@dataclass(frozen=True)
class Kernel:
    """One C kernel a lowering calls."""

    #: The C function (KernelCall.function).
    symbol: str
    #: The kernel family: its code is firmware/kernels/tq_<family>.c (and tq_m4_<family>.S where it has assembly).
    family: str
    #: Its parameter struct (KernelCall.params_type), or None for a kernel that takes literal arguments.
    params: str | None
    #: The C prototype's arguments after the params pointer (or all of them without one).
    args: str
    #: The TFLite opcodes whose lowering may pick this kernel.
    opcodes: tuple[str, ...] = ()
    #: The formula of the scratch bytes it asks for (a tinyq.compile.ops.cexpr.Formula of its params, which tq_params.h
    #: also states in C under its name), or a Python function of the call's params; None: no scratch.
    scratch: Callable | None = None
    #: The Python cost model the planner picks it by (None: none needed), and its fitted constants.
    cost: Callable | None = None
    cost_constants: tuple[str, ...] = ()
    #: Inner loops it dispatches to: the entry points of tq_m4_<family>.S on a Cortex-M4, whose plain-C
    #: twins (same names) are in tq_<family>.c for the host and cores without DSP.
    variants: tuple[str, ...] = ()
    #: A second const struct passed after the params (KernelCall.params2).
    params2: str | None = None
    doc: str = ""

    @property
    def c_file(self) -> str:
        return f"tq_{self.family}.c"

    @property
    def asm_file(self) -> str | None:
        return f"tq_m4_{self.family}.S" if self.variants else None

    @property
    def prototype(self) -> str:
        lead = [f"const {self.params} *p"] if self.params else []
        if self.params2:
            lead.append(f"const {self.params2} *{'add' if self.params2 == 'tq_addtab_params_t' else 'shape'}")
        return f"void {self.symbol}({', '.join(lead + [self.args])});"


class ShapeError(ValueError):
    """An op's operands or options that no TFLite kernel accepts (the message says which): raised by the
    output-shape rules (tinyq.compile.shapes and the op modules' own, e.g. kernels.move.output_shapes)."""


STRUCTS: dict[str, Struct] = {}
KERNELS: dict[str, Kernel] = {}


def struct(s: Struct) -> Struct:
    """Register a parameter struct (in the order tq_params.h declares them)."""
    if s.name in STRUCTS:
        raise ValueError(f"struct {s.name} registered twice")
    STRUCTS[s.name] = s
    return s


def kernel(k: Kernel) -> Kernel:
    """Register a kernel descriptor."""
    if k.symbol in KERNELS:
        raise ValueError(f"kernel {k.symbol} registered twice")
    if k.params is not None and k.params not in STRUCTS:
        raise ValueError(f"kernel {k.symbol}: no struct {k.params}")
    KERNELS[k.symbol] = k
    return k


def check_call(call) -> None:
    """Raise ValueError unless ``call`` (a KernelCall) names a registered kernel with its own struct
    and only that struct's fields."""
    k = KERNELS.get(call.function)
    if k is None:
        raise ValueError(f"{call.function} has no kernel descriptor")
    if call.params_type != k.params:
        raise ValueError(f"{call.function} takes {k.params}, the call passes {call.params_type}")
    if k.params:
        unknown = [f for f, _ in call.params if f not in STRUCTS[k.params].fields]
        if unknown:
            raise ValueError(f"{call.function}: {k.params} has no field {unknown}")
    if call.params2 and call.params2[0] != k.params2:
        raise ValueError(f"{call.function}: second struct {call.params2[0]}, descriptor says {k.params2}")



_RANGES = {"int8_t": (-2**7, 2**7 - 1), "uint8_t": (0, 2**8 - 1), "int16_t": (-2**15, 2**15 - 1),
           "uint16_t": (0, 2**16 - 1), "int32_t": (-2**31, 2**31 - 1), "uint32_t": (0, 2**32 - 1)}


def out_of_range(call) -> list[tuple[str, int, str]]:
    """The (field, value, C type) of every integer parameter of ``call`` (a KernelCall, its row-band stages
    too) that its struct's field cannot hold: a dimension past 65,535 in a uint16_t, a hostile dilation."""
    bad = []
    for c in call.stages or (call,):
        if not c.params_type or c.params_type not in STRUCTS:
            continue
        types = {n: (ln.ctype.replace("const ", "").strip(), ptr, count)
                 for ln in STRUCTS[c.params_type].lines for n, ptr, count in ln.names()}
        for name, value in c.params:
            ctype, ptr, count = types.get(name, ("", True, 1))
            if ptr or ctype not in _RANGES or isinstance(value, bool) or not isinstance(value, int):
                continue
            lo, hi = _RANGES[ctype]
            if not lo <= value <= hi:
                bad.append((name, value, ctype))
    return bad
