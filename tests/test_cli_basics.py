"""The CLI shell: version, fast help, error printing."""

import os
import subprocess
import sys

from click.testing import CliRunner

from tinyq import __version__
from tinyq.cli import cli

SUBCOMMANDS = ["boards", "quantize", "inspect", "build", "flash"]


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_all_subcommands_exist():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in result.output


def test_help_does_not_import_tensorflow():
    # Every subcommand's --help, in a fresh interpreter: TensorFlow must stay unloaded.
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tinyq.cli import cli\n"
        f"for sub in {SUBCOMMANDS!r}:\n"
        "    r = CliRunner().invoke(cli, [sub, '--help'])\n"
        "    assert r.exit_code == 0, (sub, r.output)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tflite_micro', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_board_is_one_line_error_exit_2():
    result = CliRunner().invoke(cli, ["build", "examples/digits/model.keras", "--board", "uno",
                                      "--calib", "examples/digits/calib.npy"])
    assert _one_line_error(result).startswith("error: unknown board 'uno'")


def _one_line_error(result, exit_code=2):
    assert result.exit_code == exit_code, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "(hint: " in lines[0]
    return lines[0]


def test_nonexistent_model_path(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "missing.keras"), "--board", "nano33",
                                 "--calib", "examples/digits/calib.npy", "-o", str(out)])
    assert "missing.keras: no such file" in _one_line_error(r)
    assert not out.exists()


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["build", str(bad), "--board", "nano33", "--calib", "examples/digits/calib.npy",
                                 "-o", str(out)])
    assert "not a model file" in _one_line_error(r)
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_corrupt_tflite_file(tmp_path):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 40)
    assert "corrupt TFLite flatbuffer" in _one_line_error(CliRunner().invoke(cli, ["inspect", str(bad)]))


def test_wrong_calibration_shape_in_build(tmp_path):
    import numpy as np

    calib = tmp_path / "c.npy"
    np.save(calib, np.zeros((20, 28, 28), np.float32))
    r = CliRunner().invoke(cli, ["build", "examples/digits/model.keras", "--board", "nano33", "--calib", str(calib),
                                 "-o", str(tmp_path / "out")])
    line = _one_line_error(r)
    assert "(28, 28)" in line and "(8, 8, 1)" in line
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_host_only_mode(tmp_path):
    r = CliRunner().invoke(cli, ["build", "examples/digits/model.keras", "--board", "nano33",
                                 "--calib", "examples/digits/calib.npy", "--mode", "float16", "-o", str(tmp_path / "o")])
    assert "does not run on a microcontroller" in _one_line_error(r)


def test_traceback_only_with_verbose(tmp_path):
    args = ["inspect", str(tmp_path / "none.tflite")]
    quiet = CliRunner().invoke(cli, args)
    assert "Traceback" not in quiet.output
    loud = CliRunner().invoke(cli, ["-v", *args])
    assert loud.exit_code == 2 and "Traceback" in loud.output


def test_flash_without_a_build(tmp_path):
    r = CliRunner().invoke(cli, ["flash", "--build", str(tmp_path), "--emulator", "qemu"])
    assert "not a tinyq build folder" in _one_line_error(r)


def test_a_bug_is_one_line_too_and_the_traceback_needs_v(monkeypatch):
    import tinyq.boards

    def broken(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(tinyq.boards, "load_boards", broken)
    r = CliRunner().invoke(cli, ["boards"])
    assert r.exit_code == 3
    assert r.output.strip() == "error: internal error KeyError: 'boom' (hint: this is a bug in tinyq: run again with -v and report the traceback)"
    loud = CliRunner().invoke(cli, ["-v", "boards"])
    assert loud.exit_code == 3 and "Traceback" in loud.output


def test_a_closed_pipe_is_a_quiet_end():
    """`tinyq inspect m.tflite | head` (issue #25 case 8): the reader has gone before tinyq writes; tinyq ends
    with status 0 and no word, not an internal error."""
    from pathlib import Path

    model = Path(__file__).parent / "data" / "tiny_int8.tflite"
    for args in (["inspect", str(model)], ["inspect", str(model), "--json"], ["boards"]):
        r, w = os.pipe()
        os.close(r)  # nobody will ever read: every write tinyq makes meets a closed pipe
        proc = subprocess.run([sys.executable, "-m", "tinyq", *args], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        os.close(w)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr == "", (args, proc.stderr)


def test_one_mac_count_for_a_model():
    """Issue #25 case 10: inspect, build.json and the generated C state the same MACs (conv, depthwise and FC
    multiply-accumulates; pools, adds and softmax count none), for a model with constant channels too."""
    import json
    import re
    from pathlib import Path

    from conftest import MLPERF
    from tinyq.compile.analyze import analyze
    from tinyq.compile.emit.model import emit_model
    from tinyq.graph import load_tflite
    from tinyq.compile.plan import plan_model

    models = [Path(__file__).parent / "data" / "tiny_int8.tflite",
              *(MLPERF / f for f in ("kws_ref_model.tflite", "vww_96_int8.tflite") if (MLPERF / f).is_file())]
    for path in models:
        g = load_tflite(path)
        inspected = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--json"]).output)["macs"]
        plan = plan_model(g)
        files = emit_model(plan, path.read_bytes(), source=path.name)
        header = int(re.search(r"#define TQ_MODEL_MACS\s+(\d+)u", files["tq_model.h"]).group(1))
        comment = int(re.search(r"ops, (\d+) MACs", files["tq_model.c"]).group(1))
        assert inspected == analyze(g).macs == plan.model_macs == header == comment, path.name
        assert plan.macs <= plan.model_macs  # what runs, less the constant channels that left


def test_build_says_what_it_wrote_and_what_each_file_is_for(tmp_path):
    """#29 item 4: the closing summary lists every output of the build folder that exists, each with its use."""
    from pathlib import Path

    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["build", str(Path(__file__).parent / "data" / "tiny_int8.tflite"), "--board",
                                 "nano33", "-o", str(out)])
    assert r.exit_code == 0, r.output
    listed = r.stdout.split(f"wrote in {out}:\n", 1)[1].splitlines()
    names = [l.split()[0] for l in listed]
    assert names == ["qemu/firmware.elf", "board/firmware.elf", "arduino/tinyq_tiny_int8.zip",
                     "examples/classify_qemu/firmware.elf", "tflm/", "model_int8.tflite", "build.json", "memory.png",
                     "verify.npz"]
    assert all((out / n.rstrip("/")).exists() for n in names)
    assert "Add .ZIP Library" in listed[2] and "library.json" in listed[2] and "CMakeLists.txt" in listed[2]
