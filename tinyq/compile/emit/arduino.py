"""Emit an Arduino library of a build: the model, tinyq's runtime and a sketch that speaks the protocol.

Pure: returns {path inside the zip: bytes}; the build stage writes the zip. Every file goes
flat into ``src/`` (the Arduino builder adds only that folder to the include path). The
protocol is ``firmware/runtime/tq_protocol.c``, the same source as the bare-metal firmware's.
"""

from __future__ import annotations

import re

from tinyq import __version__
from tinyq.boards import Board
from tinyq.compile.emit.model import environment
from tinyq.resources import FIRMWARE_DIR

#: The runtime files the library carries besides the model and the kernels.
RUNTIME_FILES = ("tq_protocol.c", "tq_protocol.h", "tq_port.h")


def library_name(source: str) -> str:
    """An Arduino library name for a model file name: tinyq_<stem>, letters, digits and underscores."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", source.rsplit("/", 1)[-1].split(".")[0]) or "model"
    return f"tinyq_{stem}"


def emit_arduino(model_files: dict[str, str], board_header: str, board: Board, model_id: str,
                 source: str) -> tuple[str, dict[str, bytes]]:
    """(library name, {path: bytes}) of the Arduino library for ``board`` (which must have [arduino])."""
    name = library_name(source)
    env = environment()
    ctx = {"name": name, "version": __version__, "board": board, "model_id": model_id, "source": source}
    files: dict[str, bytes] = {
        "library.properties": env.get_template("arduino/library.properties.j2").render(**ctx).encode(),
        f"src/{name}.h": env.get_template("arduino/library.h.j2").render(**ctx).encode(),
        f"examples/tinyq_run/tinyq_run.ino": env.get_template("arduino/example.ino.j2").render(**ctx).encode(),
        "src/tq_board.h": board_header.encode(),
        "src/tq_port_arduino.cpp": (FIRMWARE_DIR / "arduino" / "tq_port_arduino.cpp").read_bytes(),
    }
    for fname, text in model_files.items():
        files[f"src/{fname}"] = text.encode()
    for f in sorted((FIRMWARE_DIR / "kernels").glob("*.[chS]")):
        files[f"src/{f.name}"] = f.read_bytes()
    for fname in RUNTIME_FILES:
        files[f"src/{fname}"] = (FIRMWARE_DIR / "runtime" / fname).read_bytes()
    return name, {f"{name}/{k}": v for k, v in sorted(files.items())}
