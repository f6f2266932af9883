"""The bad-input corpus: every mistake a user made in the trials, through the real CLI.

Each case runs in a project folder holding the user's files (model, data, notes, an
earlier build) and asserts the exit code, the one-line ``error: … (hint: …)`` message and
that not one file of the project changed: nothing lost, nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS
from tinyq.cli import cli

needs_toolchain = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed",
)


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: kind, content hash or link target, and mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", p.stat().st_mode)
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
    return out


@pytest.fixture(scope="module")
def int8_tflite(digits_tflite, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("m") / "digits_int8.tflite"
    p.write_bytes(digits_tflite)
    return p


@pytest.fixture(scope="module")
def built(int8_tflite, tmp_path_factory) -> Path:
    """A real build folder (from the int8 .tflite: no TensorFlow needed)."""
    out = tmp_path_factory.mktemp("b") / "build"
    r = CliRunner().invoke(cli, ["build", str(int8_tflite), "--board", "nano33", "--calib",
                                 str(DIGITS / "calib.npy"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def project(tmp_path, monkeypatch, int8_tflite, built):
    """A user's project folder, the current folder of the command."""
    p = tmp_path / "project"
    p.mkdir()
    shutil.copy(DIGITS / "model.keras", p / "model.keras")
    shutil.copy(DIGITS / "calib.npy", p / "calib.npy")
    shutil.copy(DIGITS / "test.npz", p / "test.npz")
    shutil.copy(int8_tflite, p / "model.tflite")
    (p / "notes.txt").write_text("my notes\n")
    (p / "docs").mkdir()
    (p / "docs" / "readme.md").write_text("keep me\n")
    (p / "sub").mkdir()
    shutil.copy(DIGITS / "model.keras", p / "sub" / "model.keras")
    os.symlink(p / "docs", p / "link")
    shutil.copytree(built, p / "old_build")
    monkeypatch.chdir(p)
    return p


def _edit_build(p: Path, name: str, edit) -> str:
    b = p / name
    shutil.copytree(p / "old_build", b)
    edit(b)
    return name


def _drop_keys(b: Path) -> None:
    m = json.loads((b / "build.json").read_text())
    del m["model_id"], m["firmware"]
    (b / "build.json").write_text(json.dumps(m))


def _other_model_id(b: Path) -> None:
    m = json.loads((b / "build.json").read_text())
    m["model_id"] = "0123456789ab"
    (b / "build.json").write_text(json.dumps(m))


def _garbage_elf(b: Path) -> None:
    (b / "qemu" / "firmware.elf").write_bytes(b"\x7fELF" + b"\x00" * 60)


def _bad_npz(p: Path) -> str:
    np.savez(p / "two.npz", a=np.zeros((4, 8, 8, 1)), b=np.zeros(4))
    return "two.npz"


def _string_labels(p: Path) -> str:
    np.savez(p / "s.npz", x=np.zeros((4, 8, 8, 1), np.float32), y=np.array(["cat", "dog", "cat", "dog"]))
    return "s.npz"


def _labels_past_classes(p: Path) -> str:
    np.savez(p / "l.npz", x=np.zeros((4, 8, 8, 1), np.float32), y=np.array([0, 3, 12, 1]))
    return "l.npz"


def _tiny_stack_board(p: Path) -> str:
    shutil.copy(Path(__file__).parent / "data" / "boards_invalid" / "tiny_stack.toml", p / "tiny_stack.toml")
    return "tiny_stack.toml"


def _not_savedmodel(p: Path) -> str:
    (p / "emptydir").mkdir()
    return "emptydir"


def _corrupt_tflite(p: Path) -> str:
    data = bytearray((p / "model.tflite").read_bytes())
    (p / "cut.tflite").write_bytes(bytes(data[: len(data) // 3]))
    return "cut.tflite"


B = ["build"]
BOARD = ["--board", "nano33"]
CALIB = ["--calib", "calib.npy"]

# id -> (argv or a function of the project folder giving argv, exit code, what the message says)
CORPUS = {
    # -o: only an empty folder or a tinyq build folder is ever replaced
    "build -o . (the current folder)": (B + ["model.keras", *BOARD, *CALIB, "-o", "."], 2, "is the current folder"),
    "build -o .. (a parent)": (B + ["model.keras", *BOARD, *CALIB, "-o", ".."], 2, "is the current folder or one of its parents"),
    "build -o the model's folder": (B + ["sub/model.keras", *BOARD, *CALIB, "-o", "sub"], 2, "holds the input sub/model.keras"),
    "build -o a folder of the user's": (B + ["model.keras", *BOARD, *CALIB, "-o", "docs"], 2, "neither empty nor a tinyq build folder"),
    "build -o a file": (B + ["model.keras", *BOARD, *CALIB, "-o", "notes.txt"], 2, "is a file, not a folder"),
    "build -o a symlink": (B + ["model.keras", *BOARD, *CALIB, "-o", "link"], 2, "is a symbolic link"),
    "build -o under a file": (B + ["model.keras", *BOARD, *CALIB, "-o", "notes.txt/out"], 2, "notes.txt is a file, not a folder"),
    "build -o unwritable": (B + ["model.keras", *BOARD, *CALIB, "-o", "/proc/tinyq-out"], 2, "cannot write in /proc"),
    "build -o into an int8 .tflite's folder": (B + ["model.tflite", *BOARD, "-o", "."], 2, "is the current folder"),
    # no command writes over its own inputs; output folders are checked before TensorFlow
    "quantize -o its own input": (["quantize", "model.keras", *CALIB, "-o", "model.keras"], 2, "one of this command's inputs"),
    "quantize -o its calibration data": (["quantize", "model.keras", *CALIB, "-o", "calib.npy"], 2, "one of this command's inputs"),
    "quantize -o a missing folder": (["quantize", "model.keras", *CALIB, "-o", "missing/m.tflite"], 2, "does not exist"),
    "quantize --report into a missing folder": (["quantize", "model.keras", *CALIB, "--report", "missing/r.json"], 2, "does not exist"),
    "quantize -o a folder": (["quantize", "model.keras", *CALIB, "-o", "docs"], 2, "is a folder, not a file"),
    "quantize an int8 .tflite": (["quantize", "model.tflite", *CALIB, "-o", "q.tflite"], 2, "already a .tflite"),
    "inspect --plot into a missing folder": (["inspect", "model.tflite", "--plot", "missing/h.png"], 2, "does not exist"),
    "inspect --plot a .txt": (["inspect", "model.tflite", "--plot", "h.txt"], 2, "writes .png, .pdf, .svg files"),
    "inspect --plot over its input": (["inspect", "model.tflite", "--plot", "model.tflite"], 2, "writes .png"),
    # inputs
    "build a missing model": (B + ["nope.keras", *BOARD, *CALIB, "-o", "out"], 2, "nope.keras: no such file"),
    "build a folder that is no SavedModel": (lambda p: B + [_not_savedmodel(p), *BOARD, *CALIB, "-o", "out"], 2, "not a SavedModel"),
    "build a truncated .tflite": (lambda p: B + [_corrupt_tflite(p), *BOARD, "-o", "out"], 2, "corrupt TFLite flatbuffer"),
    "build a Keras model without --calib": (B + ["model.keras", *BOARD, "-o", "out"], 2, "--calib is required"),
    "build with a model as calibration data": (B + ["model.keras", *BOARD, "--calib", "model.keras", "-o", "out"], 2, "must be .npy, .npz or a folder"),
    "build with an .npz without x": (lambda p: B + ["model.tflite", *BOARD, "--calib", _bad_npz(p), "-o", "out"], 2, "no array named 'x' among a, b"),
    "build --eval with string labels": (lambda p: B + ["model.tflite", *BOARD, "--eval", _string_labels(p), "-o", "out"], 2, "labels have dtype <U3"),
    "build --eval with labels past the classes": (lambda p: B + ["model.tflite", *BOARD, "--eval", _labels_past_classes(p), "-o", "out"], 2, "label 12 but the model has 10 classes"),
    "build with calibration of the wrong shape": (lambda p: (np.save(p / "w.npy", np.zeros((5, 28, 28), np.float32)), B + ["model.tflite", *BOARD, "--calib", "w.npy", "-o", "out"])[1], 2, "(28, 28)"),
    "build for an unknown board": (B + ["model.tflite", "--board", "uno", "-o", "out"], 2, "unknown board 'uno'"),
    "build for a board file with a 16-byte stack": (lambda p: B + ["model.tflite", "--board", _tiny_stack_board(p), "-o", "out"], 2, "memory.stack_bytes"),
    "build a missing board file": (B + ["model.tflite", "--board", "./mine.toml", "-o", "out"], 2, "mine.toml: no such board file"),
    "build --signature for a .tflite": (B + ["model.tflite", *BOARD, "--signature", "x", "-o", "out"], 2, "SavedModel folders only"),
    "build --mode float16": (B + ["model.keras", *BOARD, *CALIB, "--mode", "float16", "-o", "out"], 2, "does not run on a microcontroller"),
    # fine-tuning (QAT, pruning): every setting checked before TensorFlow starts
    "build --qat without --train": (B + ["model.keras", *BOARD, *CALIB, "--qat", "-o", "out"], 2, "QAT needs labelled training data"),
    "build --train without --qat or --prune": (B + ["model.keras", *BOARD, *CALIB, "--train", "test.npz", "-o", "out"], 2, "--train is given but neither --qat nor --prune"),
    "build --prune 1.5": (B + ["model.keras", *BOARD, *CALIB, "--prune", "1.5", "--train", "test.npz", "-o", "out"], 2, "must be between 0 and 1"),
    "build --qat --lr 5": (B + ["model.keras", *BOARD, *CALIB, "--qat", "--lr", "5", "--train", "test.npz", "-o", "out"], 2, "the learning rate must be between 0 and 1"),
    "build --qat --epochs 0": (B + ["model.keras", *BOARD, *CALIB, "--qat", "--epochs", "0", "--train", "test.npz", "-o", "out"], 2, "Invalid value for '--epochs'"),
    "build --qat with unlabelled training data": (B + ["model.keras", *BOARD, *CALIB, "--qat", "--train", "calib.npy", "-o", "out"], 2, "calib.npy: the training data has no labels"),
    "build --qat of an int8 .tflite": (B + ["model.tflite", *BOARD, "--qat", "--train", "test.npz", "-o", "out"], 2, "an int8 .tflite cannot be fine-tuned"),
    "quantize --qat -o over its training data": (["quantize", "model.keras", *CALIB, "--qat", "--train", "test.npz", "-o", "test.npz"], 2, "one of this command's inputs"),
    # flash
    "flash a folder that is no build": (["flash", "--build", "docs"], 2, "not a tinyq build folder"),
    "flash a build.json without its keys": (lambda p: ["flash", "--build", _edit_build(p, "b1", _drop_keys)], 2, "lacks model_id, firmware"),
    "flash a build without verify.npz": (lambda p: ["flash", "--build", _edit_build(p, "b2", lambda b: (b / "verify.npz").unlink())], 2, "verify.npz: missing"),
    "flash --timeout 0": (["flash", "--build", "old_build", "--timeout", "0"], 2, "Invalid value for '--timeout'"),
    "flash --timeout -5": (["flash", "--build", "old_build", "--timeout", "-5"], 2, "Invalid value for '--timeout'"),
    "flash --port and --emulator": (["flash", "--build", "old_build", "--port", "/dev/null", "--emulator", "qemu"], 2, "give --port or --emulator, not both"),
    "flash an ELF of another model": (lambda p: ["flash", "--build", _edit_build(p, "b3", _other_model_id), "--emulator", "qemu", "--runs", "1"], 2, "the device runs model f36bd8c97155, but b3 holds model 0123456789ab"),
    "flash an ELF QEMU cannot start": (lambda p: ["flash", "--build", _edit_build(p, "b4", _garbage_elf), "--emulator", "qemu"], 2, "QEMU exited at start"),
    "flash with no board plugged in": (["flash", "--build", "old_build"], 2, "no Arduino Nano 33 BLE found on USB (looked for 2341:805a"),
    "an unknown command": (["frobnicate"], 2, "No such command 'frobnicate'"),
}


@needs_toolchain
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_is_one_line_and_changes_nothing(case, project, capfd):
    argv, code, needle = CORPUS[case]
    argv = argv(project) if callable(argv) else argv
    before = snapshot(project)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args=argv, prog_name="tinyq")  # what the console script runs, in this process
    out, err = capfd.readouterr()
    assert exit_info.value.code == code, (out, err)
    lines = [l for l in (out + err).splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "(hint: " in lines[0], lines[0]
    assert needle in lines[0], lines[0]
    assert snapshot(project) == before
    assert not [p for p in project.parent.iterdir() if p.name.startswith(".")], "a staging folder was left"


def test_corpus_size():
    # The README quotes this figure ("What tinyq guarantees").
    assert len(CORPUS) >= 50
