"""Board definitions: data files in ``boards/``, validated on load.

A board is a TOML file ``boards/<id>.toml``. Unknown keys, missing keys, wrong types
and impossible memory maps are rejected with the file and the key named. There are
no board-specific Python classes: everything the stages need is in :class:`Board`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tinyq.errors import BoardError
from tinyq.infra.outputs import path_too_long, short
from tinyq.resources import BOARDS_DIR



#: The smallest stack a board file may give the firmware (bytes).
MIN_STACK_BYTES = 1024
#: ARMv7-M's memory map (Architecture Reference Manual B3.1): code (flash) lives in the Code region,
#: RAM in the SRAM region; a chip whose flash or RAM runs past its region cannot exist.
CODE_REGION = (0x0000_0000, 0x2000_0000)
SRAM_REGION = (0x2000_0000, 0x4000_0000)
#: The application's flash start holds the vector table, which VTOR can point at only on a boundary of the
#: table's size rounded up to a power of two: 1 KB covers the 16 + 240 vectors a Cortex-M4 can have.
FLASH_ORIGIN_ALIGN = 1024
#: RAM starts and sizes keep the stack 8-byte aligned, as the AAPCS needs at every public call.
RAM_ALIGN = 8
#: What each QEMU machine tinyq runs a twin on gives the firmware (code memory, RAM: start and size).
QEMU_MACHINES = {"mps2-an386": {"flash": (0x0000_0000, 4 << 20), "ram": (0x2000_0000, 4 << 20)}}


class _Strict(BaseModel):
    # strict: a string "64000000" is not silently accepted as an int.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Chip(_Strict):
    name: str
    core: Literal["cortex-m4f"]
    clock_hz: int = Field(gt=0)
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    #: Where the chip's flash and (contiguous) RAM start; the defaults are where the ARMv7-M memory map puts
    #: code and SRAM, and where most Cortex-M parts (the nRF52840 among them) have them.
    flash_origin: int = Field(default=CODE_REGION[0], ge=0)
    ram_origin: int = Field(default=SRAM_REGION[0], ge=0)


class Memory(_Strict):
    """What the application may use: the linker script is made from this."""

    flash_origin: int = Field(ge=0)
    flash_bytes: int = Field(gt=0)
    ram_origin: int = Field(ge=0)
    ram_bytes: int = Field(gt=0)
    # The firmware's own frames (protocol, hex parsing, kernels' locals) need about 0.6 KB;
    # a smaller stack would overflow into the arena.
    stack_bytes: int = Field(ge=MIN_STACK_BYTES)


class Console(_Strict):
    uart: Literal["nrf52_uarte", "stm32_usart", "cmsdk"]
    baud: int = Field(gt=0)
    tx_pin: int = Field(ge=0)
    rx_pin: int = Field(ge=0)
    #: A USB CDC-ACM console beside the UART (its driver: firmware/usb/tq_usbd_<usb>.c), or none.
    usb: Literal["nrf52"] | None = None


class Usb(_Strict):
    """How the board shows up on USB: in its application (tinyq's firmware) and in its bootloader."""

    vid: int = Field(ge=0, le=0xFFFF)
    pid: int = Field(ge=0, le=0xFFFF)
    bootloader_vid: int = Field(ge=0, le=0xFFFF)
    bootloader_pid: int = Field(ge=0, le=0xFFFF)
    # USB string descriptors, also C string literals in the firmware: printable ASCII, no quotes or backslashes.
    manufacturer: str = Field(max_length=32, pattern=r'^[ !#-\[\]-~]*$')
    product: str = Field(max_length=32, pattern=r'^[ !#-\[\]-~]*$')


class Upload(_Strict):
    method: Literal["bossac", "pyocd"]
    touch_1200bps: bool
    bootloader_bytes: int = Field(ge=0)


class PlatformIO(_Strict):
    """The official PlatformIO ids, for the platformio.ini handed to board owners."""

    platform: str
    board: str
    upload_protocol: str


class Arduino(_Strict):
    """The board in the Arduino world: its FQBN and the library architectures it takes."""

    fqbn: str
    architectures: str


class QemuTwin(_Strict):
    machine: Literal["mps2-an386"]
    cpu: Literal["cortex-m4"]
    uart: Literal["cmsdk"]
    clock_hz: int = Field(gt=0)   # what SysTick counts on the twin
    flash_origin: int = Field(ge=0)
    ram_origin: int = Field(ge=0)


class RenodeTwin(_Strict):
    """The board in Renode: its platform description and the names of the parts tinyq sets up."""

    platform: str
    cpu: str
    nvic: str
    uart: str


class Emulators(_Strict):
    qemu: QemuTwin
    renode: RenodeTwin | None = None


class Board(_Strict):
    """One board: chip, the memory the application gets, console, upload and emulator twins."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    vendor: str
    chip: Chip
    memory: Memory
    console: Console
    upload: Upload
    platformio: PlatformIO
    usb: Usb | None = None
    arduino: Arduino | None = None  # builds for it also export an Arduino library
    emulator: Emulators

    @model_validator(mode="after")
    def _memory_map(self) -> "Board":
        c, m, boot = self.chip, self.memory, self.upload.bootloader_bytes
        for name, lo, size, (rlo, rhi) in (("flash", c.flash_origin, c.flash_bytes, CODE_REGION),
                                           ("ram", c.ram_origin, c.ram_bytes, SRAM_REGION)):
            if not (rlo <= lo and lo + size <= rhi):
                raise ValueError(f"chip.{name}_origin + chip.{name}_bytes ({_hex(lo)} + {size:,}) runs outside the "
                                 f"Cortex-M {'Code' if name == 'flash' else 'SRAM'} region {_hex(rlo)}..{_hex(rhi)}")
        # The bootloader is taken to hold the chip's first bootloader_bytes of flash (Arduino's, STM32's ROM-less).
        app_lo = c.flash_origin + boot
        if m.flash_origin < app_lo:
            raise ValueError(f"memory.flash_origin ({_hex(m.flash_origin)}) is below "
                             + (f"the end of the bootloader (chip.flash_origin + upload.bootloader_bytes = {_hex(app_lo)})"
                                if boot else f"the chip's flash (chip.flash_origin = {_hex(c.flash_origin)})"))
        if m.flash_origin + m.flash_bytes > c.flash_origin + c.flash_bytes:
            raise ValueError(f"memory.flash_origin + memory.flash_bytes ({_hex(m.flash_origin)} + {m.flash_bytes:,}) "
                             f"runs past the end of the chip's flash ({_hex(c.flash_origin + c.flash_bytes)})"
                             + _larger("flash", m.flash_bytes + boot, c.flash_bytes))
        if not (c.ram_origin <= m.ram_origin and m.ram_origin + m.ram_bytes <= c.ram_origin + c.ram_bytes):
            raise ValueError(f"memory.ram_origin + memory.ram_bytes ({_hex(m.ram_origin)} + {m.ram_bytes:,}) is not "
                             f"inside the chip's RAM ({_hex(c.ram_origin)} + {c.ram_bytes:,})"
                             + _larger("ram", m.ram_bytes, c.ram_bytes))
        if m.flash_origin % FLASH_ORIGIN_ALIGN:
            raise ValueError(f"memory.flash_origin ({_hex(m.flash_origin)}) is not a multiple of {FLASH_ORIGIN_ALIGN}: "
                             "the vector table that starts there could not be used")
        for key in ("ram_origin", "ram_bytes", "stack_bytes"):
            if getattr(m, key) % RAM_ALIGN:
                raise ValueError(f"memory.{key} ({getattr(m, key):,}) is not a multiple of {RAM_ALIGN} "
                                 "(the stack must stay 8-byte aligned)")
        if m.stack_bytes >= m.ram_bytes:
            raise ValueError("memory.stack_bytes must be smaller than memory.ram_bytes")
        q, twin = self.emulator.qemu, QEMU_MACHINES[self.emulator.qemu.machine]
        for name, origin, size in (("flash", q.flash_origin, m.flash_bytes), ("ram", q.ram_origin, m.ram_bytes)):
            lo, n = twin[name]
            if not (lo <= origin and origin + size <= lo + n):
                raise ValueError(f"emulator.qemu.{name}_origin + memory.{name}_bytes ({_hex(origin)} + {size:,}) does "
                                 f"not fit {q.machine}'s {name} ({_hex(lo)} + {n:,}): the twin could not load it")
        if self.console.usb is not None and self.usb is None:
            raise ValueError("console.usb needs a [usb] table (vid, pid, bootloader_vid, bootloader_pid, manufacturer, product)")
        return self

    def summary(self) -> dict:
        """The figures `tinyq boards` shows, as plain data."""
        return {
            "id": self.id,
            "name": self.name,
            "chip": self.chip.name,
            "core": self.chip.core,
            "clock_hz": self.chip.clock_hz,
            "flash_bytes": self.memory.flash_bytes,
            "ram_bytes": self.memory.ram_bytes,
            "chip_flash_bytes": self.chip.flash_bytes,
            "chip_ram_bytes": self.chip.ram_bytes,
            "upload": self.upload.method,
            "emulators": [n for n in ("qemu", "renode") if getattr(self.emulator, n) is not None],
        }


def _larger(name: str, wants: int, has: int) -> str:
    return f": memory.{name}_bytes is larger than the chip's {name} allows" if wants > has else ""


def _hex(n: int) -> str:
    return f"0x{n:08X}"


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "value_error" and not key:
            # Cross-field checks of Board name their keys in the message itself.
            parts.append(msg.removeprefix("Value error, "))
            continue
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "missing key"
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def load_board_file(path: Path, expect_id: str | None = None) -> Board:
    """Read and validate one board file; raise :class:`BoardError` naming the file and key.

    The board's id must match the file name, or ``expect_id`` when given (a build folder's copy).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BoardError(f"{path}: cannot read board file ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise BoardError(f"{path}: not a text file ({e.reason})", hint="a board file is TOML text") from e
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: not valid TOML ({e})", hint="fix the TOML syntax") from e
    try:
        board = Board.model_validate(data)
    except ValidationError as e:
        raise BoardError(f"{path}: {_describe(e)}", hint="compare with boards/nano33.toml") from e
    want = expect_id if expect_id is not None else path.stem
    if board.id != want:
        raise BoardError(
            f"{path}: id: '{board.id}' does not match the file name '{path.stem}'" if expect_id is None
            else f"{path}: id: '{board.id}' is not the build's board '{expect_id}'",
            hint=f"rename the file to {board.id}.toml or set id = \"{path.stem}\"" if expect_id is None
            else "rebuild with `tinyq build`",
        )
    return board


def load_boards(directory: Path = BOARDS_DIR) -> dict[str, Board]:
    """All boards in ``directory``, by id; any invalid file is an error."""
    files = sorted(Path(directory).glob("*.toml"))
    if not files:
        raise BoardError(f"{directory}: no board files (*.toml)")
    return {b.id: b for b in (load_board_file(f) for f in files)}


def board_file(board: str, directory: Path = BOARDS_DIR) -> Path:
    """The file behind ``board``: a known board id, or the path of a board file of the user's own."""
    if board.endswith(".toml") or "/" in board or "\\" in board:
        path = Path(board)
        problem = path_too_long(path)
        if problem:
            raise BoardError(f"{short(board)}: {problem}", hint="give a shorter path to the board file")
        if not path.is_file():
            raise BoardError(f"{board}: no such board file", hint="give a board id (`tinyq boards`) or a .toml file")
        return path
    known = sorted(p.stem for p in Path(directory).glob("*.toml"))
    if board not in known:  # looked up by name, never by touching a path made of what the user typed
        raise BoardError(f"unknown board '{short(board)}'",
                         hint=f"known boards: {', '.join(known)}; or give a board file, e.g. ./myboard.toml")
    return Path(directory) / f"{board}.toml"


def get_board(board: str, directory: Path = BOARDS_DIR) -> Board:
    """The board named ``board`` (an id, or a path to a board file), or a :class:`BoardError`."""
    return load_board_file(board_file(board, directory))
