"""Emit the library of a build: the model with its C API, tinyq's kernels, and examples, in one tree that is
at once an Arduino library (``library.properties``), a PlatformIO library (``library.json``) and a CMake
static library (``CMakeLists.txt``, for Zephyr / nRF Connect applications through ``add_subdirectory``).

Pure: returns {path inside the zip: bytes}; the build stage writes the zip. Every source goes flat into
``src/`` (the Arduino builder adds only that folder to the include path). The measurement protocol is
``firmware/runtime/tq_protocol.c``, the same source as the bare-metal firmware's.
"""

from __future__ import annotations

import json

import numpy as np

from tinyq import __version__
from tinyq.boards import Board
from tinyq.compile.emit.model import c_rows, environment, model_name
from tinyq.resources import FIRMWARE_DIR

#: The runtime files the library carries besides the model and the kernels.
RUNTIME_FILES = ("tq_protocol.c", "tq_protocol.h", "tq_port.h")
#: Sources of the library that need the Arduino core (Serial, the sketch's loop): left out of the CMake target.
ARDUINO_ONLY = ("tq_port_arduino.cpp", "tq_protocol.c")
#: An IMU gesture model: input [1, T, 6] (accelerometer and gyroscope) or [1, T, 3] (accelerometer).
IMU_CHANNELS = (3, 6)


def library_name(source: str, name: str | None = None) -> str:
    """The library's name: ``name`` or tinyq_<the model file's stem>, as a C identifier."""
    return model_name(source, name)


def imu_window(inputs) -> tuple[int, int] | None:
    """(window length T, channels) when the model takes one float-or-int8 window [1, T, 3] or [1, T, 6]."""
    if len(inputs) != 1:
        return None
    x = inputs[0]
    shape = x["shape"]
    if len(shape) == 3 and shape[0] == 1 and shape[2] in IMU_CHANNELS and shape[1] >= 2 and x["enum"] in (
            "TQ_TYPE_INT8", "TQ_TYPE_FLOAT32"):
        return shape[1], shape[2]
    return None


def expected_class(meta: dict, expected: np.ndarray) -> int:
    """The host reference's arg-max of output 0 in one output buffer (``expected``: its bytes, any shape)."""
    y = meta["outputs"][0]
    raw = np.ascontiguousarray(expected).reshape(-1).view(np.int8)[y["offset"]:y["offset"] + y["bytes"]]
    return int(np.argmax(raw.view(np.dtype(y["type"]))))


def _example_ctx(meta: dict, x: np.ndarray, expected: np.ndarray) -> dict:
    k = expected_class(meta, expected) if meta["classes"] else 0
    return {"rows": c_rows(np.ascontiguousarray(x).reshape(-1).view(np.int8)), "expected_class": k,
            "expected_text": f"class {k} ({meta['labels'][k]})" if meta["classes"]
            else "the outputs in verify.npz \"expected\"[0]"}


def classify_example(model_files: dict[str, str], board: Board, model_id: str, source: str, name: str | None,
                     meta: dict, example: tuple[np.ndarray, np.ndarray]) -> dict[str, str]:
    """The classify example as plain C for a bare-metal firmware (its own main()): {file name: text}."""
    env = environment()
    x, expected = example
    ctx = {"name": library_name(source, name), "version": __version__, "board": board, "model_id": model_id,
           "source": source, "classes": meta["classes"], **_example_ctx(meta, x, expected)}
    return {"classify.c": env.get_template("examples/classify.c.j2").render(**ctx),
            "example_input.h": env.get_template("arduino/example_input.h.j2").render(**ctx)}


def emit_arduino(model_files: dict[str, str], board_header: str, board: Board, model_id: str,
                 source: str, name: str | None = None, meta: dict | None = None,
                 example: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[str, dict[str, bytes]]:
    """(library name, {path: bytes}) of the library for ``board`` (which must have [arduino]).

    ``meta`` is :func:`tinyq.compile.emit.model.api_facts` of the model (inputs, outputs, classes, labels);
    ``example`` (one input buffer, int8, and the host reference's output buffer for it) is baked into the
    classify example."""
    name = library_name(source, name)
    meta = meta or {"inputs": [], "outputs": [], "classes": 0, "labels": []}
    env = environment()
    ctx = {"name": name, "version": __version__, "board": board, "model_id": model_id, "source": source,
           "classes": meta["classes"],
           "single_in": len(meta["inputs"]) == 1 and meta["inputs"][0]["enum"] in ("TQ_TYPE_INT8", "TQ_TYPE_FLOAT32")
           and bool(meta["inputs"][0]["scale"] or meta["inputs"][0]["enum"] == "TQ_TYPE_FLOAT32"),
           "single_out": len(meta["outputs"]) == 1 and meta["outputs"][0]["enum"] in ("TQ_TYPE_INT8", "TQ_TYPE_FLOAT32")
           and bool(meta["outputs"][0]["scale"] or meta["outputs"][0]["enum"] == "TQ_TYPE_FLOAT32")}
    files: dict[str, bytes] = {
        "library.properties": env.get_template("arduino/library.properties.j2").render(**ctx).encode(),
        f"src/{name}.h": env.get_template("arduino/library.h.j2").render(**ctx).encode(),
        f"src/{name}.cpp": env.get_template("arduino/library.cpp.j2").render(**ctx).encode(),
        "examples/tinyq_run/tinyq_run.ino": env.get_template("arduino/tinyq_run.ino.j2").render(**ctx).encode(),
        "src/tq_board.h": board_header.encode(),
        "src/tq_port_arduino.cpp": (FIRMWARE_DIR / "arduino" / "tq_port_arduino.cpp").read_bytes(),
    }
    if example is not None:
        x, expected = example
        ex = {**ctx, **_example_ctx(meta, x, expected)}
        files["examples/classify/classify.ino"] = env.get_template("arduino/classify.ino.j2").render(**ex).encode()
        files["examples/classify/example_input.h"] = env.get_template("arduino/example_input.h.j2").render(**ex).encode()
    window = imu_window(meta["inputs"])
    if window is not None:
        files["examples/imu_gesture/imu_gesture.ino"] = env.get_template("arduino/imu_gesture.ino.j2").render(
            **ctx, window=window[0], channels=window[1]).encode()
    for fname, text in model_files.items():
        files[f"src/{fname}"] = text.encode()
    for f in sorted((FIRMWARE_DIR / "kernels").glob("*.[chS]")):
        files[f"src/{f.name}"] = f.read_bytes()
    for fname in RUNTIME_FILES:
        files[f"src/{fname}"] = (FIRMWARE_DIR / "runtime" / fname).read_bytes()
    sources = sorted(p[len("src/"):] for p in files if p.startswith("src/") and p.endswith((".c", ".S"))
                     and p[len("src/"):] not in ARDUINO_ONLY)
    files["CMakeLists.txt"] = env.get_template("arduino/CMakeLists.txt.j2").render(**ctx, sources=sources).encode()
    files["library.json"] = _platformio_manifest(ctx, sorted(p for p in files if p.startswith("examples/")))
    return name, {f"{name}/{k}": v for k, v in sorted(files.items())}


def _platformio_manifest(ctx: dict, examples: list[str]) -> bytes:
    """PlatformIO's library.json: the same sources and examples as the Arduino library (PlatformIO reads
    library.json first where both are)."""
    board = ctx["board"]
    by_folder: dict[str, list[str]] = {}
    for path in examples:
        folder, fname = path.rsplit("/", 1)
        by_folder.setdefault(folder, []).append(fname)
    manifest = {
        "name": ctx["name"],
        "version": ctx["version"],
        "description": f"{ctx['source']} as full-int8 C for the {board.name}, generated by tinyq {ctx['version']} "
                       f"(model {ctx['model_id']})",
        "keywords": ["tinyml", "tflite", "int8", "inference", "cortex-m4"],
        "authors": [{"name": "tinyq", "maintainer": True}],
        "frameworks": ["arduino"],
        "platforms": [board.platformio.platform],
        "headers": [f"{ctx['name']}.h", "tq_model.h"],
        "build": {"srcDir": "src", "includeDir": "src"},
        "examples": [{"name": folder.split("/", 1)[1], "base": folder, "files": fnames}
                     for folder, fnames in sorted(by_folder.items())],
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()
