"""The Arduino library a nano33 build exports: its layout, and a compile check of every source.

A compile check, said as such: the sources and the example sketch are compiled for the
Cortex-M4 (arm-none-eabi-gcc/g++, -Wall -Wextra -Werror) against a minimal Arduino API
header kept in tests/data/arduino; nothing is linked against a real Arduino core, and
nothing has run on a board.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyq.cli import cli
from tinyq.resources import FIRMWARE_DIR

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("test_arduino")

STUB = Path(__file__).parent / "data" / "arduino"
needs_cross = pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="arm-none-eabi-g++ not installed")
ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def library(digits_tflite, tmp_path_factory):
    d = tmp_path_factory.mktemp("ard")
    (d / "digits.tflite").write_bytes(digits_tflite)
    r = CliRunner().invoke(cli, ["build", str(d / "digits.tflite"), "--board", "nano33", "-o", str(d / "b"), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    return d / "b" / report["arduino_library"], report


def test_every_nano33_build_exports_an_arduino_library(library):
    zpath, report = library
    assert zpath.name == "tinyq_digits.zip"
    names = zipfile.ZipFile(zpath).namelist()
    root = "tinyq_digits/"
    assert {root + "library.properties", root + "src/tinyq_digits.h", root + "examples/tinyq_run/tinyq_run.ino",
            root + "src/tq_model.c", root + "src/tq_protocol.c", root + "src/tq_m4.S"} <= set(names)
    props = dict(l.split("=", 1) for l in zipfile.ZipFile(zpath).read(root + "library.properties").decode().splitlines())
    assert props["name"] == "tinyq_digits" and "mbed_nano" in props["architectures"]
    assert report["model_id"] in props["paragraph"]


def test_the_protocol_is_the_firmwares_own_source(library):
    """One place for each protocol word: the sketch runs tq_protocol.c, byte for byte the firmware's."""
    z = zipfile.ZipFile(library[0])
    for name in ("tq_protocol.c", "tq_protocol.h", "tq_port.h"):
        assert z.read(f"tinyq_digits/src/{name}") == (FIRMWARE_DIR / "runtime" / name).read_bytes()


def test_the_zip_is_deterministic(library, tmp_path):
    zpath, _ = library
    from tinyq.compile.firmware import write_zip

    z = zipfile.ZipFile(zpath)
    again = tmp_path / "again.zip"
    write_zip({n: z.read(n) for n in z.namelist()}, again)
    assert again.read_bytes() == zpath.read_bytes()


@needs_cross
def test_library_and_sketch_compile_for_the_cortex_m4(library, tmp_path):
    zipfile.ZipFile(library[0]).extractall(tmp_path)
    lib = tmp_path / "tinyq_digits"
    src = lib / "src"
    objs = []
    for f in sorted(src.iterdir()):
        out = tmp_path / f"{f.name}.o"
        if f.suffix in (".c", ".S"):
            cmd = ["arm-none-eabi-gcc", *ARM, "-std=gnu11", "-I", str(src), "-c", str(f), "-o", str(out)]
        elif f.suffix == ".cpp":
            cmd = ["arm-none-eabi-g++", *ARM, "-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-I", str(STUB),
                   "-I", str(src), "-c", str(f), "-o", str(out)]
        else:
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{f.name}: {proc.stderr}"
        objs.append(out)
    # The Arduino builder compiles a sketch as C++ with Arduino.h included first.
    ino = lib / "examples" / "tinyq_run" / "tinyq_run.ino"
    sketch = tmp_path / "tinyq_run.ino.cpp"
    sketch.write_text("#include <Arduino.h>\n" + ino.read_text())
    proc = subprocess.run(["arm-none-eabi-g++", *ARM, "-std=gnu++17", "-I", str(STUB), "-I", str(src), "-c",
                           str(sketch), "-o", str(tmp_path / "sketch.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(objs) >= 8
