"""Flash stage: put firmware on its target and give back a connected :class:`Transport`.

Targets: QEMU (the board's ``mps2-an386`` twin, deterministic ``-icount``), Renode
(when installed) and a real board over its serial bootloader. Every runner is a
context manager that always stops what it started.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

from tinyq.boards import Board
from tinyq.errors import DeviceTimeoutError, EmulatorExitedError, TinyqError, ToolchainError, TransportError
from tinyq.proc import spawn, stop
from tinyq.transport import Transport

#: -icount shift: one instruction is 2**shift ns of virtual time. 0 keeps SysTick
#: (25 MHz) at exactly 40 instructions a tick, the same every run.
ICOUNT_SHIFT = 0


def instructions_per_tick(timer_hz: int) -> float:
    """QEMU with -icount: instructions executed per tick of a timer running at ``timer_hz``."""
    return 1e9 / timer_hz / (2**ICOUNT_SHIFT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(elf: Path, board: Board, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The QEMU command line for the board's twin, serial on a loopback socket (+ ``extra_args``)."""
    q = board.emulator.qemu
    return [
        "qemu-system-arm", "-M", q.machine, "-cpu", q.cpu, "-nographic", "-monitor", "none",
        "-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off",
        # Lets the firmware end QEMU with an exit status; without it an exit aborts QEMU.
        "-semihosting-config", "enable=on,target=native",
        # wait=on: QEMU holds the CPU until the host connects, so no output is lost.
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
        "-kernel", str(elf), *extra_args,
    ]


@contextlib.contextmanager
def _emulator(name: str, cmd: Sequence[str], url: str, connect_timeout: float, **popen) -> Iterator[Transport]:
    """Start an emulator (tied to tinyq: :mod:`tinyq.proc`), yield a Transport on its serial socket,
    always stop it with everything it started.

    Its stderr goes to a file: when it exits while tinyq talks to it (it failed to start,
    or the firmware crashed it), the error says so with the emulator's own last words
    instead of a serial "Broken pipe".
    """
    with tempfile.TemporaryFile() as err:
        proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=err, **popen)

        def said() -> str:
            err.seek(0)
            lines = [l for l in err.read().decode(errors="replace").splitlines() if l.strip()]
            return " / ".join(lines[-5:]) if lines else "nothing on stderr"

        transport = None
        try:
            deadline = time.monotonic() + connect_timeout
            while transport is None:
                if proc.poll() is not None:
                    raise EmulatorExitedError(f"{name} exited at start (status {proc.returncode}): {said()}",
                                              hint=f"check the {name} installation and the firmware file")
                try:
                    transport = Transport(url, connect_timeout=0.5)
                except TransportError:
                    if time.monotonic() > deadline:
                        raise DeviceTimeoutError(f"{name} did not open its serial socket within {connect_timeout:.0f} s",
                                                 hint=f"{name} may hang at start; run with -v") from None
            yield transport
        except TinyqError as e:
            if isinstance(e, EmulatorExitedError):
                raise
            try:  # a lost socket or a silent device: did the emulator itself end?
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                raise e from None
            if transport is None or not transport.transcript:
                raise EmulatorExitedError(f"{name} exited at start (status {proc.returncode}): {said()}",
                                          hint=f"check the {name} installation and the firmware file") from e
            raise EmulatorExitedError(
                f"{name} exited (status {proc.returncode}) during {e.message}: {said()}",
                hint="the firmware crashed or stopped the emulator (a fault, a stack overflow); run with -v") from e
        finally:
            if transport is not None:
                transport.close()
            stop(proc)


@contextlib.contextmanager
def run_qemu(elf: Path, board: Board, connect_timeout: float = 15.0,
             extra_args: Sequence[str] = ()) -> Iterator[Transport]:
    """Start the QEMU twin with ``elf`` (``extra_args`` added, e.g. tracing); yield a Transport on
    its UART; always stop QEMU."""
    if shutil.which("qemu-system-arm") is None:
        raise ToolchainError("qemu-system-arm not found on PATH", hint="apt-get install qemu-system-arm (or run `make setup`)")
    port = _free_port()
    with _emulator("QEMU", qemu_command(Path(elf), board, port, extra_args), f"socket://127.0.0.1:{port}",
                   connect_timeout, stdin=subprocess.DEVNULL) as t:
        yield t


def renode_script(elf: Path, board: Board, port: int) -> str:
    """A Renode .resc for the board's platform with its UART on a socket terminal."""
    if board.emulator.renode is None:
        raise ToolchainError(f"board {board.id} has no Renode platform")
    uart = "sysbus.uart0"
    return (
        f"using sysbus\nmach create \"{board.id}\"\n"
        f"machine LoadPlatformDescription @{board.emulator.renode.platform}\n"
        f"emulation CreateServerSocketTerminal {port} \"term\" false\n"
        f"connector Connect {uart} term\n"
        f"sysbus LoadELF @{Path(elf).resolve()}\n"
        "start\n"
    )


@contextlib.contextmanager
def run_renode(elf: Path, board: Board, workdir: Path, connect_timeout: float = 30.0) -> Iterator[Transport]:
    """Run ``elf`` (built for the real board) in Renode when it is installed."""
    exe = shutil.which("renode")
    if exe is None:
        raise ToolchainError("renode not found on PATH",
                             hint="install Renode from its releases (it is in no Debian or PyPI registry), "
                                  "or use --emulator qemu")
    port = _free_port()
    script = Path(workdir) / f"{board.id}.resc"
    script.write_text(renode_script(elf, board, port))
    with _emulator("Renode", [exe, "--disable-xwt", "--console", "-e", f"include @{script}"],
                   f"socket://127.0.0.1:{port}", connect_timeout, stdin=subprocess.DEVNULL) as t:
        yield t


def touch_1200bps(port: str) -> None:
    """Open and close the port at 1200 baud: the Arduino core's signal to enter the bootloader."""
    import serial

    try:
        s = serial.Serial(port, 1200)
        s.dtr = False
        s.close()
    except serial.SerialException as e:
        raise TransportError(f"cannot open {port} for the 1200-baud reset: {e}") from e


def wait_for_port(port: str, timeout: float = 10.0, present: bool = True) -> None:
    """Wait for a serial port to (re)appear after a reset; USB CDC ports vanish meanwhile."""
    deadline = time.monotonic() + timeout
    while Path(port).exists() != present:
        if time.monotonic() > deadline:
            raise DeviceTimeoutError(f"{port} did not {'come back' if present else 'go away'} within {timeout:.0f} s",
                                     hint="double-tap the reset button to enter the bootloader, then retry")
        time.sleep(0.1)


def upload_board(firmware_bin: Path, firmware_hex: Path, board: Board, port: str) -> None:
    """Upload to a real board with the board's method (bossac over the bootloader, or pyocd)."""
    if board.upload.method == "bossac":
        exe = shutil.which("bossac")
        if exe is None:
            raise ToolchainError("bossac not found", hint="install the Arduino fork of bossac (Debian's 1.9.1 lacks nRF52840 support)")
        if board.upload.touch_1200bps:
            touch_1200bps(port)
            time.sleep(0.5)
            wait_for_port(port)
        cmd = [exe, f"--port={Path(port).name}", "-U", "-i", "-e", "-w", str(firmware_bin), "-R"]
    else:
        exe = shutil.which("pyocd")
        if exe is None:
            raise ToolchainError("pyocd not found", hint="pip install pyocd, and connect the board's debug probe")
        cmd = [exe, "flash", "-t", board.chip.name.lower(), str(firmware_hex)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise TransportError(f"upload failed: {(proc.stderr or proc.stdout).strip()[:500]}")
    wait_for_port(port)


@contextlib.contextmanager
def run_board(port: str, board: Board) -> Iterator[Transport]:
    """Connect to the flashed board's console (resetting it is the upload's job)."""
    with Transport(port, baudrate=board.console.baud, connect_timeout=10.0) as t:
        yield t
