"""Build stage: compile the emitted sources into firmware with Debian's arm-none-eabi-gcc.

tinyq calls the cross-compiler directly rather than through PlatformIO: PlatformIO
cannot reach its registry here, a direct build is deterministic and takes a second,
and the emitted ``platformio.ini`` still lets a board owner build the same sources
with the official platform. Everything is built in a scratch folder and moved into
place only when it succeeded, so a failed build leaves nothing half-written.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from tinyq.boards import Board
from tinyq.errors import BuildError, ToolchainError
from tinyq.resources import FIRMWARE_DIR
from tinyq.infra.staging import staged_dir

CC = "arm-none-eabi-gcc"
OBJCOPY = "arm-none-eabi-objcopy"
CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CFLAGS = ["-std=c99", "-O2", "-g", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]
LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"]
RUNTIME = ("main.c", "tq_protocol.c", "startup.c", "timer.c")
#: What a program with its own main() takes of the runtime (the classify example): start-up, timer, console.
EXAMPLE_RUNTIME = ("startup.c", "timer.c")


def console_driver(uart: str) -> Path | None:
    """The firmware's console driver for a UART kind (``firmware/runtime/console_<uart>.c``), if any.

    The files are the one list of which consoles have drivers: adding a driver is adding its file.
    """
    path = FIRMWARE_DIR / "runtime" / f"console_{uart}.c"
    return path if path.is_file() else None


def usb_driver(board: Board, target: str) -> list[Path]:
    """The USB console's sources for ``target`` (the board's own firmware only; none on the twin)."""
    if target != "board" or board.console.usb is None:
        return []
    usb = FIRMWARE_DIR / "usb"
    return [usb / "tq_usb_cdc.c", usb / f"tq_usbd_{board.console.usb}.c", *sorted(usb.glob("*.h"))]


def target_uart(board: Board, target: str) -> str:
    """The UART kind the firmware of ``target`` talks on: the twin's on QEMU, the board's own elsewhere."""
    return board.emulator.qemu.uart if target == "qemu" else board.console.uart


@dataclass(frozen=True)
class Firmware:
    """A linked firmware image and what it takes of the board."""

    target: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    flash_bytes: int       # vectors + code + const data + .data initialisers
    static_ram_bytes: int  # .data + .bss (the arena is in .bss)
    stack_bytes: int
    flash_limit: int
    ram_limit: int

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainError(f"{tool} not found on PATH",
                             hint="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi (or run `make setup`)")
    return path


def _sections(elf: Path) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile

    with elf.open("rb") as f:
        return {s.name: s["sh_size"] for s in ELFFile(f).iter_sections() if s["sh_flags"] & 0x2}  # SHF_ALLOC


def build_firmware(files: dict[str, str], board: Board, target: str, out_dir: Path, verbose: bool = False,
                   runtime_files: tuple[str, ...] = RUNTIME) -> Firmware:
    """Write ``files`` (model + firmware emitted sources) and link them into ``out_dir``.

    ``runtime_files``: the files of ``firmware/runtime`` linked in (an example that brings its own ``main`` takes
    only the start-up and the timer: :data:`EXAMPLE_RUNTIME`). ``out_dir`` is replaced only when the build
    succeeded.
    """
    for tool in (CC, OBJCOPY):  # before any file is written
        _require(tool)
    uart = target_uart(board, target)
    driver = console_driver(uart)
    if driver is None:
        raise BuildError(f"no console driver for '{uart}' ({board.id}) yet", hint="build for --emulator qemu instead")
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        src = tmp / "src"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_text(text)
        # The folder is self-contained: the kernels and the runtime files this target uses are
        # copied beside the generated sources (PlatformIO builds src/ as it is) and compiled
        # from there. The .S file is the Cortex-M4 inner loops (their C twins compile to
        # nothing there).
        kernels, runtime = src / "kernels", src / "runtime"
        kernels.mkdir()
        runtime.mkdir()
        for f in sorted((FIRMWARE_DIR / "kernels").glob("*.[chS]")):
            shutil.copy2(f, kernels / f.name)
        for name in (*runtime_files, driver.name, *(f.name for f in (FIRMWARE_DIR / "runtime").glob("*.h"))):
            shutil.copy2(FIRMWARE_DIR / "runtime" / name, runtime / name)
        usb_files = usb_driver(board, target)
        if usb_files:
            (src / "usb").mkdir()
            for f in usb_files:
                shutil.copy2(f, src / "usb" / f.name)
        firmware = _compile(src, tmp, board, target)
    return replace(firmware, elf=out_dir / "firmware.elf", bin=out_dir / "firmware.bin", hex=out_dir / "firmware.hex",
                   map=out_dir / "firmware.map")


def rebuild_firmware(src: Path, board: Board, target: str, out_dir: Path, defines: list[str]) -> Firmware:
    """Compile a build's own ``src/`` folder again into ``out_dir`` (a scratch folder), with ``defines`` added:
    a variant for one emulator (Renode's UARTE model wants its own receive re-arm order) that is never
    the firmware a board gets."""
    src = Path(src)
    if not (src / "linker.ld").is_file():
        raise BuildError(f"{src}: not a firmware source folder (no linker.ld)", hint="rebuild with `tinyq build`")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return _compile(src, Path(out_dir), board, target, defines)


def _compile(src: Path, out: Path, board: Board, target: str, defines: list[str] = ()) -> Firmware:
    """Compile and link the self-contained source folder ``src`` into ``out`` (ELF, BIN, HEX, map); a
    ``usb/`` folder in it is the USB console, compiled in."""
    from tinyq.compile.emit.firmware import target_memory

    cc, objcopy = _require(CC), _require(OBJCOPY)
    if (src / "usb").is_dir():
        defines = ["-DTQ_CONSOLE_USB", "-I", str(src / "usb"), *defines]
    kernels, runtime = src / "kernels", src / "runtime"
    sources = sorted(str(p) for p in src.glob("*.c")) + sorted(str(p) for p in kernels.glob("*.[cS]"))
    sources += sorted(str(p) for p in runtime.glob("*.c")) + sorted(str(p) for p in (src / "usb").glob("*.c"))
    elf = out / "firmware.elf"
    cmd = [cc, *CPU_FLAGS, *CFLAGS, *defines, "-I", str(src), "-I", str(kernels), "-I", str(runtime), *sources,
           "-T", str(src / "linker.ld"), *LDFLAGS, f"-Wl,-Map={out / 'firmware.map'}", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    mem = target_memory(board, target)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        overflow = [l for l in err.splitlines() if "overflowed" in l or "will not fit" in l]
        if overflow:
            raise BuildError(
                f"the firmware does not fit {board.id}: {overflow[0].split(': ', 1)[-1]} "
                f"(flash {mem.flash_bytes} B, RAM {mem.ram_bytes} B incl. {mem.stack_bytes} B stack)",
                hint="shrink the model or pick a board with more memory; see firmware.map",
            )
        raise BuildError(f"compiling the firmware failed: {err[:1500]}")
    for fmt, ext in (("binary", "bin"), ("ihex", "hex")):
        subprocess.run([objcopy, "-O", fmt, str(elf), str(out / f"firmware.{ext}")], check=True)
    sec = _sections(elf)
    flash = sum(sec.get(n, 0) for n in (".isr_vector", ".text", ".ARM.exidx", ".data"))
    static_ram = sec.get(".data", 0) + sec.get(".bss", 0)
    return Firmware(target, elf, out / "firmware.bin", out / "firmware.hex", out / "firmware.map", flash, static_ram,
                    sec.get(".stack", 0), mem.flash_bytes, mem.ram_bytes)


def write_zip(files: dict[str, bytes], path: Path) -> None:
    """Write ``files`` ({name: bytes}) as a zip whose bytes depend on nothing else (fixed dates, sorted)."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
