"""Plan stage: a static, offset-based memory plan for every activation tensor.

Each activation gets a fixed offset in one arena, decided here on the host. Tensors
whose lifetimes do not overlap share memory; a RESHAPE output is the same buffer as
its input; an element-wise op writes over an input that dies there. A CONV_2D whose
only reader is a same-shape ADD runs the ADD in its epilogue and writes the sum over
the ADD's other input (a residual block's skip tensor), so the conv's own output never
exists: one activation tensor less at the residual block's peak. Placement is greedy
by size (largest first, lowest offset that does not collide with a tensor live at the
same time), the strategy of TFLM's GreedyMemoryPlanner, without TFLM's per-tensor
headers and persistent buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinyq.compile.analyze import model_macs
from tinyq.compile.dead_channels import DroppedChannels, drop_constant_channels
from tinyq.graph import Graph, Tensor
from tinyq.compile.ops import KernelCall, lower
from tinyq.compile.ops.layout import align as _align
from tinyq.compile.ops.lower_ops import (EDGE_STREAMS, add_table_params, conv_end_overlay, conv_scratch_bytes,
                                 conv_tile_biased, conv_winograd_ok, depthwise3x3_fused, depthwise3x3_plane_call,
                                 depthwise3x3_plane_instructions, depthwise3x3_scratch_bytes,
                                 depthwise3x3_windowed_instructions, has_edge_streams, strided_pointwise,
                                 subsample_call)


@dataclass(frozen=True)
class Buffer:
    """One arena region: the tensors stored in it, when it is live, where it is."""

    tensors: tuple[int, ...]
    size: int
    first: int  # op index that writes it (-1: the model input)
    last: int   # last op index that reads it (len(ops): the model output)
    offset: int


@dataclass(frozen=True)
class Step:
    """One call of the generated model: an operator, or a CONV_2D with the ADD fused into it."""

    name: str                  # "CONV_2D", "CONV_2D+ADD"
    ops: tuple[int, ...]       # the graph operators it computes
    inputs: tuple[int, ...]    # activation tensors it reads
    outputs: tuple[int, ...]
    call: KernelCall
    #: Inputs the output may be written over when they die here (the call's, or a fused step's).
    overwrites: tuple[int, ...] = ()


def shared_arrays(calls) -> dict[tuple[int, str], tuple[int, str]]:
    """Constant arrays emitted once for several calls: (call index, array name) -> (index of the earlier
    call whose array of that name it is, name).

    Two calls share an array when both carry one of the graph's constant tensors (``consumes``) and
    derive the same values from it, e.g. the recurrent kernel every step of an unrolled LSTM multiplies
    by (tinyq.model.recurrent): without this, one copy a timestep. Calls that carry no constant tensor share
    equal arrays whatever they read (tables made from scales). Calls of a band step keep their own.
    """
    from collections import Counter

    readers = Counter(i for c in calls if not c.stages for i in set(c.consumes))
    first: dict[tuple, list[tuple[int, set]]] = {}
    tables: dict[tuple, int] = {}
    out = {}
    for k, c in enumerate(calls):
        if c.stages:
            continue
        if not c.consumes:
            # A call that carries no constant tensor derives its arrays from scales alone (a LOGISTIC's
            # table): equal ones are one array, e.g. the gates of every step of an unrolled GRU.
            for a in c.arrays:
                j = tables.setdefault((a.name, a.ctype, a.values), k)
                if j != k:
                    out[(k, a.name)] = (j, a.name)
            continue
        if not any(readers[i] > 1 for i in c.consumes):
            continue  # only calls that carry a tensor another call carries too
        for a in c.arrays:
            key = (a.name, a.ctype, a.values)
            earlier = first.setdefault(key, [])
            j = next((j for j, cons in earlier if cons & set(c.consumes)), None)
            if j is None:
                earlier.append((k, set(c.consumes)))
            else:
                out[(k, a.name)] = (j, a.name)
    return out


@dataclass(frozen=True, eq=False)
class MemoryPlan:
    """The plan stage's result."""

    graph: Graph
    steps: tuple[Step, ...]
    buffers: tuple[Buffer, ...]  # tensors' buffers, then each step's scratch (no tensors)
    offsets: dict[int, int]  # tensor index -> arena offset
    scratch_offsets: dict[int, int]  # step index -> arena offset of its scratch
    arena_bytes: int         # everything: activations and every step's scratch
    peak_bytes: int          # the most bytes live at one time (the lower bound of any plan)
    peak_op: int             # op index at which the peak occurs
    live_at_peak: tuple[int, ...]  # tensor indices
    #: The steps as lowered, before placement grew in-place steps' scratch: what another
    #: placement (a lowering pass trying alternatives) starts from.
    lowered: tuple[Step, ...] = ()
    #: Constant channels the graph lost before lowering (tinyq.compile.dead_channels): ``graph`` is without them.
    dropped_channels: tuple[DroppedChannels, ...] = ()
    #: The model's MACs as given (tinyq.compile.analyze.model_macs of the graph before constant channels left);
    #: :attr:`macs` is what runs.
    model_macs: int = 0

    @property
    def calls(self) -> tuple[KernelCall, ...]:
        return tuple(st.call for st in self.steps)

    @property
    def kernel_calls(self) -> tuple[KernelCall, ...]:
        """Every kernel call with its own constants: a band step's stages in place of the band."""
        return tuple(s for c in self.calls for s in (c.stages or (c,)))

    @property
    def weight_bytes(self) -> int:
        """Bytes of constants the model puts in flash: tensors passed as they are, plus the
        re-laid-out weights and per-channel parameters of each call."""
        used = {i for c in self.kernel_calls for i in c.args if isinstance(i, int) and i >= 0}
        tensors = sum(t.nbytes for t in self.graph.tensors if t.is_constant and t.index in used)
        shared = shared_arrays(self.calls)
        once = sum(a.nbytes for k, c in enumerate(self.calls) for a in c.arrays if (k, a.name) in shared)
        return tensors + sum(a.nbytes for c in self.kernel_calls for a in c.arrays) - once

    @property
    def scratch_bytes(self) -> int:
        """The largest scratch a step needs (im2col columns, patches), planned inside the arena."""
        return max((c.scratch_bytes for c in self.calls), default=0)

    @property
    def ram_bytes(self) -> int:
        """Everything the model needs in RAM besides the stack and I/O buffers: the arena."""
        return self.arena_bytes

    @property
    def activation_peak_bytes(self) -> int:
        """The most bytes of activation tensors (no scratch) live at one step."""
        tensors = [b for b in self.buffers if b.tensors]
        return max((sum(b.size for b in tensors if b.first <= i <= b.last)
                    for i in range(-1, len(self.steps) + 1)), default=0)

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.calls)

    def layers(self) -> list[dict]:
        """Each step as the reports show it: op(s), the kernel it calls, MACs, output shape, scratch."""
        return [{"step": i, "op": st.name, "ops": list(st.ops), "kernel": st.call.label, "macs": st.call.macs,
                 "output_shape": list(self.graph.tensors[st.outputs[0]].shape) if st.outputs else [],
                 "scratch_bytes": st.call.scratch_bytes} for i, st in enumerate(self.steps)]

    def constant_channels(self) -> dict | None:
        """The constant channels the graph lost (tinyq.compile.dead_channels), as the reports show them, or None."""
        if not self.dropped_channels:
            return None
        return {"dropped": sum(len(d.channels) for d in self.dropped_channels),
                "of": sum(d.of for d in self.dropped_channels), "layers": len(self.dropped_channels),
                "macs_run": self.macs,
                "spaces": [{"tensors": [self.graph.tensors[t].name for t in d.tensors], "channels": list(d.channels),
                            "of": d.of} for d in self.dropped_channels]}

    def bands(self) -> list[dict]:
        """The steps that run a conv chain by rows: their layers, windows, and the rows moved as
        windows slide (nothing is recomputed)."""
        from tinyq.compile.ops import band

        out = []
        for i, st in enumerate(self.steps):
            if st.call.stages:
                facts = band.simulate([dict(s.params) for s in st.call.stages])
                out.append({"step": i, "name": st.name, "layers": len(st.call.stages), "ops": list(st.ops),
                            "window_rows": list(facts.windows), "window_bytes": facts.window_bytes,
                            "row_copies": facts.row_copies, "output_over_input": facts.overlay_ok})
        return out

    def timeline(self) -> dict:
        """The arena over the step sequence: every buffer (tensor or scratch) with its live steps and
        place, and the peak. What `memory.png` draws, as data."""
        out = []
        for b in self.buffers:
            label = (" = ".join(self.graph.tensors[t].name.split(";")[0][-40:] for t in b.tensors) if b.tensors
                     else f"scratch of step {b.first}")
            out.append({"kind": "tensor" if b.tensors else "scratch", "label": label, "first": b.first,
                        "last": b.last, "offset": b.offset, "size": b.size})
        return {"steps": [st.name for st in self.steps], "buffers": out, "arena_bytes": self.arena_bytes,
                "peak_step": self.peak_op}


def _step(graph: Graph, op, call: KernelCall | None = None) -> Step:
    """``op`` lowered to a step (by ``call``, a lowering other than the default, if given)."""
    call = call or lower(graph, op)
    acts = tuple(t for t in op.inputs if t >= 0 and not graph.tensors[t].is_constant)
    return Step(op.opcode, (op.index,), acts, tuple(op.outputs), call, tuple(t for t in call.overwrites if t in acts))


def _steps(graph: Graph) -> list[Step]:
    """Lower every operator to a step."""
    return [_step(graph, op) for op in graph.operators]


def fuse_conv_add(graph: Graph, steps: list[Step]) -> list[Step]:
    """Run each ADD that is the only reader of a CONV_2D's output in that conv's epilogue.

    The fused call computes the conv's int8 output a group of pixels at a time into
    scratch, adds the ADD's other input (the skip tensor) and writes the sum over the
    skip tensor, which therefore must exist before the conv runs and be read by nobody
    after it but this ADD. Results are bit for bit those of the two ops.
    """
    readers: dict[int, list[int]] = {}
    producer: dict[int, int] = {}
    for i, st in enumerate(steps):
        for t in st.inputs:
            readers.setdefault(t, []).append(i)
        for t in st.outputs:
            producer[t] = i
    outputs = set(graph.outputs)
    fused: dict[int, Step] = {}
    dropped: set[int] = set()
    for i, st in enumerate(steps):
        if st.call.function != "tq_conv2d_s8" or st.outputs[0] in outputs:
            continue
        t = st.outputs[0]
        if len(readers.get(t, [])) != 1:
            continue
        j = readers[t][0]
        add = steps[j]
        if add.call.function != "tq_add_s8" or len(set(add.inputs)) != 2 or j in dropped:
            continue
        skip = next(x for x in add.inputs if x != t)
        if skip in outputs or producer.get(skip, -1) >= i or any(i <= r < j for r in readers[skip]):
            continue
        fields, tables = add_table_params(graph, graph.operators[add.ops[0]], first=t)
        conv = st.call
        prm = dict(conv.params)
        # The conv's output goes through a 4-pixel buffer at the end of its scratch.
        scratch = conv_scratch_bytes(prm["in_c"], prm["out_c"], prm["k_pairs"], prm["out_h"] * prm["out_w"], add=True)
        call = replace(conv, function="tq_conv2d_add_s8", params2=("tq_addtab_params_t", fields),
                       args=(conv.args[0], conv.args[1], skip, add.outputs[0]), arrays=conv.arrays + tables,
                       macs=conv.macs, scratch_bytes=scratch, overwrites=(skip,),
                       inplace_scratch=0, end_overlay=0)
        fused[i] = Step("CONV_2D+ADD", st.ops + add.ops, (st.inputs[0], skip), add.outputs, call, call.overwrites)
        dropped.add(j)
    return [fused.get(i, st) for i, st in enumerate(steps) if i not in dropped]


#: What the planner favours where RAM and speed pull apart: "ram" (the default) takes every
#: arena saving, "speed" leaves out those that cost time (row bands, small depthwise patches) and
#: takes the faster depthwise kernel even where its scratch grows the arena.
FAVOURS = ("ram", "speed")


#: Kernels with an int16-weight variant (the _w16 functions of tq_m4_conv.S / tq_m4_fc.S and their C twins in
#: tq_conv.c / tq_fc.c).
W16_KERNELS = ("tq_conv2d_s8", "tq_conv2d_add_s8", "tq_fully_connected_s8")


def with_int16_weights(st: Step, graph: Graph, wino: bool = False) -> Step:
    """``st`` with its weights stored as int16 pairs, if its kernel has that variant: w16 = 1, or for a
    conv whose every channel pair runs in the requantizing tile, w16 = 2 (layout.tile_stream: the
    biases ride in the stream, one add less an output). With ``wino`` (the weights it transforms are
    ``graph``'s), a 3x3 stride-1 conv that conv_winograd_ok takes runs by Winograd F(2, 3),
    w16 = 3 (layout.winograd_stream): a third fewer multiplies, 4/3 of the direct conv's scratch and
    1.3 times its int16 weights' flash."""
    from tinyq.compile.ops import ConstArray
    from tinyq.compile.ops.layout import int16_words, tile_stream, winograd_stream

    c = st.call
    p = dict(c.params)
    if c.function not in W16_KERNELS or p.get("w16"):
        return st
    mode = 2 if c.function != "tq_fully_connected_s8" and conv_tile_biased(p) else 1
    chan = next((a.values for a in c.arrays if a.name == "chan"), None)
    if mode == 2 and wino and conv_winograd_ok(p):
        op = graph.operators[st.ops[0]]
        x, w, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
        arrays = tuple(ConstArray("w", a.ctype, winograd_stream(w.data, chan)) if a.name == "w" else a
                       for a in c.arrays)
        add = c.function == "tq_conv2d_add_s8"
        return replace(st, call=replace(
            c, arrays=arrays, params=c.params + (("w16", 3),),
            scratch_bytes=conv_scratch_bytes(p["in_c"], p["out_c"], p["k_pairs"], p["out_h"] * p["out_w"], add=add,
                                             wino=True),
            end_overlay=conv_end_overlay(p, x.nbytes, y.nbytes, group=8) if c.end_overlay else 0))
    arrays = tuple(ConstArray(a.name, a.ctype, tile_stream(int16_words(a.values, scale=2), chan) if mode == 2
                              else int16_words(a.values)) if a.name == "w" else a for a in c.arrays)
    return replace(st, call=replace(c, arrays=arrays, params=c.params + (("w16", mode),)))


def without_edge_streams(st: Step) -> Step:
    """``st`` without weight streams for 3x3 depthwise border columns (the compact layout: those pixels go
    through a patch instead)."""
    c = st.call
    if not has_edge_streams(c):
        return st
    fields, arrays = zip(*EDGE_STREAMS.values())
    return replace(st, call=replace(c, params=tuple((f, v) for f, v in c.params if f not in fields),
                                    arrays=tuple(a for a in c.arrays if a.name not in arrays)))


@dataclass(frozen=True)
class PlanOptions:
    """How the planner trades RAM, flash and instructions: the one set of options every caller passes.

    ``favour``: "ram" takes every arena saving; "speed" leaves out those that cost instructions (official
    VWW: 32,292 B arena and 5.16 M instructions, or 55,360 B and 4.89 M). ``weights``: "int8" (the smallest
    form), "int16" (conv and FC weights as int16 pairs, twice their flash, and 3x3 depthwise border columns
    with weight streams of their own) or "auto" (int16 while a quarter of the board's flash stays free:
    :func:`tinyq.compile.budget.plan_for_board` resolves it). The rest are the passes' switches, which the
    tests force: ``fuse`` (conv + ADD), ``inplace`` (outputs over dying inputs, small patches, subsampled
    projections), ``band`` (row bands, favouring RAM only), ``dw_planes`` (3x3 depthwise channel-planar where
    faster: None, everywhere it applies: True, never: False), ``wino`` (with int16 weights, 3x3 stride-1
    convs by Winograd F(2, 3): everywhere True, never False, None unless that grows the arena when favouring
    RAM), ``constants`` (constant channels leave the graph first, folded into their readers' biases: exact;
    official VWW runs 3.92 M of its 7.49 M MACs). ``fuse=False, inplace=False, band=False`` is the plain
    greedy plan, every tensor a buffer of its own: the benchmarks' baseline.
    """

    favour: str = "ram"
    weights: str = "int8"
    fuse: bool = True
    inplace: bool = True
    band: bool = True
    dw_planes: bool | None = None
    wino: bool | None = None
    constants: bool = True

    def __post_init__(self):
        if self.favour not in FAVOURS:
            raise ValueError(f"favour must be one of {FAVOURS}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}")

    @property
    def weights16(self) -> bool:
        return self.weights == "int16"


#: What --weights may say ("auto" needs a board to decide: tinyq.compile.budget.plan_for_board).
WEIGHTS = ("auto", "int8", "int16")


def plan_model(graph: Graph, options: PlanOptions = PlanOptions()) -> MemoryPlan:
    """Plan ``graph``: the passes below, in order, each from steps (or a plan) to steps (or a plan).

    1. constant channels leave the graph (:func:`drop_constant_channels`);
    2. every op is lowered to a kernel call (:func:`_steps`);
    3. Winograd is chosen per conv (:func:`winograd_pass`), around
    4. the layout passes of :func:`layout_passes` (fusion, in-place, weight layout, placement, bands,
       small patches, planar depthwise);
    5. strided projections read subsampled copies where the arena shrinks (:func:`subsample_pass`).
    """
    if options.weights == "auto":
        raise ValueError("weights='auto' needs a board: plan with tinyq.compile.budget.plan_for_board")
    given_macs = model_macs(graph)
    graph, dropped = drop_constant_channels(graph) if options.constants else (graph, ())
    steps = _steps(graph)
    plan = winograd_pass(graph, steps, options)
    if options.inplace:
        plan = subsample_pass(graph, steps, plan, options)
    return replace(plan, dropped_channels=dropped, model_macs=given_macs)


def winograd_pass(g: Graph, steps: list[Step], options: PlanOptions) -> MemoryPlan:
    """The layout passes with 3x3 stride-1 convs by Winograd F(2, 3) as ``options.wino`` says; with None,
    each such conv keeps Winograd only where the arena does not grow (its scratch is 4/3 of the direct
    conv's), or everywhere when favouring speed."""
    able = [st.ops[0] for st in steps if options.weights16 and st.call.function in ("tq_conv2d_s8", "tq_conv2d_add_s8")
            and conv_winograd_ok(dict(st.call.params))]
    if options.wino is not None or not able:
        return layout_passes(g, steps, frozenset(able) if options.wino else frozenset(), options)
    if options.favour == "speed":
        return layout_passes(g, steps, frozenset(able), options)
    best, chosen = layout_passes(g, steps, frozenset(), options), frozenset()
    for op in able:
        trial = layout_passes(g, steps, chosen | {op}, options)
        if trial.arena_bytes <= best.arena_bytes:
            best, chosen = trial, chosen | {op}
    return best


def layout_passes(g: Graph, steps: list[Step], winograd: frozenset, options: PlanOptions) -> MemoryPlan:
    """Steps to a placed plan: conv + ADD fusion, in-place writes, the weight layout, placement in one arena
    (:func:`place`), then the passes that rework a placed plan where it pays: row bands, small depthwise
    patches, channel-planar depthwise."""
    ram = options.favour == "ram"
    if options.fuse:
        steps = fuse_conv_add(g, steps)
    if not options.inplace:
        steps = [replace(st, overwrites=()) for st in steps]
    steps = [with_int16_weights(st, g, st.ops[0] in winograd) if options.weights16 else without_edge_streams(st)
             for st in steps]
    plan = place(g, steps)
    if options.band and ram:
        plan = band_chains(g, plan)
    if options.inplace and ram:
        plan = small_patches(g, plan)
    if options.dw_planes is not False:
        plan = planar_depthwise(g, plan, every=bool(options.dw_planes), keep_arena=ram, inplace=options.inplace)
    return plan


def subsample_pass(graph: Graph, steps: list[Step], plan: MemoryPlan, options: PlanOptions) -> MemoryPlan:
    """A strided 1x1 conv (a residual block's projection) may read a subsampled copy of its input, taken
    early, so the full input can die sooner: kept only where the arena shrinks."""
    for op in graph.operators:
        if not strided_pointwise(graph, op) or op.inputs[0] in graph.outputs:
            continue
        g2, steps2 = split_strided_pointwise(plan.graph, steps, op.index)
        trial = winograd_pass(g2, steps2, options)
        if trial.arena_bytes < plan.arena_bytes:
            plan, steps = trial, steps2
    return plan


def split_strided_pointwise(graph: Graph, steps: list[Step], op_index: int) -> tuple[Graph, list[Step]]:
    """Run the strided 1x1 CONV_2D ``op_index`` at stride 1 on ``x[::s_h, ::s_w]``, a copy taken
    right after its input ``x`` is made (a SUBSAMPLE step). Bit for bit the same outputs: a 1x1
    window never pads, so the conv reads exactly those pixels.

    Why: in a residual block whose projection is a strided 1x1 conv, the whole block input stays
    live until the projection runs; with the copy (a quarter of the bytes at stride 2) it dies at
    the main branch's first conv, whose output (a row band's) may then go over it. Official IC
    ResNet-8: 28,416 -> 24,576 B. Returns the graph with the copy's tensor added, and the steps.
    """
    op = graph.operators[op_index]
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    s_h, s_w = op.options.get("stride_h", 1), op.options.get("stride_w", 1)
    xs = Tensor(len(graph.tensors), f"{x.name}[::{s_h},::{s_w}]", (x.shape[0], y.shape[1], y.shape[2], x.shape[3]),
                x.dtype, x.quant)
    g2 = replace(graph, tensors=graph.tensors + (xs,))
    conv = _step(g2, replace(op, inputs=(xs.index, *op.inputs[1:]),
                             options={**op.options, "stride_h": 1, "stride_w": 1}))
    out = [conv if st.ops == (op_index,) else st for st in steps]
    producer = next((i for i, st in enumerate(out) if x.index in st.outputs), -1)
    out.insert(producer + 1, Step("SUBSAMPLE", (op_index,), (x.index,), (xs.index,),
                                  subsample_call(x, xs, s_h, s_w)))
    return g2, out


def _with_small_patch(st: Step, groups: int) -> Step:
    p = dict(st.call.params)
    scratch = depthwise3x3_scratch_bytes(p["in_c"], p["dil_w"], depthwise3x3_fused(p), small_patch=groups)
    return replace(st, call=replace(st.call, params=st.call.params + (("small_patch", groups),), scratch_bytes=scratch))


def small_patches(graph: Graph, plan: MemoryPlan) -> MemoryPlan:
    """Give 3x3 depthwise steps a small border patch where that lowers the arena.

    Their scratch holds a 3x3 patch of every channel and a row of zero points for border
    pixels (official KWS, windowed: 768 of 9,408 bytes). With ``small_patch`` = G a border pixel goes G groups
    of 4 channels at a time through 36 * G bytes instead, slower; so a step keeps it only where
    the arena shrinks, with the largest G (fewest calls) the arena allows.
    """
    steps = list(plan.lowered)
    dw = [i for i, st in enumerate(steps) if st.call.function == "tq_depthwise3x3_s8"]
    if not dw:
        return plan

    def trial(choice: dict[int, int]) -> MemoryPlan:
        return place(graph, [_with_small_patch(st, choice[i]) if choice.get(i) else st for i, st in enumerate(steps)])

    choice = {i: 1 for i in dw}
    best = trial(choice)
    if best.arena_bytes >= plan.arena_bytes:
        return plan
    for i in dw:
        groups = dict(steps[i].call.params)["in_c"] // 4
        for g in (0, *sorted({groups, 8, 4, 3, 2} - {1}, reverse=True)):  # 0: the whole patch, the fastest
            if g > groups:
                continue
            t = trial({**choice, i: g})
            if t.arena_bytes <= best.arena_bytes:
                choice[i], best = g, t
                break
    return best


def planar_depthwise(graph: Graph, plan: MemoryPlan, every: bool = False, keep_arena: bool = True,
                     inplace: bool = True) -> MemoryPlan:
    """Run 3x3 depthwise steps channel-planar (tq_depthwise3x3_plane_s8) where that takes fewer
    instructions than the windowed kernel (every one it applies to with ``every``) and, with
    ``keep_arena``, the arena does not grow.

    Why a choice: the planar kernel gathers each channel into an int16 plane, then makes four
    outputs from one three-word load a kernel row (about 21 instructions an output, 33 a pair
    on short rows, against 55 a pair in the windowed kernel); the gather costs about 3
    instructions an input, which stride 2 reads four of an output. Official KWS: 227 K -> 153 K
    instructions a layer; VWW's stride-2 layers stay windowed. Its scratch is one channel's plane,
    or two (``planes`` 2: two channels gathered together, a quarter fewer gather instructions,
    tried first), and it runs in place at any stride, where the windowed kernel holds a ring of
    rows back; so the arena may shrink, or grow (a 24x24 plane is 1,352 B). Band stages keep the
    windowed kernel (a row at a time, each channel would gather three rows for one). A 3x3 layer
    whose channels are not a multiple of 4, which the windowed kernel cannot take, runs
    channel-planar rather than on the generic C kernel.
    """
    steps = list(plan.lowered)
    best = plan
    for i, st in enumerate(steps):
        if st.call.function not in ("tq_depthwise3x3_s8", "tq_depthwise_conv2d_s8") or len(st.ops) != 1:
            continue
        op = graph.operators[st.ops[0]]
        # Two planes (two channels gathered together, a quarter fewer gather instructions) first, then one.
        for planes in (2, 1):
            call = depthwise3x3_plane_call(graph, op, planes)
            if call is None:
                continue
            # The generic kernel (channels not a multiple of 4) is plain C, several times slower than either.
            faster = (st.call.function == "tq_depthwise_conv2d_s8"
                      or depthwise3x3_plane_instructions(dict(call.params))
                      < depthwise3x3_windowed_instructions(dict(st.call.params)))
            if not (every or faster):
                continue
            planar = _step(graph, op, call)
            trial_steps = steps[:i] + [planar if inplace else replace(planar, overwrites=())] + steps[i + 1:]
            trial = place(graph, trial_steps)
            if not keep_arena or every or trial.arena_bytes <= best.arena_bytes:
                steps, best = trial_steps, trial
                break
    return best


_SHORT = {"CONV_2D": "CONV", "DEPTHWISE_CONV_2D": "DW"}


#: A row band costs instructions (rows moved between windows, a call a row, windowed depthwise where
#: the whole layer would run channel-planar), so one is kept only where it lowers the arena by at least
#: this share of it. Official VWW: its first band takes the arena from 55,360 to 32,292 B; a second,
#: over the next four layers, would save 80 B more (0.25 %) for 147 K instructions (2.5 %).
BAND_MIN_SAVING = 0.01


def band_chains(graph: Graph, plan: MemoryPlan, rounds: int = 3) -> MemoryPlan:
    """Run a chain of conv steps by rows (tinyq.compile.ops.band) where that lowers the arena by at least
    BAND_MIN_SAVING of it.

    Only a chain through the step where the plan peaks can lower it; each round tries every such
    chain (up to band.MAX_STAGES steps, each the only reader of the one before) and keeps the
    smallest arena, until no chain helps.
    """
    from tinyq.compile.ops import band

    for _ in range(rounds):
        steps = list(plan.lowered)
        readers: dict[int, list[int]] = {}
        for i, st in enumerate(steps):
            for t in st.inputs:
                readers.setdefault(t, []).append(i)
        outputs = set(graph.outputs)

        def links(k: int) -> bool:  # step k feeds step k+1 (as its conv input) and nothing else
            t = steps[k].outputs[0]
            return t not in outputs and readers.get(t) == [k + 1] and steps[k + 1].inputs[:1] == (t,)

        peak = max(0, min(plan.peak_op, len(steps) - 1))
        best = plan
        for i in range(max(0, peak - band.MAX_STAGES + 1), peak + 1):
            for j in range(max(i + 1, peak), min(len(steps), i + band.MAX_STAGES)):
                chain = steps[i:j + 1]
                if (not all(band.eligible(st.call, last=st is chain[-1]) for st in chain)
                        or not all(links(k) for k in range(i, j))):
                    continue
                call, _ = band.band_call([st.call for st in chain])
                name = "BAND:" + ">".join(_SHORT.get(st.name, st.name) for st in chain)
                # The band reads the first stage's inputs and every tensor a later stage reads from outside the
                # chain (a fused ADD's skip): all must live until the band has run.
                made = {o for st in chain for o in st.outputs}
                reads = tuple(dict.fromkeys(t for st in chain for t in st.inputs if t not in made))
                fused = Step(name, tuple(o for st in chain for o in st.ops), reads, chain[-1].outputs,
                             call, call.overwrites)
                trial = place(graph, steps[:i] + [fused] + steps[j + 1:])
                if trial.arena_bytes <= best.arena_bytes - max(1, int(plan.arena_bytes * BAND_MIN_SAVING)):
                    best = trial
        if best is plan:
            return plan
        plan = best
    return plan


@dataclass
class Lifetimes:
    """Buffers (groups of tensors sharing one place) with the first and last step each is live in.

    A group is named by one of its tensors (its root). ``disp`` places a tensor that many bytes
    into its group's buffer (0 for most).
    """

    root: dict[int, int]
    first: dict[int, int]
    last: dict[int, int]
    members: dict[int, list[int]]
    disp: dict[int, int]

    def find(self, t: int) -> int:
        while self.root.get(t, t) != t:
            t = self.root[t]
        return t

    def merge(self, into: int, other: int) -> None:
        """Make group ``other`` part of group ``into``: one buffer, live over both lifetimes."""
        self.root[other] = into
        self.last[into] = max(self.last[into], self.last.pop(other))
        self.first[into] = min(self.first[into], self.first.pop(other))
        self.members[into].extend(self.members.pop(other))


def lifetimes(inputs, outputs, steps: list[Step]) -> Lifetimes:
    """Every tensor's group and live range: views (RESHAPE) share their input's group; the model
    input is live from step -1, its output until after the last step, a state kept between inferences
    (KernelCall.persistent) over both."""
    lt = Lifetimes({}, {}, {}, {}, {})
    for st in steps:
        if st.call.alias:
            lt.root[lt.find(st.outputs[0])] = lt.find(st.inputs[0])

    def touch(t: int, step: int) -> None:
        r = lt.find(t)
        lt.first[r] = min(lt.first.get(r, step), step)
        lt.last[r] = max(lt.last.get(r, step), step)
        if t not in lt.members.setdefault(r, []):
            lt.members[r].append(t)

    for t in inputs:
        touch(t, -1)
    for i, st in enumerate(steps):
        for t in st.inputs:
            touch(t, i)
        for t in st.outputs:
            touch(t, i)
    for t in outputs:
        touch(t, len(steps))
    for st in steps:  # state kept between inferences (an SVDF's): live over the whole run, so nothing shares it
        for t in st.call.persistent:
            touch(t, -1)
            touch(t, len(steps))
    return lt


def alias(lt: Lifetimes, steps: list[Step], nbytes) -> list[Step]:
    """Merge outputs into inputs they may overwrite; returns the steps with in-place scratch added.

    In place: a step may write its output over an input it declared it can (element-wise reads,
    or a conv that has read what it overwrites) when that input dies there and is no smaller.
    Inside: a conv whose input dies there may have it in its output buffer's last bytes
    (``end_overlay``: the kernel never writes over an input row it still reads, proven at lowering).
    """
    steps = list(steps)
    for i, st in enumerate(steps):
        out = lt.find(st.outputs[0])
        for t in st.overwrites:
            r = lt.find(t)
            if r != out and lt.last[r] == i and nbytes(st.outputs[0]) <= nbytes(t):
                lt.merge(r, out)
                if st.call.inplace_scratch:
                    steps[i] = replace(st, call=replace(st.call, scratch_bytes=st.call.scratch_bytes
                                                        + st.call.inplace_scratch))
                break
    for i, st in enumerate(steps):
        d = st.call.end_overlay
        if not d or len(st.inputs) != 1:
            continue
        out, r = lt.find(st.outputs[0]), lt.find(st.inputs[0])
        if r == out or lt.last[r] != i or lt.first[out] != i:
            continue
        if any(lt.disp.get(t, 0) for t in lt.members[r]) or max(nbytes(t) for t in lt.members[r]) + d > \
                nbytes(st.outputs[0]):
            continue
        for t in lt.members[r]:
            lt.disp[t] = d
        lt.merge(r, out)
    return steps


def placement(sizes: dict[int, int], first: dict[int, int], last: dict[int, int]) -> dict[int, int]:
    """Offsets for buffers of ``sizes`` live over [first, last]: greedy by size, each at the lowest
    offset where it overlaps no buffer already placed that is live at the same time (TFLM's
    strategy)."""
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
    return offset_of


def place(graph: Graph, steps: list[Step]) -> MemoryPlan:
    """Lifetimes, aliasing (views, in-place steps) and placement of ``steps``' tensors and scratch."""
    lowered = tuple(steps)
    n_ops = len(steps)
    lt = lifetimes(graph.inputs, graph.outputs, list(steps))
    steps = alias(lt, list(steps), lambda t: graph.tensors[t].nbytes)
    first, last, members, disp = lt.first, lt.last, lt.members, lt.disp
    sizes = {r: _align(max(graph.tensors[t].nbytes + disp.get(t, 0) for t in ts)) for r, ts in members.items()}
    # Each step's scratch is a buffer of its own that lives for that step only (ids below 0).
    for i, st in enumerate(steps):
        if st.call.scratch_bytes:
            r = -(i + 1)
            sizes[r], first[r], last[r], members[r] = _align(st.call.scratch_bytes), i, i, []
    offset_of = placement(sizes, first, last)

    buffers = tuple(
        Buffer(tuple(sorted(members[r])), sizes[r], first[r], last[r], offset_of[r])
        for r in sorted(members, key=lambda r: (offset_of[r], first[r]))
    )
    offsets = {t: b.offset + disp.get(t, 0) for b in buffers for t in b.tensors}
    scratch_offsets = {-r - 1: offset_of[r] for r in sizes if r < 0}
    arena = max((b.offset + b.size for b in buffers), default=0)

    peak, peak_op, live = 0, -1, ()
    for step in range(-1, n_ops + 1):
        now = [b for b in buffers if b.first <= step <= b.last]
        total = sum(b.size for b in now)
        if total > peak:
            peak, peak_op, live = total, step, tuple(t for b in now for t in b.tensors)
    return MemoryPlan(graph, tuple(steps), buffers, offsets, scratch_offsets, arena, peak, peak_op, live, lowered)
