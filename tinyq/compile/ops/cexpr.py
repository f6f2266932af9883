"""Integer formulas written once, in Python, that evaluate on the host and render as C.

A :class:`Formula` wraps a Python function of a parameter struct's fields (and plain unsigned
arguments). Called with numbers it computes; :meth:`Formula.c` calls it with symbolic values and
renders a ``static inline uint32_t`` C function (tinyq.compile.ops.gen puts it in tq_params.h). So a
kernel's scratch size is stated once: the planner evaluates the formula, the device and the tests'
C harness call the generated function.

The function body may use ``+ - * // % &``, comparisons, and the helpers :func:`select` (C's
``?:``), :func:`both` (``&&``), :func:`smaller` (the lesser of two); ``v.let(name, value)`` names an
intermediate (a ``const uint32_t`` local in C, the value itself in Python), ``v.<field>`` reads a
field. Every value is a non-negative integer below 2^32 (C computes in uint32_t), except signed
fields compared with constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


class E:
    """A C expression (its text and its precedence: 0 atoms and calls, higher binds looser)."""

    PREC = {"*": 3, "/": 3, "%": 3, "+": 4, "-": 4, "<<": 5, ">>": 5, "<": 6, "<=": 6, ">": 6, ">=": 6,
            "==": 7, "!=": 7, "&": 8, "&&": 11, "?": 13}

    def __init__(self, text: str, prec: int = 0, signed: bool = False):
        self.text, self.prec, self.signed = text, prec, signed

    def _wrap(self, prec: int, right: bool = False) -> str:
        return f"({self.text})" if self.prec > prec or (right and self.prec == prec) else self.text

    def _bin(self, op: str, other, swap: bool = False) -> "E":
        o = lit(other, signed=self.signed)  # a constant compared with a signed field stays signed
        a, b = (o, self) if swap else (self, o)
        p = E.PREC[op]
        return E(f"{a._wrap(p)} {op} {b._wrap(p, right=True)}", p)

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)
    def __floordiv__(self, o): return self._bin("/", o)
    def __mod__(self, o): return self._bin("%", o)
    def __and__(self, o): return self._bin("&", o)
    def __lt__(self, o): return self._bin("<", o)
    def __le__(self, o): return self._bin("<=", o)
    def __gt__(self, o): return self._bin(">", o)
    def __ge__(self, o): return self._bin(">=", o)
    def __eq__(self, o): return self._bin("==", o)  # type: ignore[override]
    def __ne__(self, o): return self._bin("!=", o)  # type: ignore[override]
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError("a symbolic value has no truth value: use select / both")


def lit(v, signed: bool = False) -> E:
    """A constant (unsigned unless negative or ``signed``) or an expression as it is."""
    if isinstance(v, E):
        return v
    v = int(v)
    return E(f"{v}u" if v >= 0 and not signed else str(v) if v >= 0 else f"({v})")


def select(cond, a, b):
    """``cond ? a : b``."""
    if isinstance(cond, E) or isinstance(a, E) or isinstance(b, E):
        c, x, y = lit(cond), lit(a), lit(b)
        p = E.PREC["?"]
        return E(f"{c._wrap(p - 1)} ? {x._wrap(p - 1)} : {y._wrap(p)}", p)
    return a if cond else b


def both(*conds):
    """``c1 && c2 && ...`` (1 or 0)."""
    if any(isinstance(c, E) for c in conds):
        p = E.PREC["&&"]
        return E(" && ".join(lit(c)._wrap(p) for c in conds), p)
    return int(all(conds))


def smaller(a, b):
    """The lesser of ``a`` and ``b`` (``a < b ? a : b``)."""
    return select(a < b, a, b)


class _Num:
    """Fields as numbers (from a dict; missing ones 0)."""

    def __init__(self, fields: dict):
        self._f = fields

    def __getattr__(self, name):
        return int(self._f.get(name, 0))

    def let(self, name: str, value):
        return value


class _Sym:
    """Fields as C (``p->name``), locals collected in order."""

    def __init__(self, struct):
        self._struct, self.lets = struct, []

    def __getattr__(self, name):
        if name.startswith("_") or self._struct is None or name not in self._struct.fields:
            raise AttributeError(name)
        ctype = next(ln.ctype for ln in self._struct.lines if name in [n for n, _, _ in ln.names()])
        return E(f"p->{name}", signed=ctype.startswith("int"))

    def let(self, name: str, value):
        self.lets.append((name, lit(value)))
        return E(name)


@dataclass(frozen=True)
class Formula:
    """``fn(v, *args)``: v the struct's fields (``struct``: its name, or None for plain arguments only)."""

    name: str
    fn: Callable
    struct: str | None = None
    args: tuple[str, ...] = ()
    doc: str = ""

    def __call__(self, *args):
        """In another formula: a call of the C function when symbolic, else the value."""
        if any(isinstance(a, (E, _Sym)) for a in args):
            rest = args[1:] if self.struct else args
            lead = ["p"] if self.struct else []
            return E(f"{self.name}({', '.join(lead + [lit(a).text for a in rest])})")
        return self.fn(*args)

    def eval(self, fields: dict | None = None, *args) -> int:
        """The value for these field values (a dict) and arguments."""
        return int(self.fn(_Num(fields or {}), *args) if self.struct else self.fn(*args))

    def c(self) -> str:
        """The C function."""
        from tinyq.compile.ops.kernel import STRUCTS

        v = _Sym(STRUCTS[self.struct] if self.struct else None)
        params = ([f"const {self.struct} *p"] if self.struct else []) + [f"uint32_t {a}" for a in self.args]
        body = self.fn(v, *(E(a) for a in self.args)) if self.struct else self.fn(*(E(a) for a in self.args))
        lines = [f"static inline uint32_t {self.name}({', '.join(params)}) {{"]
        lines += [f"    const uint32_t {n} = {e.text};" for n, e in v.lets]
        lines += [f"    return {lit(body).text};", "}"]
        return "\n".join(lines)


FORMULAS: dict[str, Formula] = {}


def formula(name: str, struct: str | None = None, args: tuple[str, ...] = (), doc: str = ""):
    """Register the decorated function as the formula ``name`` (rendered in registration order)."""

    def deco(fn: Callable) -> Formula:
        f = Formula(name, fn, struct, args, doc)
        if name in FORMULAS:
            raise ValueError(f"formula {name} registered twice")
        FORMULAS[name] = f
        return f

    return deco
