"""The build contract: a typed, frozen :class:`BuildReport` and the :class:`BuildDir` that owns a build's files.

``build.json``, ``tinyq build --json`` and every reader of a build (``flash``, the CLI's summary, the
benchmarks) go through these two, so a file name or a report key is written in one place. The JSON carries a
schema version; a build folder written by a tinyq without one (schema 0) is still read where its keys allow.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tinyq.errors import InputFileError
from tinyq.infra.outputs import MANIFEST

#: The version of build.json's layout; a reader refuses a newer one.
SCHEMA = 1
#: Where the TFLM arena figures come from (the tflite_micro wheel's recording allocator).
TFLM_ARENA_SOURCE = "tflite_micro host interpreter (64-bit)"


@dataclass(frozen=True)
class FirmwareImage:
    """One linked firmware of a build (paths relative to the build folder)."""

    target: str
    elf: str
    bin: str
    hex: str
    map: str
    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    flash_limit: int
    ram_limit: int


@dataclass(frozen=True)
class BuildReport:
    """What a build found and wrote: the one source of build.json and of ``tinyq build``'s output."""

    tinyq: str
    model: str
    board: str
    model_id: str
    loader: str
    warnings: tuple[str, ...]
    quantization: Mapping[str, Any]   # the quantize stage's report (accuracy, sizes, per-layer SQNR)
    ops: Mapping[str, int]
    macs: int
    weights_bytes: int
    arena_bytes: int                  # all RAM the model needs: activations + each op's scratch
    favour: str
    weights: str                      # "int8" or "int16" (conv/FC weights as int16 pairs)
    activation_bytes: int
    scratch_bytes: int
    tflm_arena_bytes: int | None
    tflm_arena_head_bytes: int | None
    layers: tuple[Mapping[str, Any], ...]
    bands: tuple[Mapping[str, Any], ...]
    constant_channels: Mapping[str, Any] | None
    memory: Mapping[str, Any]
    budget: Mapping[str, Any]
    host_bit_exact_inputs: int
    firmware: Mapping[str, FirmwareImage]
    arduino_library: str | None
    finetune: Mapping[str, Any] | None = None
    #: What the generated C was checked against on the host: "TFLM", or TensorFlow Lite's reference kernels
    #: for a model with an op TFLM has no int8 kernel for (tinyq.model.reference.reference_for).
    reference: str = "TFLM"
    schema: int = SCHEMA

    def to_dict(self) -> dict:
        """The report as build.json holds it."""
        d = dataclasses.asdict(self)
        d["tflm_arena_measured_on"] = TFLM_ARENA_SOURCE
        if self.finetune is None:
            del d["finetune"]
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "BuildReport":
        """Read a build.json's contents; a missing key or a newer schema is one :class:`InputFileError`."""
        if not isinstance(data, dict):
            raise InputFileError(f"{source}: not a build report", hint="rebuild with `tinyq build`")
        if data.get("schema", 0) > SCHEMA:
            raise InputFileError(f"{source}: written by a newer tinyq (build report schema {data['schema']})",
                                 hint="update tinyq, or rebuild with this one")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        # What `flash` cannot do without is said first, by name; the rest follows.
        missing = [k for k in ("board", "model_id", "firmware") if k not in data]
        missing += [k for k in required if k not in data and k not in missing]
        if missing:
            raise InputFileError(f"{source}: lacks {', '.join(missing)}; not written by this tinyq, or edited",
                                 hint="rebuild with `tinyq build`")
        try:
            firmware = {t: FirmwareImage(**f) for t, f in data["firmware"].items()}
            values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
            return cls(**{**values, "firmware": firmware, "warnings": tuple(data["warnings"]),
                          "layers": tuple(data["layers"]), "bands": tuple(data["bands"])})
        except (TypeError, AttributeError) as e:
            raise InputFileError(f"{source}: corrupt build report ({e})", hint="rebuild with `tinyq build`") from e


@dataclass(frozen=True)
class BuildDir:
    """A build folder and the names of everything in it."""

    path: Path
    #: The fine-tuned Keras model of a --qat/--prune build (tf-keras HDF5: the one format that reloads tfmot's
    #: QAT layers; tinyq reads it back like any .h5).
    FINETUNED_MODEL = "model_finetuned.h5"
    #: The float model a Keras build came from (absent for an int8 .tflite build).
    FLOAT_MODEL = "model_float.tflite"
    INT8_MODEL = "model_int8.tflite"
    #: The board definition the build was made for (a board given as a file flashes too).
    BOARD_FILE = "board.toml"
    #: The arena over the op sequence, drawn by every build.
    MEMORY_PLOT = "memory.png"
    #: The quantized inputs the device runs and the TFLM outputs it must match.
    VERIFY = "verify.npz"
    TFLM_PROJECT = "tflm"
    CLASSIFY_EXAMPLE = "examples/classify_qemu"  # the classify example as bare-metal firmware for the QEMU twin
    MANIFEST = MANIFEST

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    def read_report(self) -> BuildReport:
        """build.json, checked; a folder that is not a build is one :class:`InputFileError`."""
        path = self.file(MANIFEST)
        if not path.is_file():
            raise InputFileError(f"{self.path}: not a tinyq build folder (no {MANIFEST})",
                                 hint="run `tinyq build` first, or pass --build DIR")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputFileError(f"{path}: corrupt ({e})", hint="rebuild with `tinyq build`") from e
        return BuildReport.from_dict(data, str(path))

    def write_report(self, report: BuildReport) -> None:
        self.file(MANIFEST).write_text(json.dumps(report.to_dict(), indent=2) + "\n")

    def firmware_elf(self, report: BuildReport, target: str) -> Path:
        return self.path / report.firmware[target].elf

    def read_verify(self):
        """(inputs, expected): the quantized inputs the device runs and the outputs it must give."""
        import numpy as np

        path = self.file(self.VERIFY)
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["inputs"], z["expected"]
        except FileNotFoundError as e:
            raise InputFileError(f"{path}: missing; the build folder is incomplete",
                                 hint="rebuild with `tinyq build`") from e
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise InputFileError(f"{path}: corrupt ({e})", hint="rebuild with `tinyq build`") from e

    def board(self, report: BuildReport):
        """The board the build was made for: the copy in the folder, else the board database."""
        from tinyq.boards import get_board, load_board_file
        from tinyq.errors import BoardError

        copy = self.file(self.BOARD_FILE)
        if not copy.is_file():
            return get_board(report.board)
        try:
            return load_board_file(copy, expect_id=report.board)
        except BoardError as e:
            raise BoardError(e.message, hint="the build was made by another tinyq version: rebuild with `tinyq build`") from e
