"""Golden files of the generated C and of the TFLM project, for a small committed model.

The model file is committed (tests/data/tiny_int8.tflite), so the goldens do not
depend on TensorFlow. After an intended change of the generated code, regenerate
with ``TINYQ_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and review the diff.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinyq.boards import get_board
from tinyq.compile.emit.firmware import emit_firmware
from tinyq.compile.emit.model import emit_model
from tinyq.compile.emit.tflm import arena_size, emit_tflm, resolver_method
from tinyq.graph import load_tflite
from tinyq.compile.hostrun import run_generated
from tinyq.compile.plan import plan_model
from tinyq.model.reference import TflmReference

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
MODEL = DATA / "tiny_int8.tflite"
UPDATE = os.environ.get("TINYQ_UPDATE_GOLDEN") == "1"


def _emitted() -> dict[str, str]:
    tflite = MODEL.read_bytes()
    g = load_tflite(MODEL)
    board = get_board("nano33")
    files = {f"model/{k}": v for k, v in emit_model(plan_model(g), tflite, source="tiny_int8.tflite").items()}
    files.update({f"firmware/{k}": v for k, v in emit_firmware(board, "board").items()})
    files.update({f"tflm/{k}": v for k, v in emit_tflm(g, tflite, board, TflmReference(tflite).arena.total,
                                                       source="tiny_int8.tflite").items()})
    return files


def test_emission_is_deterministic():
    assert _emitted() == _emitted()


def test_golden_files():
    files = _emitted()
    if UPDATE:
        for name, text in files.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text)
    missing = [n for n in files if not (GOLDEN / n).is_file()]
    assert not missing, f"no golden for {missing}: run with TINYQ_UPDATE_GOLDEN=1"
    for name, text in files.items():
        assert text == (GOLDEN / name).read_text(), f"{name} differs from its golden file"
    assert sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()) == sorted(files)


def test_golden_model_c_is_bit_exact():
    tflite = MODEL.read_bytes()
    g = load_tflite(MODEL)
    files = {p.name: p.read_text() for p in (GOLDEN / "model").iterdir()}
    x = np.random.default_rng(0).integers(-128, 128, (50, *g.input_tensors[0].shape)).astype(np.int8)
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_generated(files, x, g.output_tensors[0].shape), np.stack([ref.run(s) for s in x]))


def test_tflm_project_lists_exactly_the_models_ops():
    g = load_tflite(MODEL)
    main = (GOLDEN / "tflm" / "src" / "main.cpp").read_text()
    listed = set(re.findall(r"resolver\.(Add\w+)\(\);", main))
    assert listed == {resolver_method(op.opcode) for op in g.operators}
    assert listed == {"AddConv2D", "AddDepthwiseConv2D", "AddAdd", "AddMaxPool2D", "AddReshape",
                      "AddFullyConnected", "AddSoftmax"}
    assert f"MicroMutableOpResolver<{len(listed)}>" in main
    total = TflmReference(MODEL.read_bytes()).arena.total
    size = int(re.search(r"kTensorArenaSize = (\d+);", main).group(1))
    assert size == arena_size(total) and total < size <= total * 1.1 + 1024 and size % 1024 == 0
    data = (GOLDEN / "tflm" / "src" / "model_data.cc").read_text()
    assert "alignas(16)" in data and f"g_model_data_len = {MODEL.stat().st_size};" in data
