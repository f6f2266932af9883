"""Finding a board on USB, and the uploader it needs.

A board is recognised by the USB ids its board file gives (``[usb]``: the application's
and the bootloader's VID:PID), through ``serial.tools.list_ports``; nothing here opens a
port. ``bossac`` is looked for where the Arduino IDE/CLI and PlatformIO install the
Arduino fork, since Debian's 1.9.1 cannot write an nRF52840.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from tinyq.boards import Board, load_boards
from tinyq.errors import ToolchainError, TransportError


@dataclass(frozen=True)
class FoundPort:
    """A serial port that belongs to a known board."""

    device: str
    board: str
    mode: str         # "application" or "bootloader"
    vid: int
    pid: int
    serial_number: str | None
    description: str

    def summary(self) -> str:
        return f"{self.device} ({self.board}, {self.mode}, {self.vid:04x}:{self.pid:04x}" + \
               (f", serial {self.serial_number})" if self.serial_number else ")")


def _list_ports():
    from serial.tools import list_ports

    return list_ports.comports()


#: USB ids a board enumerates as besides its board file's two, from the board's Arduino core
#: (ArduinoCore-mbed boards.txt, nano33ble.pid.N): 0x015a and 0x025a are sketches whose USB
#: carries more than the CDC port (the core adds 0x0100 / 0x0200 to the product id); they
#: answer the 1200-baud touch like the 0x805a application.
EXTRA_USB_IDS: dict[str, dict[tuple[int, int], str]] = {
    "nano33": {(0x2341, 0x015A): "application", (0x2341, 0x025A): "application"},
}


def usb_mode(board: Board, vid: int, pid: int) -> str | None:
    """"application", "bootloader" or None: what ``board`` is doing if it enumerates as vid:pid."""
    if board.usb is None:
        return None
    if (vid, pid) == (board.usb.vid, board.usb.pid):
        return "application"
    if (vid, pid) == (board.usb.bootloader_vid, board.usb.bootloader_pid):
        return "bootloader"
    return EXTRA_USB_IDS.get(board.id, {}).get((vid, pid))


def find_ports(boards: dict[str, Board] | None = None, ports=None) -> list[FoundPort]:
    """Every connected port whose USB ids match a board file (``ports``: list_ports results, for tests)."""
    boards = load_boards() if boards is None else boards
    found = []
    for p in (_list_ports() if ports is None else ports):
        if p.vid is None:
            continue
        for b in boards.values():
            mode = usb_mode(b, p.vid, p.pid)
            if mode:
                found.append(FoundPort(p.device, b.id, mode, p.vid, p.pid, p.serial_number, p.description or ""))
    return sorted(found, key=lambda f: f.device)


def discover(board: Board, ports=None) -> FoundPort:
    """The one connected port of ``board``; none or several is an error listing what was found."""
    every = find_ports({board.id: board}, ports)
    if len(every) == 1:
        return every[0]
    others = [p for p in (_list_ports() if ports is None else ports)]
    seen = ", ".join(f"{p.device} ({p.vid:04x}:{p.pid:04x})" if p.vid is not None else p.device for p in others) or "no serial ports"
    if not every:
        want = (f"{board.usb.vid:04x}:{board.usb.pid:04x} or, in its bootloader, "
                f"{board.usb.bootloader_vid:04x}:{board.usb.bootloader_pid:04x}") if board.usb else "its USB ids"
        raise TransportError(f"no {board.name} found on USB (looked for {want}; found: {seen})",
                             hint="plug the board in (a data cable, not a charging one), double-tap reset if it "
                                  "does not appear, or give --port, or --emulator qemu")
    raise TransportError(f"{len(every)} {board.name} boards found: {', '.join(p.summary() for p in every)}",
                         hint="pick one with --port")


#: Where the Arduino fork of bossac is installed by the Arduino IDE/CLI and by PlatformIO.
BOSSAC_PLACES = (
    "~/.arduino15/packages/arduino/tools/bossac/*/bossac",
    "~/Library/Arduino15/packages/arduino/tools/bossac/*/bossac",
    "~/.platformio/packages/tool-bossac*/bossac",
    "%LOCALAPPDATA%/Arduino15/packages/arduino/tools/bossac/*/bossac.exe",   # Arduino IDE/CLI on Windows
    "~/.platformio/packages/tool-bossac*/bossac.exe",
)
BOSSAC_HOWTO = ("install the Arduino fork of bossac: `arduino-cli core install arduino:mbed_nano` (it lands in "
                "~/.arduino15/packages/arduino/tools/bossac/), or the board's core in the Arduino IDE; Debian's "
                "bossac 1.9.1 cannot write an nRF52840")


def bossac_version(exe: str) -> str | None:
    """The version bossac reports (e.g. "1.9.1-arduino2"), or None if it does not run."""
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"[Vv]ersion\s+([0-9][\w.\-]*)", out.stdout + out.stderr)
    return m.group(1) if m else None


def find_bossac(places=BOSSAC_PLACES, path: str | None = None) -> tuple[str, str]:
    """(path, version) of an Arduino-fork bossac: the Arduino/PlatformIO installs first, then PATH.

    A bossac without the Arduino fork's nRF52840 support (Debian's 1.9.1) is refused.
    """
    candidates = []
    for pattern in places:
        expanded = os.path.expanduser(pattern)
        if expanded.startswith("%LOCALAPPDATA%"):
            if not os.environ.get("LOCALAPPDATA"):
                continue  # not Windows
            expanded = os.environ["LOCALAPPDATA"] + expanded[len("%LOCALAPPDATA%"):]
        candidates += sorted(glob.glob(expanded), reverse=True)  # newest version first
    on_path = shutil.which("bossac", path=path)
    if on_path:
        candidates.append(on_path)
    rejected = []
    for exe in candidates:
        if not os.access(exe, os.X_OK) and not exe.lower().endswith(".exe"):
            continue
        version = bossac_version(exe)
        if version and "arduino" in version:
            return exe, version
        rejected.append(f"{exe} ({version or 'does not run'})")
    if rejected:
        raise ToolchainError(f"no Arduino-fork bossac: found only {', '.join(rejected)}", hint=BOSSAC_HOWTO)
    raise ToolchainError("bossac not found (looked in the Arduino IDE/CLI and PlatformIO folders and on PATH)",
                         hint=BOSSAC_HOWTO)


def wait_for_board(board: Board, mode: str, timeout: float, ports_fn=None) -> FoundPort:
    """Wait until ``board`` shows up on USB in ``mode`` ("application" or "bootloader") after a reset."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = [f for f in find_ports({board.id: board}, ports_fn() if ports_fn else None) if f.mode == mode]
        if len(found) == 1:
            return found[0]
        if time.monotonic() > deadline:
            raise TransportError(f"{board.name} did not come back in its {mode} within {timeout:.0f} s "
                                 f"(found: {', '.join(f.summary() for f in found) or 'nothing'})",
                                 hint="double-tap the reset button to enter the bootloader, then retry")
        time.sleep(0.2)
