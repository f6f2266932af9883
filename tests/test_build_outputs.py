"""What a build says and leaves: warnings, board files of the user's own, odd file names,
folder permissions, and what `inspect` shows of models tinyq cannot run."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS, cached_tflite
from tinyq.boards import BOARDS_DIR
from tinyq.cli import cli

needs_toolchain = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed",
)


def test_warnings_for_few_raw_samples_and_an_int8_collapse(tmp_path):
    """Raw 0..255 calibration data for a model trained on 0..1: every warning on the terminal and in build.json."""
    raw = tmp_path / "raw.npy"
    np.save(raw, np.round(np.load(DIGITS / "calib.npy") * 255))
    r = CliRunner().invoke(cli, ["build", str(DIGITS / "model.keras"), "--board", "nano33", "--calib", str(raw),
                                 "--eval", str(DIGITS / "test.npz"), "--max-samples", "30", "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    warnings = [l for l in r.output.splitlines() if l.startswith("warning: ")]
    saved = json.loads((tmp_path / "b" / "build.json").read_text())["warnings"]
    assert [w.removeprefix("warning: ") for w in warnings] == saved
    assert any("only 30 calibration samples" in w for w in saved)
    assert any("raw 8-bit values (0..255)" in w for w in saved)
    drop = [w for w in saved if "points below float" in w]
    assert drop and "worst layers: " in drop[0]


@needs_toolchain
def test_a_board_file_of_the_users_own_builds_and_flashes(digits_tflite, tmp_path):
    text = (BOARDS_DIR / "nano33.toml").read_text().replace('id = "nano33"', 'id = "myboard"')
    (tmp_path / "myboard.toml").write_text(text)
    (tmp_path / "m.tflite").write_bytes(digits_tflite)
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "m.tflite"), "--board", str(tmp_path / "myboard.toml"),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    (tmp_path / "myboard.toml").unlink()  # the build folder carries its board
    r = CliRunner().invoke(cli, ["flash", "--build", str(out), "--emulator", "qemu", "--json", "--runs", "1"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["board"] == "myboard" and m["outputs_match"]


@needs_toolchain
def test_odd_model_file_names_stay_inside_comments(digits_tflite, tmp_path):
    name = "we\nird \\ name*.tflite"  # a newline ends a // comment, a backslash continues it
    (tmp_path / name).write_bytes(digits_tflite)
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["build", str(tmp_path / name), "--board", "nano33", "-o", str(out)])
    assert r.exit_code == 0, r.output
    for f in [out / "qemu" / "src" / "tq_model.c", out / "qemu" / "src" / "tq_model.h",
              out / "tflm" / "src" / "model_data.cc", out / "tflm" / "src" / "model_data.h"]:
        first = f.read_text().splitlines()[0]
        assert "we?ird ? name*.tflite" in first, first


@needs_toolchain
def test_build_folder_has_ordinary_permissions(digits_tflite, tmp_path):
    (tmp_path / "m.tflite").write_bytes(digits_tflite)
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(cli, ["build", str(tmp_path / "m.tflite"), "--board", "nano33", "-o", str(tmp_path / "b")])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "b" / "build.json").stat().st_mode) == 0o644


@needs_toolchain
def test_a_build_replaces_its_own_earlier_build(digits_tflite, tmp_path):
    (tmp_path / "m.tflite").write_bytes(digits_tflite)
    args = ["build", str(tmp_path / "m.tflite"), "--board", "nano33", "-o", str(tmp_path / "b")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (tmp_path / "b" / "stale.txt").write_text("from the old build")
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "b" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "m.tflite"]


def _host_tflite(mode: str) -> bytes:
    """The digits model converted in a host-only mode (float, dynamic-range, float16)."""
    from tinyq.model import quantize
    def make():
        src = quantize._load_source(DIGITS / "model.keras")
        calib = np.load(DIGITS / "calib.npy")[:50]
        return quantize._convert(src, calib if mode != "float" else None, mode)

    return cached_tflite(["host-mode", mode, (DIGITS / "model.keras").read_bytes()], make)


@pytest.mark.parametrize("mode, kind", [("float", "float"), ("dynamic", "hybrid"), ("float16", "float16")])
def test_inspect_counts_macs_of_models_tinyq_cannot_run(mode, kind, tmp_path):
    p = tmp_path / f"{mode}.tflite"
    p.write_bytes(_host_tflite(mode))
    r = CliRunner().invoke(cli, ["inspect", str(p), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["kind"] == kind and not d["compatible"]
    assert d["macs"] == 774_784  # the same model's MACs as its int8 build


@pytest.mark.parametrize("mode, words", [("float", "a float model"), ("dynamic", "dynamic-range (hybrid)"),
                                         ("float16", "a float16 model")])
def test_build_refuses_a_tflite_that_cannot_be_recalibrated(mode, words, tmp_path):
    p = tmp_path / f"{mode}.tflite"
    p.write_bytes(_host_tflite(mode))
    r = CliRunner().invoke(cli, ["build", str(p), "--board", "nano33", "-o", str(tmp_path / "b")])
    assert r.exit_code == 2
    assert words in r.output and "cannot be re-calibrated: give tinyq the Keras model" in r.output
    assert not (tmp_path / "b").exists()


def test_unsupported_ops_are_listed_once(tmp_path):
    p = tmp_path / "float.tflite"
    p.write_bytes(_host_tflite("float"))
    from tinyq.compile.analyze import analyze
    from tinyq.errors import UnsupportedModelError
    from tinyq.graph import load_tflite

    with pytest.raises(UnsupportedModelError) as e:
        analyze(load_tflite(p))
    text = f"{e.value.message} {e.value.hint}"
    assert text.count("supported: ") <= 1


def test_inspect_plot_into_a_folder_names_the_file_it_wrote(digits_tflite, tmp_path):
    (tmp_path / "m.tflite").write_bytes(digits_tflite)
    (tmp_path / "plots").mkdir()
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.tflite"), "--plot", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    png = tmp_path / "plots" / "m_weights.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {png}" in r.output
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.tflite"), "--plot", str(tmp_path / "hist")])
    assert (tmp_path / "hist.png").is_file() and f"wrote {tmp_path / 'hist.png'}" in r.output


def test_text_from_model_files_cannot_end_a_comment():
    from tinyq.compile.emit.model import c_comment

    # Tensor names of a third-party .tflite go into comments too: "*/" would end one.
    assert c_comment("conv*/evil/*x\\\nname\u00e9") == "conv*?evil?*x??name?"


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KB file system (tmpfs), where mounting is allowed (root on Linux)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@needs_toolchain
def test_a_full_disk_is_one_line_and_leaves_nothing(digits_tflite, tmp_path, small_disk):
    (tmp_path / "m.tflite").write_bytes(digits_tflite)
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "m.tflite"), "--board", "nano33", "-o", str(small_disk / "out")])
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {small_disk / 'out'}") and "No space left on device" in r.output, r.output
    assert list(small_disk.iterdir()) == []
