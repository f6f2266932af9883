"""Uploaders: one strategy per way firmware reaches a board, picked by the board file's ``upload.method``.

A board that needs another uploader (a UF2 copy onto a mass-storage volume, picotool, OpenOCD) is one
more class here and one more name in :data:`UPLOADERS`; :class:`~tinyq.device.devices.SerialDevice`
never changes. Each strategy takes the subprocess runner and the port finder as parameters, so a test
drives it with fakes and checks the commands it would run.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar

from tinyq.boards import Board
from tinyq.errors import ToolchainError, TransportError

#: How long an upload tool may take before it counts as hung (a 1 MB image over USB takes ~20 s).
UPLOAD_TIMEOUT_S = 120


class Uploader(ABC):
    """Put a firmware image on a board; say where its console is afterwards."""

    #: The board file's ``upload.method`` this strategy serves.
    method: ClassVar[str]

    def __init__(self, board: Board, run: Callable = subprocess.run, ports=None):
        from tinyq.device import ports as ports_module

        self.board = board
        self.run = run
        self.ports = ports if ports is not None else ports_module

    @abstractmethod
    def command(self, firmware_bin: Path, firmware_hex: Path, port: str | None) -> list[str]:
        """The upload command, after whatever the board needs first (a reset into its bootloader)."""

    def upload(self, firmware_bin: Path, firmware_hex: Path, port: str | None) -> str:
        """Upload; return the port of the board's console afterwards."""
        cmd = self.command(firmware_bin, firmware_hex, port)
        try:
            proc = self.run(cmd, capture_output=True, text=True, timeout=UPLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise TransportError(f"{Path(cmd[0]).name} did not finish in {UPLOAD_TIMEOUT_S} s",
                                 hint="unplug and replug the board, then retry") from e
        if proc.returncode != 0:
            raise TransportError(f"upload failed: {(proc.stderr or proc.stdout).strip()[:500]}",
                                 hint="double-tap the reset button to enter the bootloader, then retry")
        return self.console_port(port)

    def console_port(self, port: str | None) -> str:
        """Where the console is once the board runs the new firmware: found by its USB id, or the port given."""
        if self.board.usb is not None and self.board.console.usb is not None:
            return self.ports.wait_for_board(self.board, "application", 15.0).device
        if port is None:
            raise TransportError(f"{self.board.name} has no USB console: give the serial port of its UART with --port")
        return port


class Bossac(Uploader):
    """Arduino's bootloader (SAM-BA over USB CDC), written by the Arduino fork of bossac.

    A board running its application is touched at 1200 baud, which resets it into the bootloader under
    another USB id (and often another port name); the bootloader's port is found by that id and written,
    and the board restarts into the new firmware."""

    method = "bossac"

    def command(self, firmware_bin: Path, firmware_hex: Path, port: str | None) -> list[str]:
        here = self.ports.discover(self.board) if port is None else None
        exe, _ = self.ports.find_bossac()
        mode = here.mode if here else "application"
        port = port or here.device
        if self.board.upload.touch_1200bps and mode == "application":
            touch_1200bps(port)
            if self.board.usb is not None:
                port = self.ports.wait_for_board(self.board, "bootloader", 10.0).device
            else:
                time.sleep(1.0)
        return [exe, f"--port={Path(port).name}", "-U", "-i", "-e", "-w", str(firmware_bin), "-R"]


class PyOcd(Uploader):
    """A debug probe over SWD (CMSIS-DAP, J-Link, ST-Link), written by pyOCD."""

    method = "pyocd"

    def command(self, firmware_bin: Path, firmware_hex: Path, port: str | None) -> list[str]:
        exe = shutil.which("pyocd")
        if exe is None:
            raise ToolchainError("pyocd not found", hint="pip install pyocd, and connect the board's debug probe")
        return [exe, "flash", "-t", self.board.chip.name.lower(), str(firmware_hex)]


#: Every uploader, by the ``upload.method`` a board file names.
UPLOADERS: dict[str, type[Uploader]] = {cls.method: cls for cls in (Bossac, PyOcd)}


def uploader_for(board: Board, **fakes) -> Uploader:
    """The strategy the board file asks for (``fakes``: ``run`` and ``ports`` for tests)."""
    return UPLOADERS[board.upload.method](board, **fakes)


def touch_1200bps(port: str) -> None:
    """Open and close the port at 1200 baud: the Arduino core's signal to enter the bootloader."""
    import serial

    try:
        s = serial.Serial(port, 1200)
    except (serial.SerialException, OSError) as e:
        raise TransportError(f"cannot open {port} for the 1200-baud reset: {e}") from e
    # The board resets into its bootloader once DTR is low: the port can vanish under the
    # close. pyserial then raises what the OS said: a plain OSError from the TIOCMBIC ioctl
    # on Linux and macOS, a SerialException (ClearCommError / EscapeCommFunction) on
    # Windows. Any of them means the touch reached the board.
    try:
        s.dtr = False
    except (serial.SerialException, OSError):
        pass
    try:
        s.close()
    except (serial.SerialException, OSError):
        pass
