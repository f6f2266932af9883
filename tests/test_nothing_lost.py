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
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS
from tinyq.cli import cli

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("test_nothing_lost")

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


def _runs_the_built_model(p: Path) -> str:
    # The id is the hash of the converted .tflite, whose tensor names follow the converter's version:
    # read it from the build rather than pinning one converter's bytes.
    real = json.loads((p / "old_build" / "build.json").read_text())["model_id"]
    return f"the device runs model {real}, but b3 holds model 0123456789ab"


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


def _hostile(p: Path, name: str, **edit) -> str:
    """A well-formed copy of the project's .tflite with one hostile value (tests/hostile.py)."""
    from hostile import hostile, set_input_shape

    data = (p / "model.tflite").read_bytes()
    shape = edit.pop("input_shape", None)
    (p / name).write_bytes(set_input_shape(data, shape) if shape is not None else hostile(data, **edit))
    return name


def _recoded(p: Path, name: str, fn) -> str:
    """The project's .tflite passed through one of tests/hostile.py's edits."""
    import hostile

    (p / name).write_bytes(fn(hostile, (p / "model.tflite").read_bytes()))
    return name


def _board_1gb_flash(p: Path) -> str:
    shutil.copy(Path(__file__).parent / "data" / "boards_invalid" / "flash_over_ram.toml", p / "flash_over_ram.toml")
    return "flash_over_ram.toml"


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
    "flash an ELF of another model": (lambda p: ["flash", "--build", _edit_build(p, "b3", _other_model_id), "--emulator", "qemu", "--runs", "1"], 2, _runs_the_built_model),
    "flash an ELF QEMU cannot start": (lambda p: ["flash", "--build", _edit_build(p, "b4", _garbage_elf), "--emulator", "qemu"], 2, "QEMU exited at start"),
    "flash with no board plugged in": (["flash", "--build", "old_build"], 2, "no Arduino Nano 33 BLE found on USB (looked for 2341:805a"),
    "an unknown command": (["frobnicate"], 2, "No such command 'frobnicate'"),
    # second round (issue #25): hostile shapes and values, impossible boards, long names, options before TensorFlow
    "build a model whose input has a zero-size dimension": (lambda p: B + [_hostile(p, "zero.tflite", input_shape=[1, 0, 8, 1]), *BOARD, "-o", "out"], 2, "[1, 0, 8, 1]: no elements"),
    "build a model that declares an 8 TiB input": (lambda p: B + [_hostile(p, "huge.tflite", input_shape=[1, 2**20, 2**20, 1]), *BOARD, "-o", "out"], 2, "more than TFLite or any microcontroller can address"),
    "build a model whose input is larger than the board's RAM": (lambda p: B + [_hostile(p, "big.tflite", input_shape=[1, 2000, 2000, 1]), *BOARD, "-o", "out"], 2, "needs 4,000,000 B of RAM alone; nano33 has 262,144 B"),
    "build a model with a negative dimension": (lambda p: B + [_hostile(p, "neg.tflite", input_shape=[1, -1, 8, 1]), *BOARD, "-o", "out"], 2, "a negative dimension"),
    "build a model with a NaN scale": (lambda p: B + [_hostile(p, "nan.tflite", kind="scale", pick=0, value=float("nan")), *BOARD, "-o", "out"], 2, "quantization scale nan"),
    "build a model with a zero point out of range": (lambda p: B + [_hostile(p, "zp.tflite", kind="zero_point", pick=0, value=1000), *BOARD, "-o", "out"], 2, "zero point 1000 is outside what"),
    "build a model with a weight buffer cut short": (lambda p: B + [_hostile(p, "short.tflite", kind="short_buffer", pick=0, value=1), *BOARD, "-o", "out"], 2, "its buffer holds"),
    "build -o a 300-character name": (B + ["model.tflite", *BOARD, "-o", "x" * 300], 2, "a name of 300 bytes; the file system takes 255"),
    "build a 300-character model name": (B + ["m" * 300 + ".tflite", *BOARD, "-o", "out"], 2, "a name of 307 bytes"),
    "build for a board file with 1 GB of flash": (lambda p: B + ["model.tflite", "--board", _board_1gb_flash(p), "-o", "out"], 2, "runs outside the Cortex-M Code region"),
    "build --qat --seed 4294967296": (B + ["model.keras", *BOARD, *CALIB, "--qat", "--seed", str(2**32), "--train", "test.npz", "-o", "out"], 2, "--seed 4294967296: the seed must be between 0 and 4,294,967,295"),
    "build --prune 0.5 --seed -1": (B + ["model.keras", *BOARD, *CALIB, "--prune", "0.5", "--seed", "-1", "--train", "test.npz", "-o", "out"], 2, "--seed -1"),
    "inspect --plot into a folder that does not exist": (["inspect", "model.tflite", "--plot", "newdir/"], 2, "newdir/: the folder newdir does not exist"),
    # refusals name the real blocker (#28): the ops first, a custom op with where it comes from, int16 as int16
    "build a Vela (Ethos-U) model": (lambda p: B + [_recoded(p, "vela.tflite", lambda h, b: h.with_opcode(b, 32, "ethos-u")), *BOARD, "-o", "out"], 2, "CUSTOM:ethos-u (an Ethos-U NPU command stream"),
    "build a model with fused LSTMs that lack their operands": (lambda p: B + [_recoded(p, "lstm.tflite", lambda h, b: h.with_opcode(b, 44)), *BOARD, "-o", "out"], 2, "UNIDIRECTIONAL_SEQUENCE_LSTM: 3 inputs and 1 outputs, where TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM has 15-24"),
    "build an untrained model whose softmax gets tiny inputs": (lambda p: B + [_recoded(p, "tiny_logits.tflite", lambda h, b: h.with_softmax_input_scale(b, 1e-9)), *BOARD, "-o", "out"], 2, "is too small for an int8 softmax"),
    "build a model with int16 input": (lambda p: B + [_recoded(p, "i16.tflite", lambda h, b: h.with_input_type(b, 7)), *BOARD, "-o", "out"], 2, "int16 input/output"),
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
    needle = needle(project) if callable(needle) else needle
    assert needle in lines[0], lines[0]
    assert snapshot(project) == before
    assert not [p for p in project.parent.iterdir() if p.name.startswith(".")], "a staging folder was left"


def test_corpus_size():
    # The README quotes this figure ("What tinyq guarantees").
    assert len(CORPUS) >= 67


def _as_unprivileged(fn) -> int:
    """Run ``fn()`` in a forked child as user nobody when we are root (root ignores folder permissions, so a
    read-only folder is only read-only to somebody else); return its exit status (0: fn returned)."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fn()
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported through the exit status
            print(f"child: {type(e).__name__}: {e}", flush=True)
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_rebuild_over_a_read_only_build_leaves_nothing_behind():
    """Issue #25 case 5: a build whose arduino/ folder was made read-only is replaced whole, and no hidden
    `.NAME-XXXX-old` folder stays behind."""
    import tempfile

    from tinyq.infra.staging import staged_dir

    root = Path(tempfile.mkdtemp(prefix="tinyq-ro-", dir="/tmp"))
    os.chmod(root, 0o777)

    def rebuild():
        old = root / "build"
        (old / "arduino").mkdir(parents=True)
        (old / "build.json").write_text('{"tinyq": "0"}')
        (old / "arduino" / "lib.zip").write_bytes(b"zip")
        os.chmod(old / "arduino", 0o555)
        with staged_dir(old) as tmp:
            (tmp / "build.json").write_text('{"tinyq": "1"}')

    try:
        assert _as_unprivileged(rebuild) == 0
        assert sorted(p.name for p in root.iterdir()) == ["build"]
        assert json.loads((root / "build" / "build.json").read_text()) == {"tinyq": "1"}
    finally:
        shutil.rmtree(root)


def test_a_build_holding_a_folder_of_somebody_else_is_refused_before_any_work():
    """The other half of case 5: a read-only folder we may not make writable (another user's) would stop the
    old build's removal half-way, so such a build folder is refused up front, in one line."""
    import tempfile

    from tinyq.errors import OutputPathError
    from tinyq.infra.outputs import check_build_dir

    root = Path(tempfile.mkdtemp(prefix="tinyq-ro-", dir="/tmp"))
    old = root / "build"
    (old / "arduino").mkdir(parents=True)
    (old / "build.json").write_text('{"tinyq": "0"}')
    os.chmod(root, 0o777)
    os.chmod(old, 0o777)
    if os.geteuid() == 0:
        os.chown(old / "arduino", 12345, 12345)  # somebody else's
    os.chmod(old / "arduino", 0o555)

    def check():
        try:
            check_build_dir(old)
        except OutputPathError as e:
            assert "arduino, a folder that is not yours and not writable" in e.message, e.message
            return
        raise AssertionError("not refused")

    try:
        if os.geteuid() != 0 and (old / "arduino").stat().st_uid == os.geteuid():
            pytest.skip("needs root (to give the folder to another user) or a folder of another user")
        assert _as_unprivileged(check) == 0
        assert (old / "build.json").is_file()
    finally:
        os.chmod(old / "arduino", 0o755)
        shutil.rmtree(root)
