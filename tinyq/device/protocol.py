"""The line protocol between tinyq firmware and the host, and its pure parser.

The firmware (``firmware/runtime/main.c``) prints, and the host sends, text lines::

    device: tinyq-info v=1 board=nano33 target=qemu model=<12 hex> in=<B> out=<B> arena=<B>
            ops=<n> macs=<n> timer=<dwt|systick> timer_hz=<Hz> cpu_hz=<Hz> static_ram=<B>
            flash=<B> stack=<B> consoles=<uart|uart+usb|uart,usb-off>
    device: tinyq-ready                         (after boot and after every command)
    host:   load <hex>                          the int8 input, two hex digits a byte
    device: tq-ok load
    host:   infer <N> <W>                       W warm-up runs, then N timed runs
    device: m-lap-us-<µs> / m-lap-us-<µs>       MLPerf Tiny runner timestamps around the N runs
            tq-run <i> <ticks>                  one line per timed run
            tq-median <ticks>
            tq-output <hex>                     the output bytes
            tq-stack <B>                        stack high-water mark (painted stack)
            tq-done infer
    host:   profile                             one run with the timer read between ops
    device: tq-layer <i> <opcode> <ticks> ...   tq-done profile
    host:   info                                the tinyq-info line again
    host:   quit
    device: tq-bye
    device: tq-error <what> / tq-fault          a refused command / a CPU fault

Ticks count at ``timer_hz``: the DWT cycle counter on silicon, SysTick elsewhere.
:func:`parse_log` turns a captured transcript into a frozen :class:`DeviceReport`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tinyq.errors import ProtocolError

SENTINEL_INFER = "tq-done infer"
SENTINEL_PROFILE = "tq-done profile"


@dataclass(frozen=True)
class DeviceInfo:
    """The boot line: what firmware and model the device runs."""

    board: str
    target: str
    model: str
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    ops: int
    macs: int
    timer: str
    timer_hz: int
    cpu_hz: int
    static_ram_bytes: int
    flash_bytes: int
    stack_bytes: int
    consoles: str = ""  # "uart", "uart+usb", "uart,usb-off" (absent from older firmware)


@dataclass(frozen=True)
class InferResult:
    """One ``infer`` command's answer."""

    run_ticks: tuple[int, ...]
    median_ticks: int
    output: bytes
    stack_high_water: int
    lap_us: tuple[int, ...] = ()


@dataclass(frozen=True)
class DeviceReport:
    """Everything a transcript says, in order."""

    info: DeviceInfo | None
    infers: tuple[InferResult, ...] = ()
    layers: tuple[tuple[str, int], ...] = ()  # (opcode, ticks) of the last profile
    errors: tuple[str, ...] = ()
    fault: bool = False
    complete: bool = False  # a command's closing sentinel was seen
    lines: tuple[str, ...] = field(default=(), repr=False)


_INFO_KEYS = {
    "board": ("board", str), "target": ("target", str), "model": ("model", str),
    "in": ("input_bytes", int), "out": ("output_bytes", int), "arena": ("arena_bytes", int),
    "ops": ("ops", int), "macs": ("macs", int), "timer": ("timer", str), "timer_hz": ("timer_hz", int),
    "cpu_hz": ("cpu_hz", int), "static_ram": ("static_ram_bytes", int), "flash": ("flash_bytes", int),
    "stack": ("stack_bytes", int),
}


def parse_info(line: str) -> DeviceInfo:
    """Parse a ``tinyq-info`` line."""
    fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    if fields.get("v") != "1":
        raise ProtocolError(f"unsupported protocol version in {line!r}")
    try:
        return DeviceInfo(**{name: conv(fields[key]) for key, (name, conv) in _INFO_KEYS.items()},
                          consoles=fields.get("consoles", ""))
    except (KeyError, ValueError) as e:
        raise ProtocolError(f"malformed info line {line!r} ({e})") from e


def parse_log(text: str) -> DeviceReport:
    """Parse a transcript of device output (pure: no I/O). Unknown lines are kept, not fatal."""
    lines = tuple(l.strip() for l in text.replace("\r", "").split("\n") if l.strip())
    info = None
    infers: list[InferResult] = []
    layers: list[tuple[str, int]] = []
    pending_layers: list[tuple[str, int]] = []
    errors: list[str] = []
    fault = False
    complete = False
    runs: list[int] = []
    laps: list[int] = []
    median = stack = None
    output = None
    try:
        for line in lines:
            head = line.split(" ", 1)[0]
            if head == "tinyq-info":
                info = parse_info(line)
            elif line.startswith("m-lap-us-"):
                laps.append(int(line[len("m-lap-us-"):]))
            elif head == "tq-run":
                runs.append(int(line.split()[2]))
            elif head == "tq-median":
                median = int(line.split()[1])
            elif head == "tq-output":
                parts = line.split()
                output = bytes.fromhex(parts[1]) if len(parts) > 1 else b""
            elif head == "tq-stack":
                stack = int(line.split()[1])
            elif line == SENTINEL_INFER:
                if median is None or output is None or stack is None:
                    raise ProtocolError("an infer answer is missing its median, output or stack line")
                infers.append(InferResult(tuple(runs), median, output, stack, tuple(laps)))
                runs, laps, median, stack, output = [], [], None, None, None
                complete = True
            elif head == "tq-layer":
                _, _, op, ticks = line.split()
                pending_layers.append((op, int(ticks)))
            elif line == SENTINEL_PROFILE:
                layers, pending_layers = pending_layers, []
                complete = True
            elif head == "tq-error":
                errors.append(line[len("tq-error "):])
            elif head == "tq-fault":
                fault = True
    except (ValueError, IndexError) as e:
        raise ProtocolError(f"malformed device line ({e})") from e
    return DeviceReport(info, tuple(infers), tuple(layers), tuple(errors), fault, complete, lines)


_LINE = re.compile(r"^(tinyq-|tq-|m-lap-us-)")


def is_protocol_line(line: str) -> bool:
    """Whether a line belongs to the protocol (other console chatter is allowed around it)."""
    return bool(_LINE.match(line.strip()))
