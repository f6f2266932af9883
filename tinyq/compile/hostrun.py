"""Compile the generated model with the host's C compiler and run it: the bit-exactness check.

The same C that goes on the device (generated model + firmware/kernels) is built
for the host with ``-Wall -Wextra -Werror`` and fed inputs through stdin, so its
outputs can be compared byte for byte with the tflite_micro interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinyq.errors import BuildError, ToolchainError
from tinyq.resources import FIRMWARE_DIR

KERNELS_DIR = FIRMWARE_DIR / "kernels"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]

_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tq_model.h"
/* Runs exactly argv[1] inputs: a loop "while a whole input arrives" would never end for an input of 0 bytes.
 * Each input runs twice: on the static arena and on a caller's arena filled with junk first (so no op may
 * rely on what the arena held; a model that keeps state runs its stream on one zeroed arena), and both entry
 * points must give the same bytes. */
TQ_MODEL_ARENA_DECLARE(callers_arena);
int main(int argc, char **argv) {
    static int8_t in[TQ_MODEL_INPUT_BYTES], out[TQ_MODEL_OUTPUT_BYTES], again[TQ_MODEL_OUTPUT_BYTES];
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    for (long i = 0; i < n; i++) {
        if (fread(in, 1, sizeof in, stdin) != sizeof in) return 2;
        if (tq_model_run(in, out) != 0) return 1;
#ifdef TQ_MODEL_STATE_BYTES
        /* A model that keeps state (an SVDF's): the caller's arena is one stream, zeroed before its first call. */
        if (i == 0) memset(callers_arena, 0, sizeof callers_arena);
#else
        memset(callers_arena, 0xA5 ^ (int)(i & 0xFF), sizeof callers_arena);
#endif
        if (tq_model_run_with_arena(callers_arena, in, again) != 0) return 1;
        if (memcmp(out, again, sizeof out) != 0) return 4;
        fwrite(out, 1, sizeof out, stdout);
    }
    return 0;
}
"""
#: The host program gets this long for all its inputs (the largest models take seconds).
HOST_TIMEOUT_S = 600


def compile_host(files: dict[str, str], workdir: Path, cc: str = "gcc") -> Path:
    """Write ``files`` (the emitted model) into ``workdir`` and build an executable from them."""
    if shutil.which(cc) is None:
        raise ToolchainError(f"host C compiler '{cc}' not found", hint="apt-get install gcc")
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(text)
    (workdir / "host_main.c").write_text(_MAIN)
    sources = sorted(str(p) for p in workdir.glob("*.c")) + sorted(str(p) for p in KERNELS_DIR.glob("*.c"))
    exe = workdir / "model_host"
    cmd = [cc, *CFLAGS, "-I", str(workdir), "-I", str(KERNELS_DIR), *sources, "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"host compile failed: {proc.stderr.strip()[:2000]}")
    return exe


def run_host(exe: Path, inputs: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
    """Run ``inputs`` (N, ...: the device's input buffers, tinyq.graph.Graph.pack_inputs) through the host
    build; return its output buffers as int8, (N, *output_shape)."""
    data = np.ascontiguousarray(inputs).tobytes()
    try:
        proc = subprocess.run([str(exe), str(len(inputs))], input=data, capture_output=True, timeout=HOST_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"the host build of the model did not finish {len(inputs)} inputs in {HOST_TIMEOUT_S} s",
                         hint="please report this with the model attached") from e
    if proc.returncode == 4:
        raise BuildError("tq_model_run_with_arena (on a caller's arena) gave other outputs than tq_model_run",
                         hint="please report this with the model attached")
    if proc.returncode != 0:
        raise BuildError(f"host model exited with {proc.returncode}")
    out = np.frombuffer(proc.stdout, dtype=np.int8)
    return out.reshape((len(inputs), *output_shape))


def run_generated(files: dict[str, str], inputs: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
    """Compile ``files`` in a temporary folder and run ``inputs`` through them."""
    with tempfile.TemporaryDirectory(prefix="tinyq-host-") as tmp:
        return run_host(compile_host(files, Path(tmp)), inputs, output_shape)
