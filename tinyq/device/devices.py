"""Devices: every place firmware runs, behind one interface, picked by name from a registry.

Modelled on Zephyr twister's ``DeviceAdapter`` (``device_adapter.py``, ``qemu_adapter.py``)
and its ``dut`` fixture: an adapter launches the target with a firmware, hands back a
:class:`~tinyq.device.transport.Transport` on its console, says how its timer ticks become
instructions or cycles (:class:`Clock`), and stops everything it started on close. The
pipeline, the tests and the benchmarks all go through :func:`open_device`, so they run
what users run. The adapters hold no board facts: those come from ``boards/*.toml``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

from tinyq.boards import Board
from tinyq.errors import InputFileError, ToolchainError
from tinyq.device.transport import Transport


@dataclass(frozen=True)
class Clock:
    """How a device's timer ticks become the figure a user compares.

    ``per_tick`` is instructions (or cycles) per tick of the timer the firmware reports;
    None means the timer counts real cycles at the rate the firmware reports, scaled
    to the board's clock (the DWT counter on silicon).
    """

    kind: str                 # "instructions" or "cycles"
    per_tick: float | None
    note: str                 # how the figure was made, for reports


class Device(ABC):
    """One target: launch it with a firmware, talk to it, stop it."""

    #: The name users give (`tinyq flash --emulator NAME`); the registry's key.
    name: ClassVar[str]
    #: Which firmware of a build runs here: "qemu" (the twin's memory map) or "board".
    firmware_target: ClassVar[str]

    def __init__(self, board: Board, firmware: Path, **options):
        self.board = board
        self.firmware = Path(firmware)
        self.options = options
        self.transport: Transport | None = None
        self._stack = contextlib.ExitStack()

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this device cannot run on this machine (None when it can)."""
        return None

    @abstractmethod
    def _launch(self, stack: contextlib.ExitStack) -> Transport:
        """Start the target; register everything to stop on ``stack``; return its console."""

    @property
    @abstractmethod
    def clock(self) -> Clock:
        """How this device's timer ticks are counted."""

    def __enter__(self) -> "Device":
        if not self.firmware.is_file():
            raise InputFileError(f"{self.firmware}: no firmware file", hint="rebuild with `tinyq build`")
        why = self.unavailable()
        if why:
            raise ToolchainError(f"{self.name} cannot run here: {why}", hint=self._install_hint)
        try:
            self.transport = self._launch(self._stack)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        # The exception goes to the launcher's context: it turns a lost connection into
        # "the emulator exited" with the emulator's own last words.
        self.transport = None
        return self._stack.__exit__(*exc)

    _install_hint: ClassVar[str] = "see the README"


class QemuDevice(Device):
    """The board's QEMU twin (``mps2-an386``, Cortex-M4F) with deterministic ``-icount``."""

    name = "qemu"
    firmware_target = "qemu"
    _install_hint = "apt-get install qemu-system-arm (or run `make setup`)"

    @classmethod
    def unavailable(cls) -> str | None:
        return None if shutil.which("qemu-system-arm") else "qemu-system-arm is not installed"

    def _launch(self, stack):
        from tinyq.device.launch import run_qemu

        return stack.enter_context(run_qemu(self.firmware, self.board, extra_args=self.options.get("extra_args", ())))

    @property
    def clock(self) -> Clock:
        from tinyq.device.launch import instructions_per_tick

        return Clock("instructions", instructions_per_tick(self.board.emulator.qemu.clock_hz),
                     "QEMU icount: exact instruction counts")


class RenodeDevice(Device):
    """The board firmware in Renode's model of the board's chip: the very sources that would be flashed, with
    one define for Renode's UARTE model (see :meth:`renode_variant`)."""

    name = "renode"
    firmware_target = "board"
    _install_hint = ("install Renode 1.14 from its official releases (it is in no Debian or PyPI registry), "
                     "so that `renode` is on PATH, or use --emulator qemu")

    @classmethod
    def unavailable(cls) -> str | None:
        return None if shutil.which("renode") else "renode is not on PATH"

    def _launch(self, stack):
        from tinyq.device.launch import run_renode

        if self.board.emulator.renode is None:
            raise ToolchainError(f"board {self.board.id} has no Renode platform", hint="use --emulator qemu")
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tinyq-renode-")))
        return stack.enter_context(run_renode(self.renode_variant(workdir / "firmware"), self.board, workdir))

    def renode_variant(self, out_dir: Path) -> Path:
        """The board firmware rebuilt from its build's sources with Renode's UARTE receive re-arm order
        (``TQ_UARTE_RENODE_REARM``): Renode 1.14's UARTE model needs it, and on silicon it would lose a byte
        waiting in the RX FIFO, so the firmware a board gets never has it. Everything else is that firmware's."""
        from tinyq.compile.firmware import rebuild_firmware

        return rebuild_firmware(self.firmware.parent / "src", self.board, self.firmware_target, out_dir,
                                ["-DTQ_UARTE_RENODE_REARM"]).elf

    @property
    def clock(self) -> Clock:
        # tinyq runs Renode at the board's clock (SysTick frequency and MIPS both set to it),
        # so one SysTick tick is one instruction.
        return Clock("instructions", 1.0, f"Renode at {self.board.chip.clock_hz / 1e6:.0f} MIPS: one instruction a cycle")


class SerialDevice(Device):
    """A real board on a serial port: upload through its bootloader or probe, then its console."""

    name = "serial"
    firmware_target = "board"

    def _launch(self, stack):
        from tinyq.device import ports
        from tinyq.device.launch import run_board
        from tinyq.device.upload import uploader_for

        port = self.options.get("port")
        if self.options.get("upload", True):
            port = uploader_for(self.board).upload(self.firmware.with_suffix(".bin"), self.firmware.with_suffix(".hex"),
                                                   port)
        elif port is None:
            port = ports.discover(self.board).device
        self.port = port
        return stack.enter_context(run_board(port, self.board))

    @property
    def clock(self) -> Clock:
        return Clock("cycles", None, "DWT cycle counter (SysTick where the core has none)")


#: Every device, by the name users give.
REGISTRY: dict[str, type[Device]] = {cls.name: cls for cls in (QemuDevice, RenodeDevice, SerialDevice)}
#: The devices that need no hardware.
EMULATORS = tuple(n for n, cls in REGISTRY.items() if cls is not SerialDevice)


def device_class(name: str) -> type[Device]:
    """The adapter registered as ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputFileError(f"unknown device '{name}'", hint=f"one of {', '.join(REGISTRY)}") from None


@contextlib.contextmanager
def open_device(name: str, board: Board, firmware: Path, **options) -> Iterator[Device]:
    """Launch device ``name`` with ``firmware``; yield it connected; always stop it."""
    with device_class(name)(board, firmware, **options) as dev:
        yield dev

