"""The API the generated header gives an application (tq_model.h), tested for real: its helpers compiled with
the host's gcc (-Wall -Wextra -Werror) and run against numpy's statement of TensorFlow Lite's arithmetic, the
build's --labels / --name options, and the classify example compiled by `tinyq build` and run in QEMU against
the host reference (TFLM).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyq.boards import get_board
from tinyq.cli import cli
from tinyq.compile.emit.model import emit_model, model_name
from tinyq.compile.hostrun import KERNELS_DIR, compile_host
from tinyq.compile.plan import plan_model
from tinyq.graph import load_tflite

pytestmark = pytest.mark.xdist_group("test_app_api")

MODEL = Path(__file__).parent / "data" / "tiny_int8.tflite"   # input [1, 6, 6, 2], output [1, 5] (softmax)
LABELS = ["cat", 'say "hi"', "back\\slash", "größe", "??="]   # quotes, backslash, UTF-8, a trigraph


def _program(tmp_path: Path, main: str, labels=LABELS) -> Path:
    files = emit_model(plan_model(load_tflite(MODEL)), MODEL.read_bytes(), source=MODEL.name, labels=labels)
    work = tmp_path / "prog"
    exe = compile_host(files, work)  # the model with the build's own host main, built to prove it compiles
    (work / "host_main.c").write_text(main)
    sources = sorted(str(p) for p in work.glob("*.c")) + sorted(str(p) for p in KERNELS_DIR.glob("*.c"))
    proc = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(work), "-I",
                           str(KERNELS_DIR), *sources, "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


def _tflite_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """TensorFlow Lite's QUANTIZE (reference AffineQuantize): zp + TfLiteRound(x / scale), the division in float,
    std::round (half away from zero), saturated to int8."""
    r = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(r) * np.floor(np.abs(r) + 0.5)
    return np.clip(rounded + zp, -128, 127).astype(np.int8)


def test_quantize_and_dequantize_helpers_round_as_tflite(tmp_path):
    g = load_tflite(MODEL)
    xin, yout = g.input_tensors[0], g.output_tensors[0]
    s, z = float(xin.quant.scale[0]), int(xin.quant.zero_point[0])
    n = xin.size  # 72 floats a call
    # Every rounding boundary (k + 0.5) * scale of the int8 range and either side of it, in float32, and values
    # far outside the range (saturation).
    ties = (np.arange(-160, 160) + 0.5).astype(np.float32) * np.float32(s)
    x = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)),
                        np.float32([1e6, -1e6, 0.0, -0.0, s * 200, -s * 200]),
                        np.random.default_rng(0).normal(0, 2, 2000).astype(np.float32)]).astype(np.float32)
    x = np.concatenate([x, np.zeros(-len(x) % n, np.float32)])
    q_out = np.arange(-128, 128, dtype=np.int8)
    q_out = np.concatenate([q_out, np.zeros(-len(q_out) % yout.size, np.int8)])
    main = r"""
#include <stdio.h>
#include "tq_model.h"
int main(void) {
    float x[TQ_MODEL_INPUT_ELEMENTS], y[TQ_MODEL_OUTPUT_ELEMENTS];
    int8_t in[TQ_MODEL_INPUT_BYTES], out[TQ_MODEL_OUTPUT_BYTES];
    char side;
    while (fread(&side, 1, 1, stdin) == 1) {
        if (side == 'q') {
            if (fread(x, sizeof x, 1, stdin) != 1) return 2;
            tq_model_quantize_input(x, in);
            fwrite(in, sizeof in, 1, stdout);
        } else {
            if (fread(out, sizeof out, 1, stdin) != 1) return 2;
            tq_model_dequantize_output(out, y);
            fwrite(y, sizeof y, 1, stdout);
        }
    }
    return 0;
}
"""
    exe = _program(tmp_path, main)
    feed = b"".join(b"q" + c.tobytes() for c in x.reshape(-1, n))
    feed += b"".join(b"d" + c.tobytes() for c in q_out.reshape(-1, yout.size))
    got = subprocess.run([str(exe)], input=feed, capture_output=True, check=True).stdout
    nq = len(x)
    np.testing.assert_array_equal(np.frombuffer(got[:nq], np.int8), _tflite_quantize(x, s, z))
    ys, yz = float(yout.quant.scale[0]), int(yout.quant.zero_point[0])
    want = (ys * (q_out.astype(np.float64) - yz)).astype(np.float32)  # TFLite's DEQUANTIZE: in double, then float
    np.testing.assert_array_equal(np.frombuffer(got[nq:], np.float32), want)


def test_classifier_helpers_labels_and_info(tmp_path):
    main = r"""
#include <stdio.h>
#include <string.h>
#include "tq_model.h"
TQ_MODEL_ARENA_DECLARE(arena);
int main(void) {
    int8_t out[TQ_MODEL_OUTPUT_BYTES], in[TQ_MODEL_INPUT_BYTES] = {0};
    uint32_t cls[TQ_MODEL_NUM_CLASSES + 2];
    float sc[TQ_MODEL_NUM_CLASSES + 2];
    const tq_model_info_t *m = &tq_model_info;
    printf("info %s %s %s %u %u %u %u %u %d %s\n", m->name, m->model_id, m->tinyq_version, (unsigned)m->num_classes,
           (unsigned)m->arena_bytes, (unsigned)m->inputs[0].rank, (unsigned)m->inputs[0].shape[3],
           (unsigned)m->outputs[0].elements, (int)m->inputs[0].zero_point, m->outputs[0].name);
    for (uint32_t c = 0; c < TQ_MODEL_NUM_CLASSES; ++c) printf("label %s\n", tq_model_labels[c]);
    /* A caller's arena that is NULL or off the 16-byte boundary runs nothing. */
    printf("arena %d %d %d\n", tq_model_run_with_arena(NULL, in, out), tq_model_run_with_arena(arena + 4, in, out),
           tq_model_run_with_arena(arena, in, out));
    while (fread(out, sizeof out, 1, stdin) == 1) {
        uint32_t n = tq_model_top_k(out, TQ_MODEL_NUM_CLASSES + 2, cls, sc);
        printf("%u %u", (unsigned)tq_model_argmax(out), (unsigned)n);
        for (uint32_t i = 0; i < n; ++i) printf(" %u:%.9g", (unsigned)cls[i], (double)sc[i]);
        printf(" %.9g\n", (double)tq_model_score(out, 2));
    }
    return 0;
}
"""
    exe = _program(tmp_path, main)
    g = load_tflite(MODEL)
    y = g.output_tensors[0]
    rng = np.random.default_rng(1)
    outs = np.concatenate([rng.integers(-128, 128, (200, 5)), rng.integers(-2, 2, (200, 5)),  # many ties
                           np.full((1, 5), 7)]).astype(np.int8)
    lines = subprocess.run([str(exe)], input=outs.tobytes(), capture_output=True, check=True).stdout.decode().splitlines()
    import hashlib

    from tinyq import __version__

    assert lines[0].split() == ["info", "tinyq_tiny_int8", hashlib.sha256(MODEL.read_bytes()).hexdigest()[:12],
                                __version__, "5", str(plan_model(g).arena_bytes), "4", "2", "5",
                                str(int(g.input_tensors[0].quant.zero_point[0])), y.name]
    assert [l.split(" ", 1)[1] for l in lines[1:6]] == LABELS  # every byte of every label, as written
    assert lines[6] == "arena -1 -1 0"
    scale, zp = np.float32(y.quant.scale[0]), int(y.quant.zero_point[0])
    for row, line in zip(outs, lines[7:]):
        order = sorted(range(5), key=lambda c: (-int(row[c]), c))  # best first, lower index on ties
        want = [f"{c}:{float(scale * np.float32(int(row[c]) - zp)):.9g}" for c in order]
        assert line.split() == [str(int(np.argmax(row))), "5", *want, f"{float(scale * np.float32(int(row[2]) - zp)):.9g}"]


def test_model_name_is_a_c_identifier():
    assert model_name("path/to/kws-ds.cnn.tflite") == "tinyq_kws_ds"
    assert model_name("x.tflite", "my model-1") == "my_model_1"
    assert model_name("x.tflite", "9lives") == "_9lives"


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    ("a\nb\n", "2 labels for the model's 5 classes"),
    ("a\n\nb\nc\nd\ne\n", "line 2 is blank"),
    ("", "no labels in it"),
])
def test_a_bad_labels_file_is_one_line_and_writes_nothing(tmp_path, content, problem):
    labels = tmp_path / "labels.txt"
    if content is not None:
        labels.write_text(content)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["build", str(MODEL), "--board", "nano33", "-o", str(out), "--labels", str(labels)])
    assert r.exit_code == 2, r.output
    assert problem in r.output and r.output.startswith("error: ") and "hint:" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == (["labels.txt"] if content is not None else [])


@pytest.fixture(scope="module")
def labelled_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["build", str(MODEL), "--board", "nano33", "-o", str(d / "b"), "--json",
                                 "--labels", str(d / "labels.txt"), "--name", "my tiny-model"])
    assert r.exit_code == 0, r.output
    return d / "b", json.loads(r.output)


def test_labels_and_name_reach_the_library(labelled_build):
    import zipfile

    out, report = labelled_build
    assert report["arduino_library"] == "arduino/my_tiny_model.zip"
    z = zipfile.ZipFile(out / report["arduino_library"])
    header = z.read("my_tiny_model/src/tq_model.h").decode()
    assert '#define TQ_MODEL_NAME           "my_tiny_model"' in header
    assert f'#define TQ_MODEL_ID             "{report["model_id"]}"' in header
    c = z.read("my_tiny_model/src/tq_model.c").decode()
    assert r'"say \"hi\""' in c and r'"back\\slash"' in c and r'"gr\303\266\303\237e"' in c


@pytest.mark.emulator
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed")
def test_the_classify_example_runs_in_qemu_as_the_host_reference_says(labelled_build):
    """The plain-C classify example `build` compiled for the QEMU twin prints the label and score of its baked
    input, the output bytes (equal to TFLM's on the host) and that the caller's arena gave the same bytes."""
    from tinyq.device.launch import run_qemu

    out, report = labelled_build
    verify = np.load(out / "verify.npz")
    expected = verify["expected"][0].reshape(-1)
    with run_qemu(out / "examples" / "classify_qemu" / "firmware.elf", get_board("nano33")) as t:
        lines = [l.strip() for l in t.read_until(("tq-done",), timeout=60)]
    assert f"tq-classify model {report['model_id']}" in lines
    k = int(np.argmax(expected))
    g = load_tflite(out / "model_int8.tflite")
    y = g.output_tensors[0]
    score = np.float32(y.quant.scale[0]) * np.float32(int(expected[k]) - int(y.quant.zero_point[0]))
    fixed = int(np.float32(score) * np.float32(10000) + np.float32(0.5))
    label = LABELS[k].encode("utf-8").decode("ascii", "replace")  # the transport reads ASCII, U+FFFD for the rest
    assert f"label {label} class {k} score {fixed // 10000}.{fixed % 10000:04d}" in lines
    assert "output " + " ".join(str(int(v) & 0xFF) for v in expected) in lines
    assert "arena same" in lines
