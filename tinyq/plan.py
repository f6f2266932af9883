"""Plan stage: a static, offset-based memory plan for every activation tensor.

Each activation gets a fixed offset in one arena, decided here on the host. Tensors
whose lifetimes do not overlap share memory; a RESHAPE output is the same buffer as
its input. Placement is greedy by size (largest first, lowest offset that does not
collide with a tensor live at the same time), the strategy of TFLM's
GreedyMemoryPlanner, without TFLM's per-tensor headers and persistent buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyq.graph import Graph
from tinyq.ops import KernelCall, lower

#: Offsets are multiples of this: word-aligned int8 rows allow 32-bit loads.
ALIGN = 4


@dataclass(frozen=True)
class Buffer:
    """One arena region: the tensors stored in it, when it is live, where it is."""

    tensors: tuple[int, ...]
    size: int
    first: int  # op index that writes it (-1: the model input)
    last: int   # last op index that reads it (len(ops): the model output)
    offset: int


@dataclass(frozen=True, eq=False)
class MemoryPlan:
    """The plan stage's result."""

    graph: Graph
    calls: tuple[KernelCall, ...]
    buffers: tuple[Buffer, ...]
    offsets: dict[int, int]  # tensor index -> arena offset
    arena_bytes: int
    peak_bytes: int          # the most bytes live at one time (the lower bound of any plan)
    peak_op: int             # op index at which the peak occurs
    live_at_peak: tuple[int, ...]  # tensor indices

    @property
    def weight_bytes(self) -> int:
        """Bytes of constants the model puts in flash: tensors passed as they are, plus the
        re-laid-out weights and per-channel parameters of each call."""
        used = {i for c in self.calls for i in c.args if isinstance(i, int) and i >= 0}
        tensors = sum(t.nbytes for t in self.graph.tensors if t.is_constant and t.index in used)
        return tensors + sum(a.nbytes for c in self.calls for a in c.arrays)

    @property
    def scratch_bytes(self) -> int:
        """The shared scratch buffer: the largest any kernel needs (im2col columns)."""
        return max((c.scratch_bytes for c in self.calls), default=0)

    @property
    def ram_bytes(self) -> int:
        """Everything the model needs in RAM besides the stack: arena + scratch."""
        return self.arena_bytes + self.scratch_bytes

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.calls)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph) -> MemoryPlan:
    """Lower every op and lay out the activations in one arena."""
    calls = tuple(lower(graph, op) for op in graph.operators)
    n_ops = len(calls)

    # Union aliased tensors (output shares its input's buffer).
    root = {}

    def find(t: int) -> int:
        while root.get(t, t) != t:
            t = root[t]
        return t

    for op, call in zip(graph.operators, calls):
        if call.alias:
            root[find(op.outputs[0])] = find(op.inputs[0])

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    members: dict[int, list[int]] = {}

    def touch(t: int, step: int) -> None:
        r = find(t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        if t not in members.setdefault(r, []):
            members[r].append(t)

    for t in graph.inputs:
        touch(t, -1)
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant:
                touch(t, i)
        for t in op.outputs:
            touch(t, i)
    for t in graph.outputs:
        touch(t, n_ops)

    # In place: an element-wise op may write its output over an input that dies at
    # that op (each output byte depends only on the input bytes at the same index,
    # read before the write), so the two share one buffer.
    for i, (op, call) in enumerate(zip(graph.operators, calls)):
        if not call.inplace:
            continue
        out = find(op.outputs[0])
        for t in op.inputs:
            if t < 0 or graph.tensors[t].is_constant:
                continue
            r = find(t)
            if r != out and last[r] == i and graph.tensors[t].nbytes == graph.tensors[op.outputs[0]].nbytes:
                root[out] = r
                last[r] = max(last[r], last.pop(out))
                first.pop(out)
                members[r].extend(members.pop(out))
                break

    sizes = {r: _align(max(graph.tensors[t].nbytes for t in ts)) for r, ts in members.items()}
    order = sorted(sizes, key=lambda r: (-sizes[r], first[r], r))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offset_of: dict[int, int] = {}
    for r in order:
        clashes = sorted((o, s) for o, s, f, l in placed if not (l < first[r] or last[r] < f))
        off = 0
        for o, s in clashes:
            if off + sizes[r] <= o:
                break
            off = max(off, o + s)
        offset_of[r] = off
        placed.append((off, sizes[r], first[r], last[r]))

    buffers = tuple(
        Buffer(tuple(sorted(members[r])), sizes[r], first[r], last[r], offset_of[r])
        for r in sorted(members, key=lambda r: (offset_of[r], first[r]))
    )
    offsets = {t: b.offset for b in buffers for t in b.tensors}
    arena = max((b.offset + b.size for b in buffers), default=0)

    peak, peak_op, live = 0, -1, ()
    for step in range(-1, n_ops + 1):
        now = [b for b in buffers if b.first <= step <= b.last]
        total = sum(b.size for b in now)
        if total > peak:
            peak, peak_op, live = total, step, tuple(t for b in now for t in b.tensors)
    return MemoryPlan(graph, calls, buffers, offsets, arena, peak, peak_op, live)
