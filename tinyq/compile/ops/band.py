"""Row-band execution of convolution chains: the lowering pass (C: firmware/kernels/tq_band.c).

A chain of CONV_2D / 3x3 DEPTHWISE_CONV_2D steps, each read only by the next, becomes one
step that produces its last layer's output one row at a time; every earlier layer keeps only
the rows its reader's window needs. The intermediate tensors never exist whole, and the
chain's output may be written over input rows no later row reads. That is how a network whose
peak is one large early activation plus the next (VWW's 48x48x8 -> 48x48x16) fits in far less
RAM than a plan of whole tensors (MCUNetV2's patch-based inference, done by rows, with sliding
windows instead of recomputed halos).

The planner (tinyq.compile.plan) tries the chains and keeps one only where the arena shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinyq.compile.ops import KernelCall
from tinyq.compile.ops.layout import align
from tinyq.compile.ops.lower_ops import conv_scratch_bytes

#: Kernels a band stage can call: whole-tensor kernels that take narrowed row parameters. (Not the
#: channel-planar depthwise: a stage makes one row, and each channel would gather three.)
BAND_KERNELS = ("tq_conv2d_s8", "tq_depthwise3x3_s8")
#: TQ_BAND_MAX_STAGES in tq_layout.h, generated from this (tinyq.compile.ops.gen).
MAX_STAGES = 8


@dataclass(frozen=True)
class BandFacts:
    """What running a chain by rows costs and allows."""

    windows: tuple[int, ...]        # rows each stage's output window holds (0: the last stage)
    window_bytes: int               # all windows together
    row_copies: int                 # rows moved down when windows slide (the cost of not recomputing)
    overlay_ok: bool                # the output may start where the input starts


def _p(call: KernelCall) -> dict:
    return dict(call.params)


def eligible(call: KernelCall, last: bool = False) -> bool:
    """A call a band can run row by row (the last one may be a conv with a fused ADD)."""
    if call.function == "tq_conv2d_add_s8":
        if not last:
            return False
    elif call.function not in BAND_KERNELS or call.params2 is not None:
        return False
    p = _p(call)
    return p["out_h"] > 1 and p["depth_multiplier"] in (0, 1)


def _rows_needed(p: dict, r: int) -> tuple[int, int]:
    top = r * p["stride_h"] - p["pad_h"]
    return max(top, 0), min(top + (p["k_h"] - 1) * p["dil_h"], p["in_h"] - 1)


def simulate(params: list[dict]) -> BandFacts:
    """Replay tq_band_run's order of work: the windows, the rows moved, and whether the chain's
    output can be written from the start of its input (no output row lands on an input row that a
    later row still reads)."""
    n = len(params)
    windows = tuple((params[k + 1]["k_h"] - 1) * params[k + 1]["dil_h"] + 1 for k in range(n - 1)) + (0,)
    first = [0] * n
    count = [0] * n
    copies = 0
    in_row = params[0]["in_w"] * params[0]["in_c"]
    out_row = params[-1]["out_w"] * params[-1]["out_c"]
    overlay_ok = True

    def produce(i: int, r: int) -> None:
        nonlocal copies
        lo, hi = _rows_needed(params[i], r)
        if i > 0:
            while first[i - 1] + count[i - 1] <= hi:
                produce(i - 1, first[i - 1] + count[i - 1])
        if i < n - 1:
            if count[i] == windows[i]:
                copies += count[i] - 1
                first[i] += 1
                count[i] -= 1
            count[i] += 1

    rows = params[-1]["out_h"]
    for r in range(rows):
        produce(n - 1, r)
        if r < rows - 1:
            # The first input row any later output row reads: stage 0's next row's window.
            nxt = first[0] + count[0] if n > 1 else r + 1
            lo_next = _rows_needed(params[0], nxt)[0]
            if (r + 1) * out_row > lo_next * in_row:
                overlay_ok = False
    return BandFacts(windows, window_offsets(params, windows)[-1], copies, overlay_ok)


def window_offsets(params: list[dict], windows) -> list[int]:
    """Where each stage's output window starts in the band's scratch (None: the last stage writes the
    chain's output), then the windows' total; the stages' own scratch follows them."""
    out, at = [], 0
    for p, rows in zip(params, windows):
        out.append(at if rows else None)
        at += align(rows * p["out_w"] * p["out_c"]) if rows else 0
    return out + [at]


def band_call(calls: list[KernelCall]) -> tuple[KernelCall, BandFacts]:
    """One tq_band_run call for the chain ``calls`` (each ``eligible``, each the only reader of the last)."""
    params = [_p(c) for c in calls]
    facts = simulate(params)
    stages = []
    for c, p in zip(calls, params):
        # A stage runs its kernel on one row at a time: the conv's scratch for one row of pixels.
        scratch = (conv_scratch_bytes(p["in_c"], p["out_c"], p["k_pairs"], p["out_w"],
                                      add=c.function == "tq_conv2d_add_s8", wino=p.get("w16") == 3)
                   if c.function != "tq_depthwise3x3_s8" else c.scratch_bytes)
        stages.append(replace(c, scratch_bytes=scratch, overwrites=(), inplace_scratch=0))
    x, y = calls[0].args[0], calls[-1].args[-1]
    # A fused ADD at the end: the sum goes over the skip tensor, row by row (as tq_conv2d_add_s8).
    skip = calls[-1].args[2] if calls[-1].function == "tq_conv2d_add_s8" else -1
    call = KernelCall(
        function="tq_band_run", params_type=None, params=(), args=(x, skip, y),
        macs=sum(c.macs for c in calls),
        # The windows, then the largest stage scratch (the stages run one at a time).
        scratch_bytes=facts.window_bytes + max(s.scratch_bytes for s in stages),
        consumes=tuple(t for c in calls for t in c.consumes),
        overwrites=(skip,) if skip >= 0 else ((x,) if facts.overlay_ok else ()),
        stages=tuple(stages), windows=facts.windows,
    )
    return call, facts
