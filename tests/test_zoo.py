"""The zoo (#28, item 7): common Keras architectures, as users bring them, built and run bit-exact in QEMU.

benchmarks/zoo.py builds each model (keras.applications at 96x96 and the layer mixes board users write) with
seeded random weights; here each is quantized by tinyq's quantize stage, planned for the Nano 33 BLE, compiled
for the QEMU twin and run on seeded inputs against TFLM. A model tinyq refuses must be in REFUSED, with the
words its one-line refusal must say (its real blocker), and must be refused that way.
"""

from __future__ import annotations

import inspect

import pytest

from benchmarks import zoo
from conftest import cached_tflite
from tinyq.errors import TinyqError
from tinyq.graph import parse_tflite
from tinyq.model.quantize import random_inputs
from tinyq.pipeline import run_model_on

#: name -> what its one-line refusal must say: its real blocker.
REFUSED: dict[str, str] = {
    # 5.3 M parameters: 4 MB of int8 weights against the Nano 33 BLE's 1 MB of flash.
    "efficientnet_b0_96": "does not fit nano33: flash",
    # Keras' elu is left in float by TensorFlow's int8 converter (DEQUANTIZE, ELU, QUANTIZE).
    "activations_mlp": "ELU: left in float by TensorFlow's int8 converter",
}


def zoo_entry_tflite(name: str) -> bytes:
    """The zoo model ``name`` quantized to full int8 by tinyq's quantize stage (cached across sessions)."""
    from tinyq.model.quantize import quantize_keras

    def make():
        model = zoo.build(name)
        return quantize_keras(model, zoo.calibration(name, model))

    return cached_tflite(["zoo", name, inspect.getsource(zoo)], make)


@pytest.mark.parametrize("name", [pytest.param(e.name, marks=[pytest.mark.slow] if e.slow else [])
                                  for e in zoo.ZOO])
def test_zoo_model_runs_bit_exact_in_qemu(name, tmp_path):
    if name in REFUSED:  # refused as `tinyq build` refuses it: the gate, then the board's budget
        from tinyq.boards import get_board
        from tinyq.compile.analyze import analyze
        from tinyq.compile.budget import check_budget, plan_for_board
        from tinyq.compile.plan import PlanOptions

        board = get_board("nano33")
        with pytest.raises(TinyqError) as e:
            g = parse_tflite(zoo_entry_tflite(name))
            analyze(g)
            check_budget(plan_for_board(g, board, PlanOptions()), board, "ram")
        assert REFUSED[name] in str(e.value) and "\n" not in str(e.value), str(e.value)
        return
    tflite = zoo_entry_tflite(name)
    g = parse_tflite(tflite)
    m, plan, fw = run_model_on(tflite, "qemu", random_inputs(g, 2, seed=1), tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert m.arena_bytes == plan.ram_bytes


def test_zoo_is_large_and_mostly_runs():
    """At least 25 architectures, at least 90 % of them running."""
    assert len(zoo.ZOO) >= 25
    assert len(REFUSED) <= 0.1 * len(zoo.ZOO)
