"""Emit a TensorFlow Lite Micro PlatformIO project for the same model.

TFLM stays a first-class output for users who have it: the model as an aligned C
array, a ``main.cpp`` whose op resolver lists exactly the model's ops, and
``kTensorArenaSize`` taken from TFLM's own allocator on the host plus a margin.
"""

from __future__ import annotations

import hashlib
import math

from tinyq import __version__
from tinyq.boards import Board
from tinyq.compile.emit.model import environment
from tinyq.graph import Graph

#: Added to the host's (64-bit) arena figure.
ARENA_MARGIN = 0.10

_SPECIAL = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D", "MAX_POOL_2D": "MaxPool2D",
            "AVERAGE_POOL_2D": "AveragePool2D", "RELU6": "Relu6", "RELU_N1_TO_1": "ReluN1To1", "PADV2": "PadV2",
            "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM"}


def resolver_method(opcode: str) -> str:
    """The MicroMutableOpResolver method that registers ``opcode`` (e.g. FULLY_CONNECTED -> AddFullyConnected)."""
    return "Add" + _SPECIAL.get(opcode, "".join(part.capitalize() for part in opcode.split("_")))


def arena_size(host_total: int) -> int:
    """kTensorArenaSize: the host figure plus the margin, rounded up to 1 KiB."""
    return int(math.ceil(host_total * (1 + ARENA_MARGIN) / 1024) * 1024)


def emit_tflm(graph: Graph, tflite: bytes, board: Board, host_arena: int, source: str = "model.tflite") -> dict[str, str]:
    """Render model_data.h/.cc, main.cpp and platformio.ini of the TFLM project."""
    ops = sorted({resolver_method(op.opcode) for op in graph.operators})
    ctx = {
        "version": __version__, "source": source, "model_id": hashlib.sha256(tflite).hexdigest()[:12],
        "board": board, "ops": ops, "host_arena": host_arena, "arena_size": arena_size(host_arena),
        "margin_percent": int(ARENA_MARGIN * 100), "rows": [r for r in _hex_rows(tflite)], "length": len(tflite),
        "pio_platform": board.platformio.platform, "pio_board": board.platformio.board,
    }
    env = environment()
    return {f"{'src/' if n != 'platformio.ini' else ''}{n}": env.get_template(f"tflm/{n}.j2").render(**ctx)
            for n in ("model_data.h", "model_data.cc", "main.cpp", "platformio.ini")}


def _hex_rows(data: bytes, per_row: int = 12):
    for i in range(0, len(data), per_row):
        yield ", ".join(f"0x{b:02x}" for b in data[i : i + per_row]) + ","
