"""The flash/RAM budget check, run before anything is compiled.

Flash: weights + per-op constants + the runtime's code. RAM: arena + stack + the
runtime's own static data. The code and static figures are measured constants of
tinyq's firmware (arm-none-eabi-gcc 12.2, -O2), with a margin; the build's linker
map gives the exact numbers later, and the linker script enforces the limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyq.boards import Board
from tinyq.errors import BudgetError
from tinyq.compile.ops.lower_ops import has_edge_streams
from tinyq.compile.plan import WEIGHTS, MemoryPlan, PlanOptions, plan_model

#: Kernels + runtime + start-up, on the QEMU twin (flash less weights and op parameters): measured
#: 42.2 KB for official VWW, which links the most (both 3x3 depthwise kernels, the row-band runner,
#: conv with its fast paths, unrolled loops (the conv tile's 32 K-pairs), int16-weight tiles and the
#: Winograd conv (any conv links it), each requantizing kernel twice (its _z form for an output zero
#: point of -128, chosen at run time), FC, pools, softmax), 34.5 KB for the digits example; rounded up.
CODE_BYTES = 44 * 1024
#: Runtime statics besides the arena and the I/O buffers (run table, timer state).
STATIC_BYTES = 512
#: The USB CDC-ACM console of boards that have one (console.usb): measured 3.7 KB of code and
#: 1,064 B of buffers and state (endpoint buffers, the 512-byte receive ring that holds a whole OUT packet
#: before the next is accepted, descriptors; arm-none-eabi-gcc 12.2 -O2); rounded up.
USB_CODE_BYTES = 4 * 1024
USB_STATIC_BYTES = 1280


@dataclass(frozen=True)
class Budget:
    flash_bytes: int
    flash_limit: int
    ram_bytes: int
    ram_limit: int
    breakdown: dict[str, int]

    @property
    def fits(self) -> bool:
        return self.flash_bytes <= self.flash_limit and self.ram_bytes <= self.ram_limit


def estimate(plan: MemoryPlan, board: Board) -> Budget:
    """Estimate flash and RAM for ``plan`` on ``board``."""
    g = plan.graph
    params = 64 * len(plan.calls)  # the call's parameter struct; its arrays are in weight_bytes
    io = g.input_bytes + g.output_bytes  # the device's input and output buffers
    usb = board.console.usb is not None
    code = CODE_BYTES + (USB_CODE_BYTES if usb else 0)
    # The per-op tick table of `profile` grows with the op count.
    static = STATIC_BYTES + 4 * len(plan.calls) + (USB_STATIC_BYTES if usb else 0)
    breakdown = {
        "weights": plan.weight_bytes, "op_params": params, "code": code,
        "arena": plan.arena_bytes, "io_buffers": io, "stack": board.memory.stack_bytes, "static": static,
    }
    flash = breakdown["weights"] + params + code
    ram = plan.ram_bytes + io + board.memory.stack_bytes + static
    return Budget(flash, board.memory.flash_bytes, ram, board.memory.ram_bytes, breakdown)


def check_budget(plan: MemoryPlan, board: Board, favour: str = "ram") -> Budget:
    """Raise :class:`BudgetError` with the numbers and the biggest contributors when it does not fit."""
    b = estimate(plan, board)
    g = plan.graph
    problems = []
    if b.flash_bytes > b.flash_limit:
        big = sorted((t for t in g.tensors if t.is_constant), key=lambda t: -t.nbytes)[:3]
        problems.append(
            f"flash {b.flash_bytes:,} B > {b.flash_limit:,} B available on {board.id} "
            f"(largest weights: {', '.join(f'{t.name} {t.nbytes:,} B' for t in big)})")
    if b.ram_bytes > b.ram_limit:
        live = sorted((g.tensors[i] for i in plan.live_at_peak), key=lambda t: -t.nbytes)[:3]
        problems.append(
            f"RAM {b.ram_bytes:,} B > {b.ram_limit:,} B (arena {plan.arena_bytes:,} B incl. scratch + stack "
            f"{board.memory.stack_bytes:,} B + I/O {b.breakdown['io_buffers']:,} B; live at the peak, op "
            f"{plan.peak_op}: {', '.join(f'{t.name} {t.shape} {t.nbytes:,} B' for t in live)})")
    if problems:
        hint = "use fewer channels or a smaller input, or a board with more memory"
        if b.flash_bytes > b.flash_limit and any(dict(c.params).get("w16") or has_edge_streams(c)
                                                 for c in plan.kernel_calls):
            hint = "build with --weights int8 (int16 weights and depthwise border streams take more flash); or " + hint
        elif b.ram_bytes > b.ram_limit and favour == "speed":
            hint = "leave out --favour speed (row bands lower the arena); or " + hint
        raise BudgetError(f"the model does not fit {board.id}: " + "; ".join(problems), hint=hint)
    return b


#: "auto" stores weights as int16 only while the firmware leaves at least this share of flash free.
FLASH_KEPT_FREE = 0.25


def plan_for_board(graph, board: Board, options: PlanOptions) -> MemoryPlan:
    """The plan ``options`` ask for on ``board``: the --weights policy made concrete. "auto" takes the int16
    layout (faster, twice the weights' flash) while the firmware still leaves a quarter of the flash free."""
    from dataclasses import replace

    from tinyq.errors import InputFileError

    if options.weights not in WEIGHTS:
        raise InputFileError(f"--weights {options.weights}: one of {', '.join(WEIGHTS)}")
    if options.weights != "auto":
        return plan_model(graph, options)
    wide = plan_model(graph, replace(options, weights="int16"))
    est = estimate(wide, board)
    if est.flash_bytes <= (1 - FLASH_KEPT_FREE) * est.flash_limit:
        return wide
    return plan_model(graph, replace(options, weights="int8"))
