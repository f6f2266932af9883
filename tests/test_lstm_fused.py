"""UNIDIRECTIONAL_SEQUENCE_LSTM (tinyq/compile/ops/kernels/lstm.py, firmware/kernels/tq_lstm.c) bit-exact with TFLM.

The fused int8 LSTM (int16 cell state) of users' own .tflite files: the models in tests/data/lstm were made by
tests/data/lstm/make.py (tf-keras 2.21 LSTMs through a batch-1 concrete function, random weights; tf-keras is
not one of tinyq's dependencies, hence stored files). Each runs from the reset state on every inference, and
so does the reference (TflmReference resets TFLM's variable tensors before each run). The kernel's run in QEMU
is tests/test_recurrent.py's gesture LSTM (a Keras 3 LSTM, fused by the quantize stage).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

DATA = Path(__file__).parent / "data" / "lstm"
MODELS = ["seq", "last_dense", "gesture", "odd"]


def _model(name: str) -> bytes:
    return (DATA / f"{name}.tflite").read_bytes()


@pytest.mark.parametrize("name", MODELS)
def test_fused_lstm_bit_exact_with_tflm(name):
    tflite = _model(name)
    g = parse_tflite(tflite)
    assert g.operators[0].opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    shape = g.input_tensors[0].shape
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(-128, 128, (10, *shape)), np.full((1, *shape), 127), np.full((1, *shape), -128),
                        rng.integers(-8, 8, (2, *shape))]).astype(np.int8)
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


def test_reference_starts_every_run_from_the_reset_state():
    """TFLM would carry the LSTM's state from one invocation into the next; tinyq's runtime does not, nor its reference."""
    ref = TflmReference(_model("seq"))
    x = np.random.default_rng(0).integers(-128, 128, parse_tflite(_model("seq")).input_tensors[0].shape).astype(np.int8)
    first = ref.run(x)
    ref.run(-x)
    np.testing.assert_array_equal(ref.run(x), first)


def test_fused_lstm_is_supported_and_lowered_checked():
    from tinyq.compile.analyze import model_macs, tflite_kind, unsupported_ops
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.ops.kernels.lstm import scratch_bytes

    from tinyq.compile.emit.tflm import resolver_method

    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in SUPPORTED_OPS
    assert resolver_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"  # the TFLM project's
    g = parse_tflite(_model("last_dense"))
    assert not unsupported_ops(g)
    # A full-int8 model (its int16 cell state and float gate-scale notes are the op's own), whose MACs count the LSTM.
    assert tflite_kind(g) == "int8"
    call = lower(g, g.operators[0])
    check_call(call)
    assert call.macs == model_macs(g) - 8 * 3 == 6 * 4 * 8 * (4 + 8)
    p = dict(call.params)
    assert (p["steps"], p["in_dim"], p["units"], p["cell_tanh"]) == (6, 4, 8, 1)
    assert p["cell_clip"] == 32767  # cell_clip 10 in a Q1.14 cell state: the int16 limit
    assert call.scratch_bytes == scratch_bytes(8) == 5 * 16  # cell state and gates; h is the previous output


def _edited(name: str, **changes):
    """The model's graph with its LSTM op's inputs changed ({position: tensor index}) or its cell state retyped."""
    g = parse_tflite(_model(name))
    op = g.operators[0]
    ins = list(op.inputs)
    for pos, idx in changes.get("inputs", {}).items():
        ins[pos] = idx
    tensors = list(g.tensors)
    if "cell_dtype" in changes:
        tensors[ins[19]] = dataclasses.replace(tensors[ins[19]], dtype=changes["cell_dtype"])
    op = dataclasses.replace(op, inputs=tuple(ins))
    return dataclasses.replace(g, tensors=tuple(tensors), operators=(op, *g.operators[1:])), op


@pytest.mark.parametrize("changes, match", [
    ({"inputs": {9: 5}}, "peephole weights"),
    ({"inputs": {16: 5}}, "a projection"),
    ({"inputs": {1: -1, 5: -1}}, "CIFG"),
    ({"cell_dtype": "INT8"}, "cell state INT8"),
])
def test_lstm_variants_tflm_does_not_run_are_refused(changes, match):
    from tinyq.compile.ops.kernels.lstm import lower_lstm

    g, op = _edited("seq", **changes)
    with pytest.raises(UnsupportedModelError, match=match):
        lower_lstm(g, op)
