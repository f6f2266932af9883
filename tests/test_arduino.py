"""The library a nano33 build exports: its layout, and a compile check of every source in each of its forms.

A compile check, said as such: the sources and the example sketches are compiled for the
Cortex-M4 (arm-none-eabi-gcc/g++, -Wall -Wextra -Werror) against a minimal Arduino API
header (and the IMU library's) kept in tests/data/arduino; nothing is linked against a real
Arduino core, and nothing has run on a board. The CMake form is configured and built by
CMake with arm-none-eabi-gcc, through add_subdirectory as a Zephyr application would; the
PlatformIO manifest is validated by PlatformIO's own packer (offline) and the sources it
selects compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    assert {root + "library.properties", root + "library.json", root + "CMakeLists.txt", root + "src/tinyq_digits.h",
            root + "src/tinyq_digits.cpp", root + "examples/tinyq_run/tinyq_run.ino",
            root + "examples/classify/classify.ino", root + "examples/classify/example_input.h",
            root + "src/tq_model.c", root + "src/tq_protocol.c", root + "src/tq_m4.S"} <= set(names)
    # The digits model takes an image, not an IMU window: no gesture sketch.
    assert not [n for n in names if "imu_gesture" in n]
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


def _compile_library(src: Path, tmp_path: Path, only=None) -> list[Path]:
    objs = []
    for f in sorted(src.iterdir()):
        if only is not None and f.name not in only:
            continue
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
    return objs


def _compile_sketch(ino: Path, src: Path, tmp_path: Path) -> None:
    # The Arduino builder compiles a sketch as C++ with Arduino.h included first, the sketch's folder on the path.
    sketch = tmp_path / f"{ino.stem}.ino.cpp"
    sketch.write_text("#include <Arduino.h>\n" + ino.read_text())
    proc = subprocess.run(["arm-none-eabi-g++", *ARM, "-std=gnu++17", "-I", str(STUB), "-I", str(ino.parent),
                           "-I", str(src), "-c", str(sketch), "-o", str(tmp_path / f"{ino.stem}.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{ino.name}: {proc.stderr}"


@needs_cross
def test_library_and_sketches_compile_for_the_cortex_m4(library, tmp_path):
    zipfile.ZipFile(library[0]).extractall(tmp_path)
    lib = tmp_path / "tinyq_digits"
    src = lib / "src"
    objs = _compile_library(src, tmp_path)
    for ino in sorted((lib / "examples").glob("*/*.ino")):
        _compile_sketch(ino, src, tmp_path)
    assert len(objs) >= 8


@needs_cross
def test_the_imu_gesture_sketch_compiles(library, tmp_path):
    """Rendered for a [1, 50, 6] window over the digits library's API (the sketch only calls TinyqModel, whose
    methods every single-input classifier has) and compiled against the Arduino_LSM9DS1 API."""
    from tinyq.boards import get_board
    from tinyq.compile.emit.arduino import imu_window
    from tinyq.compile.emit.model import environment

    assert imu_window([{"shape": [1, 50, 6], "enum": "TQ_TYPE_INT8"}]) == (50, 6)
    assert imu_window([{"shape": [1, 128, 3], "enum": "TQ_TYPE_FLOAT32"}]) == (128, 3)
    assert imu_window([{"shape": [1, 28, 28, 1], "enum": "TQ_TYPE_INT8"}]) is None
    zipfile.ZipFile(library[0]).extractall(tmp_path)
    src = tmp_path / "tinyq_digits" / "src"
    text = environment().get_template("arduino/imu_gesture.ino.j2").render(
        name="tinyq_digits", source="gesture.keras", model_id="0" * 12, board=get_board("nano33"), classes=10,
        window=50, channels=6)
    assert "Arduino_LSM9DS1" in text and "Arduino_BMI270_BMM150" in text and "#define TQ_IMU_REV2" in text
    ino = tmp_path / "imu_gesture" / "imu_gesture.ino"
    ino.parent.mkdir()
    ino.write_text(text)
    _compile_sketch(ino, src, tmp_path)


@needs_cross
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_the_cmake_library_builds_with_arm_gcc_through_add_subdirectory(library, tmp_path):
    """What a Zephyr / nRF Connect application does (add_subdirectory, target_link_libraries), with CMake's
    generic Cortex-M4 cross toolchain instead of Zephyr's."""
    zipfile.ZipFile(library[0]).extractall(tmp_path)
    lib = tmp_path / "tinyq_digits"
    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C ASM)\n"
        f"add_subdirectory({lib.as_posix()} lib)\n"
        "add_library(app STATIC app.c)\ntarget_link_libraries(app PRIVATE tinyq_digits)\n")
    (app / "app.c").write_text(
        '#include "tq_model.h"\n'
        "static int8_t in[TQ_MODEL_INPUT_BYTES], out[TQ_MODEL_OUTPUT_BYTES];\n"
        "TQ_MODEL_ARENA_DECLARE(arena);\n"
        "int app_classify(void) {\n"
        "    return tq_model_run_with_arena(arena, in, out) == TQ_MODEL_OK ? (int)tq_model_argmax(out) : -1;\n}\n")
    flags = "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Wall -Wextra -Werror"
    build = tmp_path / "build"
    cfg = subprocess.run(["cmake", "-S", str(app), "-B", str(build), "-DCMAKE_SYSTEM_NAME=Generic",
                          "-DCMAKE_C_COMPILER=arm-none-eabi-gcc", "-DCMAKE_ASM_COMPILER=arm-none-eabi-gcc",
                          "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY", f"-DCMAKE_C_FLAGS={flags}",
                          f"-DCMAKE_ASM_FLAGS={flags}"], capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    proc = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    archive = build / "lib" / "libtinyq_digits.a"
    symbols = subprocess.run(["arm-none-eabi-nm", "-g", str(archive)], capture_output=True, text=True, check=True).stdout
    for name in ("tq_model_run", "tq_model_run_with_arena", "tq_model_quantize_input", "tq_model_top_k",
                 "tq_conv2d_s8"):
        assert f" T {name}\n" in symbols, name
    assert "tinyq_run" not in symbols and "tq_protocol_main" not in symbols  # the Arduino-only files left out
    assert (build / "libapp.a").is_file()


@needs_cross
@pytest.mark.skipif(shutil.which("pio") is None and not (Path(sys.executable).parent / "pio").is_file(),
                    reason="PlatformIO not installed")
def test_the_platformio_manifest_is_valid_and_its_sources_compile(library, tmp_path):
    zipfile.ZipFile(library[0]).extractall(tmp_path)
    lib = tmp_path / "tinyq_digits"
    pio = shutil.which("pio") or str(Path(sys.executable).parent / "pio")
    # PlatformIO's packer validates library.json against its manifest schema, offline.
    proc = subprocess.run([pio, "pkg", "pack", str(lib), "-o", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PLATFORMIO_CORE_DIR": str(tmp_path / "pio-core")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "tinyq_digits-0.1.0.tar.gz").is_file() or list(tmp_path.glob("tinyq_digits-*.tar.gz"))
    manifest = json.loads((lib / "library.json").read_text())
    props = dict(l.split("=", 1) for l in (lib / "library.properties").read_text().splitlines())
    assert manifest["name"] == props["name"] == "tinyq_digits" and manifest["version"] == props["version"]
    assert manifest["build"] == {"srcDir": "src", "includeDir": "src"} and manifest["platforms"] == ["nordicnrf52"]
    for ex in manifest["examples"]:
        assert all((lib / ex["base"] / f).is_file() for f in ex["files"])
    assert {ex["name"] for ex in manifest["examples"]} == {"classify", "tinyq_run"}
    # PlatformIO builds every source of srcDir with the framework's include path.
    assert len(_compile_library(lib / manifest["build"]["srcDir"], tmp_path)) >= 8
