"""The host reference: the real TensorFlow Lite Micro interpreter (``tflite_micro`` wheel).

tinyq's own int8 runtime must match it bit for bit, and the arena it reports is the
figure tinyq's memory plan is compared against.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

# Generous: the interpreter only needs what it uses, and it reports that figure.
_DEFAULT_ARENA = 8 * 1024 * 1024


@dataclass(frozen=True)
class TflmArena:
    """What TFLM's allocator reported for a model (bytes).

    ``head`` is the planned, non-persistent part (the activations); ``tail`` the
    persistent part (interpreter structs, quantization data, kernel buffers);
    ``total`` is what ``kTensorArenaSize`` must at least be (on a 64-bit host).
    """

    total: int
    head: int | None = None
    tail: int | None = None


@contextmanager
def _capture_fd2():
    """Capture what C++ code writes to file descriptor 2 (Python's sys.stderr cannot)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        box: dict[str, str] = {}
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box["text"] = tmp.read().decode("utf-8", "replace")


class TflmReference:
    """One TFLM interpreter over an int8 model; :meth:`run` returns each output as int8 arrays."""

    def __init__(self, tflite: bytes, arena_size: int = _DEFAULT_ARENA):
        from tflite_micro.python.tflite_micro import runtime

        with _capture_fd2() as log:
            self._it = runtime.Interpreter.from_bytes(bytes(tflite), arena_size=arena_size)
            # The recording allocator prints its figures only when asked.
            self._it.print_allocations()
        self.arena = _parse_arena(log["text"])
        self.input_details = self._it.get_input_details(0)
        self.output_details = self._it.get_output_details(0)
        # A fused LSTM keeps its state in variable tensors from one invocation to the next; tinyq's runtime
        # starts every inference from the reset state (what a stateless Keras LSTM means): so does the reference.
        from tinyq.graph import parse_tflite

        self._stateful = any(t.is_variable for t in parse_tflite(bytes(tflite)).tensors)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one input (already quantized, model's input shape); return output 0."""
        shape = tuple(int(s) for s in self.input_details["shape"])
        x = np.asarray(x, dtype=self.input_details["dtype"]).reshape(shape)
        if self._stateful:
            self._it.reset()
        self._it.set_input(x, 0)
        self._it.invoke()
        return np.array(self._it.get_output(0), copy=True)


def _parse_arena(text: str) -> TflmArena | None:
    def grab(label: str) -> int | None:
        m = re.search(rf"Arena allocation {label} (\d+) bytes", text)
        return int(m.group(1)) if m else None

    total = grab("total")
    return TflmArena(total, grab("head"), grab("tail")) if total is not None else None


def tflm_arena_bytes(tflite: bytes) -> int:
    """The tensor-arena bytes TFLM's allocator needs for this model on the host (64-bit)."""
    ref = TflmReference(tflite)
    if ref.arena is None:
        raise RuntimeError("tflite_micro did not report its arena use")
    return ref.arena.total


def reference_outputs(tflite: bytes, inputs: np.ndarray) -> tuple[np.ndarray, TflmArena | None]:
    """TFLM's outputs for every input of ``inputs`` (N, *input_shape), and the arena it reported.

    Meant to run in a worker (:func:`tinyq.infra.isolate.call`): TFLM is C++ and aborts or faults in-process on
    some hostile models (a scale it cannot requantize), which would kill tinyq with nothing said.
    """
    from tinyq.infra.isolate import note

    from tinyq.errors import UnsupportedModelError

    note("running the model on TFLM (the host reference)")
    try:
        ref = TflmReference(tflite)
        return np.stack([ref.run(x) for x in inputs]), ref.arena
    except RuntimeError as e:  # TFLM's own refusal (allocation, a kernel's Prepare): said as such
        raise UnsupportedModelError(f"TFLM, the host reference every build is checked against, refuses the model "
                                    f"({e})", hint="tinyq cannot verify a model TFLM cannot run; `tinyq inspect` "
                                                   "shows its tensors and quantization") from e


def run_reference(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run every input of ``inputs`` (N, *input_shape) through TFLM; return (N, *output_shape)."""
    ref = TflmReference(tflite)
    return np.stack([ref.run(x) for x in inputs])
