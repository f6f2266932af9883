"""Shared fixtures: int8 models made by real TensorFlow conversions, cached on disk.

Converting a model takes seconds; the cache (``.cache/tinyq-tests`` or
``$TINYQ_TEST_CACHE``) is keyed by the model builder's source, the calibration data
and the TensorFlow version, so a changed model is always reconverted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for `benchmarks.models`

DIGITS = ROOT / "examples" / "digits"
CACHE = Path(os.environ.get("TINYQ_TEST_CACHE", ROOT / ".cache" / "tinyq-tests"))


def _tf_version() -> str:
    from importlib.metadata import version

    return version("tensorflow-cpu")


@functools.lru_cache(maxsize=1)
def _converter_source() -> str:
    """A hash of tinyq's conversion code: a cached .tflite made by older code is not reused (a stale cache
    once hid a change of input names that a clean CI checkout then saw)."""
    h = hashlib.sha256()
    for f in sorted((Path(__file__).parents[1] / "tinyq" / "model").glob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on the file ``path``: of the test processes (pytest-xdist's workers) that want one
    shared thing made, one makes it and the others wait, then find it made."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder all workers of this test run share (under plain pytest, the session's own)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


def cached_tflite(key_parts: list, make) -> bytes:
    """Return the bytes ``make()`` produces, cached under a hash of ``key_parts`` (made once, whichever
    worker asks first)."""
    h = hashlib.sha256(repr([_tf_version(), _converter_source(), *key_parts]).encode()).hexdigest()[:16]
    path = CACHE / f"{h}.tflite"
    if path.is_file():
        return path.read_bytes()
    with locked(CACHE / f"{h}.lock"):
        if path.is_file():
            return path.read_bytes()
        data = make()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return data


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory):
    """The digits example built for nano33 from its Keras model, through the CLI: (folder, build.json).

    A Keras build keeps the float model too (for `flash --eval`)."""
    import json

    from click.testing import CliRunner

    from tinyq.cli import cli

    root = shared_dir(tmp_path_factory, "digits-build")
    out, report = root / "digits", root / "report.json"
    with locked(root.with_suffix(".lock")):  # one build for every worker of the run
        if not report.is_file():
            r = CliRunner().invoke(cli, ["build", str(DIGITS / "model.keras"), "--board", "nano33", "--calib",
                                         str(DIGITS / "calib.npy"), "--eval", str(DIGITS / "test.npz"), "-o", str(out),
                                         "--json"])
            assert r.exit_code == 0, r.output
            report.write_text(r.stdout)
    return out, json.loads(report.read_text())


@pytest.fixture(scope="session")
def digits_tflite() -> bytes:
    """The bundled digits example, quantized to full int8."""
    from tinyq.model.quantize import quantize_keras

    model, calib = DIGITS / "model.keras", DIGITS / "calib.npy"
    key = [hashlib.sha256(model.read_bytes()).hexdigest(), hashlib.sha256(calib.read_bytes()).hexdigest()]
    return cached_tflite(key, lambda: quantize_keras(model, np.load(calib)))


def zoo_tflite(name: str) -> bytes:
    """An MLPerf Tiny architecture from benchmarks/models.py, quantized to full int8."""
    from benchmarks import models
    from tinyq.model.quantize import quantize_keras

    key = [name, inspect.getsource(models)]

    def make():
        m = models.build(name)
        return quantize_keras(m, models.calibration_data(m))

    return cached_tflite(key, make)


@pytest.fixture(scope="session")
def zoo():
    """A function name -> int8 .tflite bytes for the MLPerf Tiny architectures."""
    return zoo_tflite


MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"


@pytest.fixture(params=["qemu", pytest.param("renode", marks=pytest.mark.renode)])
def dut(request) -> str:
    """The device under test (Zephyr twister's `dut`): each emulator this machine has, by the name
    users give to `tinyq flash --emulator`; the others skip, saying why."""
    from tinyq.device.devices import device_class

    why = device_class(request.param).unavailable()
    if why:
        pytest.skip(f"{request.param}: {why}")
    return request.param
