"""Launchers: start a target with a firmware and give back its connected :class:`Transport`.

QEMU (the board's ``mps2-an386`` twin, deterministic ``-icount``), Renode (when installed)
and a flashed board's console. Every runner is a context manager that always stops what it
started. Putting firmware on a board is :mod:`tinyq.device.upload`'s job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

from tinyq.boards import Board
from tinyq.errors import DeviceTimeoutError, EmulatorExitedError, TinyqError, ToolchainError, TransportError
from tinyq.infra.proc import spawn, stop
from tinyq.device.transport import Transport

#: -icount shift: one instruction is 2**shift ns of virtual time. 0 keeps SysTick
#: (25 MHz) at exactly 40 instructions a tick, the same every run.
ICOUNT_SHIFT = 0


def instructions_per_tick(timer_hz: int) -> float:
    """QEMU with -icount: instructions executed per tick of a timer running at ``timer_hz``."""
    return 1e9 / timer_hz / (2**ICOUNT_SHIFT)


def qemu_command(elf: Path, board: Board, console: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """The QEMU command line for the board's twin, its serial on the Unix socket ``console`` (+ ``extra_args``)."""
    q = board.emulator.qemu
    return [
        "qemu-system-arm", "-M", q.machine, "-cpu", q.cpu, "-nographic", "-monitor", "none",
        "-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off",
        # Lets the firmware end QEMU with an exit status; without it an exit aborts QEMU.
        "-semihosting-config", "enable=on,target=native",
        # wait=on: QEMU holds the CPU until the host connects, so no output is lost.
        "-serial", f"unix:{console},server=on,wait=on",
        "-kernel", str(elf), *extra_args,
    ]


@contextlib.contextmanager
def _emulator(name: str, cmd: Sequence[str], url: str, connect_timeout: float, both_outputs: bool = False,
              **popen) -> Iterator[Transport]:
    """Start an emulator (tied to tinyq: :mod:`tinyq.infra.proc`), yield a Transport on its console (``url``),
    always stop it with everything it started.

    Its stderr goes to a file: when it exits while tinyq talks to it (it failed to start,
    or the firmware crashed it), the error says so with the emulator's own last words
    instead of a serial "Broken pipe".
    """
    with tempfile.TemporaryFile() as err:
        proc = spawn(cmd, stdout=err if both_outputs else subprocess.DEVNULL, stderr=err, **popen)

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
                    transport = Transport(url, connect_timeout=0.5, wait_for_peer=True)
                except TransportError:
                    if time.monotonic() > deadline:
                        raise DeviceTimeoutError(f"{name} did not open its console within {connect_timeout:.0f} s",
                                                 hint=f"{name} may hang at start; run with -v") from None
            yield transport
        except TinyqError as e:
            if isinstance(e, EmulatorExitedError):
                raise
            # A lost socket means the emulator is on its way out (an abort can take seconds to
            # dump core): wait for it. A silent device with a live emulator is a plain timeout.
            gone = isinstance(e, TransportError) or (transport is not None and transport.closed_by_peer)
            try:
                proc.wait(timeout=15.0 if gone else 0.5)
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
            if proc.stdin:
                proc.stdin.close()


@contextlib.contextmanager
def run_qemu(elf: Path, board: Board, connect_timeout: float = 15.0,
             extra_args: Sequence[str] = ()) -> Iterator[Transport]:
    """Start the QEMU twin with ``elf`` (``extra_args`` added, e.g. tracing); yield a Transport on
    its UART; always stop QEMU."""
    if shutil.which("qemu-system-arm") is None:
        raise ToolchainError("qemu-system-arm not found on PATH", hint="apt-get install qemu-system-arm (or run `make setup`)")
    with tempfile.TemporaryDirectory(prefix="tinyq-qemu-") as run_dir:
        console = Path(run_dir) / "console"
        with _emulator("QEMU", qemu_command(Path(elf), board, console, extra_args), f"unix://{console}",
                       connect_timeout, stdin=subprocess.DEVNULL) as t:
            yield t


def renode_script(elf: Path, board: Board, console: Path, platform: Path) -> str:
    """A Renode .resc running the board firmware ``elf`` as the board would, its UART on a PTY at ``console``.

    ``platform`` is the board's platform description (:func:`renode_platform`). The CPU
    runs at the board's clock: SysTick counts at it and the CPU executes as many
    instructions a second, so timings read like the board's. There is no bootloader in
    the emulator: the vector table is set to where the firmware links (after the
    bootloader on the Nano 33 BLE) instead of letting Renode guess.
    """
    r = board.emulator.renode
    return "\n".join([
        f'mach create "{board.id}"',
        f"machine LoadPlatformDescription @{platform}",
        # A PTY at a path of the run's own: no TCP port another run could be handed too.
        f'emulation CreateUartPtyTerminal "console" "{console}" true',
        f"connector Connect {r.uart} console",
        f"sysbus LoadELF @{Path(elf).resolve()}",
        f"{r.cpu} VectorTableOffset {board.memory.flash_origin:#x}",
        f"{r.cpu} PerformanceInMips {board.chip.clock_hz // 1_000_000}",
        f"{r.nvic} Frequency {board.chip.clock_hz}",
        "start",
        "",
    ])


def renode_platform(board: Board, renode_root: Path | None, workdir: Path) -> Path:
    """The board's stock Renode platform, written so that loading it needs no network.

    Renode's stock nrf52840 description applies an SVD file from the web at load time
    (retried, then failing offline). tinyq's description uses the stock board file (by
    the path Renode resolves against its own folder) and replaces that ``sysbus`` init
    with the stock one less its ``ApplySVD`` lines, read from Renode's folder where it is
    found (else just the FICR tag).
    """
    rel = board.emulator.renode.platform
    init = None
    if renode_root is not None:
        stock = renode_root / rel
        if not stock.is_file():
            raise ToolchainError(f"Renode has no platform {rel} (looked in {renode_root})",
                                 hint="install Renode 1.14 or newer")
        init = _sysbus_init_without_svd(stock, renode_root)
    lines = [f'using "{rel}"', "", "sysbus:", "    init:",
             *(f"        {l}" for l in (init or ['Tag <0x10000000, 0x10000FFF> "FICR"']))]
    out = Path(workdir) / f"{board.id}.repl"
    out.write_text("\n".join(lines) + "\n")
    return out


def _sysbus_init_without_svd(repl: Path, root: Path, depth: int = 0) -> list[str] | None:
    """The ``sysbus`` init lines of ``repl`` (or of a file it uses) less ApplySVD; None when it has none."""
    text = repl.read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "sysbus:" and i + 1 < len(lines) and lines[i + 1].strip().startswith("init"):
            body = []
            for l in lines[i + 2:]:
                if l.strip() and not l.startswith((" ", "\t")):
                    break
                if l.strip() and "ApplySVD" not in l:
                    body.append(l.strip())
            return body
    for line in lines:
        if line.startswith("using ") and depth < 4:
            used = root / line.split('"')[1]
            if used.is_file():
                found = _sysbus_init_without_svd(used, root, depth + 1)
                if found is not None:
                    return found
    return None


@contextlib.contextmanager
def run_renode(elf: Path, board: Board, workdir: Path, connect_timeout: float = 60.0) -> Iterator[Transport]:
    """Run ``elf`` (built for the real board) in Renode; yield a Transport on the board's UART.

    Renode's ``--console`` monitor quits when its stdin reaches end of file, so stdin is a
    pipe held open for the run. At start-up Renode deletes every ``$TMPDIR/renode-*``
    folder not named after a live process: it gets a TMPDIR of its own. Its launcher
    runs mono without ``exec``: the whole process group is stopped (:mod:`tinyq.infra.proc`).
    """
    exe = shutil.which("renode")
    if exe is None:
        raise ToolchainError("renode not found on PATH",
                             hint="install Renode from its releases (it is in no Debian or PyPI registry), "
                                  "or use --emulator qemu")
    root = renode_root(Path(exe))
    console = Path(workdir) / "console"
    script = Path(workdir) / f"{board.id}.resc"
    script.write_text(renode_script(elf, board, console, renode_platform(board, root, Path(workdir))))
    tmp = Path(workdir) / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp)}
    with _emulator("Renode", [exe, "--disable-xwt", "--console", "--plain", "-e", f"include @{script}"],
                   str(console), connect_timeout, both_outputs=True,
                   stdin=subprocess.PIPE, env=env, cwd=str(workdir)) as t:
        yield t


def renode_root(exe: Path) -> Path | None:
    """Renode's installation folder (it holds ``platforms/``) near the ``renode`` on PATH, if found."""
    real = exe.resolve()
    for cand in (real.parent, real.parent.parent, real.parent.parent / "lib" / "renode",
                 Path("/opt/renode"), real.parent.parent / "share" / "renode"):
        if (cand / "platforms").is_dir():
            return cand
    return None


@contextlib.contextmanager
def run_board(port: str, board: Board) -> Iterator[Transport]:
    """Connect to the flashed board's console (resetting it is the upload's job)."""
    with Transport(port, baudrate=board.console.baud, connect_timeout=10.0) as t:
        yield t
