"""Emit the board-specific firmware files: linker script, board header, platformio.ini.

Two targets per board: ``board`` (the real chip's memory map, e.g. the Nano 33 BLE
linking after its 64 KB bootloader) and ``qemu`` (the board's QEMU twin: the same
flash and RAM sizes at the twin's addresses, so what would not fit the board fails
to link here too).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyq import __version__
from tinyq.boards import Board
from tinyq.compile.emit.model import environment

TARGETS = ("qemu", "board")

@dataclass(frozen=True)
class TargetMemory:
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    stack_bytes: int
    cpu_hz: int  # what the cycle timer counts at on this target


def target_memory(board: Board, target: str) -> TargetMemory:
    """The memory map and timer clock the firmware is linked for."""
    m = board.memory
    if target == "board":
        return TargetMemory(m.flash_origin, m.flash_bytes, m.ram_origin, m.ram_bytes, m.stack_bytes, board.chip.clock_hz)
    if target == "qemu":
        q = board.emulator.qemu  # the twin's memory map, with the board's sizes
        return TargetMemory(q.flash_origin, m.flash_bytes, q.ram_origin, m.ram_bytes, m.stack_bytes, q.clock_hz)
    raise ValueError(f"unknown target {target!r}")


def emit_firmware(board: Board, target: str) -> dict[str, str]:
    """Render linker.ld and tq_board.h (and platformio.ini for the real board)."""
    mem = target_memory(board, target)
    env = environment()
    ctx = {"version": __version__, "board": board, "target": target, "cpu_hz": mem.cpu_hz,
           "flash_origin": mem.flash_origin, "flash_bytes": mem.flash_bytes,
           "ram_origin": mem.ram_origin, "ram_bytes": mem.ram_bytes, "stack_bytes": mem.stack_bytes}
    files = {
        "linker.ld": env.get_template("firmware/linker.ld.j2").render(**ctx),
        "tq_board.h": env.get_template("firmware/tq_board.h.j2").render(**ctx),
    }
    if target == "board":
        files["platformio.ini"] = env.get_template("firmware/platformio.ini.j2").render(**ctx)
    return files
