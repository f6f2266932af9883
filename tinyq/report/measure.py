"""Measure stage: drive the firmware over a Transport and check it against the host.

Sends each input, runs warm-ups and timed inferences, optionally a per-layer
profile, then parses the transcript (:func:`tinyq.device.protocol.parse_log`) and compares
the device's output bytes with the host reference's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinyq.errors import DeviceTimeoutError, ProtocolError, VerificationError
from tinyq.device.protocol import SENTINEL_INFER, SENTINEL_PROFILE, DeviceReport, parse_log
from tinyq.device.transport import Transport

if TYPE_CHECKING:
    from tinyq.device.devices import Clock

READY = "tinyq-ready"


@dataclass(frozen=True)
class Measurement:
    """What the device reported, in the units a user compares."""

    board: str
    target: str
    model: str
    timer: str
    median_ticks: int
    timer_hz: int
    cycles: int              # DWT cycles, or instructions on the emulator (QEMU icount)
    cycles_kind: str         # "cycles" or "instructions"
    counted_by: str          # how: "QEMU icount: exact instruction counts", "DWT cycle counter", ...
    latency_us: float        # cycles at the board's clock
    board_clock_hz: int
    runs: int
    arena_bytes: int
    stack_high_water_bytes: int
    static_ram_bytes: int
    flash_bytes: int
    inputs_checked: int
    outputs_match: bool
    mismatched_inputs: tuple[int, ...]
    layers: tuple[tuple[str, int], ...]  # (opcode, cycles)
    validation: dict | None = None       # `flash --eval`: the evaluation set through the device
    consoles: str = ""                   # the consoles the firmware runs ("uart", "uart+usb", "uart,usb-off")
    port: str | None = None              # the serial port of a board

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mismatched_inputs"] = list(self.mismatched_inputs)
        d["layers"] = [{"op": o, "cycles": c} for o, c in self.layers]
        return d


def _hex(x: np.ndarray) -> str:
    return np.ascontiguousarray(x, dtype=np.int8).tobytes().hex()


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait in each phase of a run; a silent device past one is named by its phase."""

    boot: float
    upload: float
    infer: float

    @classmethod
    def scaled(cls, base: float, input_bytes: int, macs: int, runs: int, baud: int) -> "Timeouts":
        """``base`` seconds for each phase, plus what the work itself takes at its slowest.

        An input goes over the UART as two hex digits a byte at ``baud`` (10 bits a
        character); the emulators run models at well over 1 M MACs a second.
        """
        upload = base + 2 * (2 * input_bytes * 10 / baud)
        infer = base + runs * macs / 1e6
        return cls(float(base), upload, infer)


def _phase(t: Transport, sentinels: tuple[str, ...], seconds: float, what: str, hint: str) -> list[str]:
    try:
        return t.read_until(sentinels, timeout=seconds)
    except DeviceTimeoutError as e:
        raise DeviceTimeoutError(f"{what}: {e.message}", hint=hint) from e


def drive(t: Transport, inputs: np.ndarray, runs: int = 10, warmup: int = 2, per_layer: bool = False,
          timeout: Timeouts | float = 120.0, on_input=None) -> DeviceReport:
    """Run the protocol: boot, then for each input load + infer; return the parsed transcript.

    ``timeout`` is a :class:`Timeouts`, or one number of seconds for every phase.
    ``on_input(i)`` is called after each input's answer (a progress bar).
    """
    timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts(timeout, timeout, timeout)
    try:
        # An emulator prints its boot line as soon as the host connects; a board booted
        # before the port was opened, so its boot line is asked for again.
        t.read_until((READY,), timeout=min(2.0, timeouts.boot))
    except DeviceTimeoutError:
        t.write_line("info")
        _phase(t, (READY,), timeouts.boot, "the device did not boot",
               "no tinyq boot line: is this tinyq firmware for this board, and the right port or emulator?")
    for i, x in enumerate(inputs):
        t.write_line("load " + _hex(x))
        _phase(t, (READY,), timeouts.upload, f"sending input {i} ({x.size} B)",
               "the device stopped answering while it received the input; give a longer --timeout "
               "for large inputs on a slow link")
        # Time the first input fully; the others only need their outputs.
        t.write_line(f"infer {runs} {warmup}" if i == 0 else "infer 1 0")
        _phase(t, (SENTINEL_INFER,), timeouts.infer, f"inference on input {i}",
               "the model did not finish: the firmware may hang or have faulted (e.g. overflowed RAM); "
               "rebuild with -v and check the map file, or give a longer --timeout")
        _phase(t, (READY,), timeouts.boot, f"after inference on input {i}", "the device stopped answering")
        if on_input is not None:
            on_input(i)
    if per_layer:
        t.write_line("profile")
        _phase(t, (SENTINEL_PROFILE,), timeouts.infer, "per-layer profile",
               "the profile run did not finish; give a longer --timeout")
        _phase(t, (READY,), timeouts.boot, "after the profile", "the device stopped answering")
    t.write_line("quit")
    try:
        t.read_until(("tq-bye",), timeout=5.0)
    except DeviceTimeoutError:
        pass  # a board resets instead of answering
    return parse_log("\n".join(t.transcript))


def _le_bytes(a) -> np.ndarray:
    """An expected output as the bytes the device sends: int8 as it is, wider integers little-endian."""
    a = np.asarray(a)
    if a.dtype.itemsize == 1:
        return a.astype(np.int8).ravel()
    return np.ascontiguousarray(a, a.dtype.newbyteorder("<")).view(np.int8).ravel()


def evaluate(report: DeviceReport, expected: np.ndarray, board_clock_hz: int, clock: "Clock") -> Measurement:
    """Turn a transcript into a Measurement, its ticks counted as the device's :class:`~tinyq.device.devices.Clock` says."""
    if report.fault:
        raise DeviceTimeoutError("the device faulted (tq-fault)", hint="a stack overflow or bad memory access; rebuild with -v")
    if report.info is None or not report.infers:
        raise ProtocolError(f"the device did not answer (errors: {', '.join(report.errors) or 'none'})")
    info, first = report.info, report.infers[0]
    if clock.per_tick is None:
        cycles = first.median_ticks * board_clock_hz // info.timer_hz
    else:
        cycles = round(first.median_ticks * clock.per_tick)
    kind = clock.kind
    scale = cycles / first.median_ticks if first.median_ticks else 0.0
    outputs = [np.frombuffer(r.output, dtype=np.int8) for r in report.infers]
    # Compared as bytes: an output of int32 / int64 indices (ARG_MAX) is its little-endian bytes on the device.
    mismatched = tuple(i for i, (got, want) in enumerate(zip(outputs, expected))
                       if not np.array_equal(got, _le_bytes(want)))
    return Measurement(
        board=info.board, target=info.target, model=info.model, timer=info.timer,
        median_ticks=first.median_ticks, timer_hz=info.timer_hz, cycles=cycles, cycles_kind=kind, counted_by=clock.note,
        latency_us=round(cycles / board_clock_hz * 1e6, 1), board_clock_hz=board_clock_hz,
        runs=len(first.run_ticks), arena_bytes=info.arena_bytes,
        stack_high_water_bytes=max(r.stack_high_water for r in report.infers),
        static_ram_bytes=info.static_ram_bytes, flash_bytes=info.flash_bytes,
        inputs_checked=len(outputs), outputs_match=not mismatched and len(outputs) == len(expected),
        mismatched_inputs=mismatched,
        layers=tuple((op, round(ticks * scale)) for op, ticks in report.layers), consoles=info.consoles,
    )


def check(m: Measurement) -> None:
    """Raise :class:`VerificationError` when the device's outputs differ from the host's."""
    if not m.outputs_match:
        raise VerificationError(
            f"device outputs differ from the host reference on {len(m.mismatched_inputs)} of "
            f"{m.inputs_checked} inputs (first: input {m.mismatched_inputs[0] if m.mismatched_inputs else '?'})"
        )


def validate(device_out: np.ndarray, host_int8: np.ndarray, labels: np.ndarray | None,
             float_out: np.ndarray | None) -> dict:
    """The evaluation set through the device, against the host int8 model, the labels and the float model.

    All arrays are (samples, ...) outputs; top-1 compares arg-max over each flattened output.
    """
    n = len(device_out)
    dev = device_out.reshape(n, -1)
    top = dev.argmax(1)
    host = host_int8.reshape(n, -1)
    out = {
        "samples": n,
        "bit_exact_with_host_int8": float(np.mean(np.all(dev == host, axis=1))),
        "top1_agreement_with_host_int8": float(np.mean(top == host.argmax(1))),
        "device_top1": float(np.mean(top == labels)) if labels is not None else None,
        "host_int8_top1": float(np.mean(host.argmax(1) == labels)) if labels is not None else None,
        "top1_agreement_with_float": None,
        "float_top1": None,
    }
    if float_out is not None:
        f = float_out.reshape(n, -1).argmax(1)
        out["top1_agreement_with_float"] = float(np.mean(top == f))
        out["float_top1"] = float(np.mean(f == labels)) if labels is not None else None
    return out
