"""The memory plan: conv + ADD fusion, in-place steps, and scratch inside the arena.

Bit-exactness of the plans is checked elsewhere (whole models against TFLM, on the
host and in QEMU); here: that the plan does what it claims, on the MLPerf models.
"""

import pytest

from tinyq.graph import parse_tflite
from tinyq.plan import plan_memory


@pytest.fixture(scope="module")
def plans(zoo):
    out = {}
    for name in ("kws_ds_cnn", "ic_resnet8"):
        g = parse_tflite(zoo(name))
        out[name] = (g, plan_memory(g), plan_memory(g, fuse=False, inplace=False))
    return out


def _buffer_of(plan, tensor):
    return next(b for b in plan.buffers if tensor in b.tensors)


def test_residual_adds_run_in_the_convs_and_write_over_the_skip_tensor(plans):
    g, plan, greedy = plans["ic_resnet8"]
    fused = [st for st in plan.steps if st.name == "CONV_2D+ADD"]
    assert len(fused) == 3 and len(plan.steps) == len(g.operators) - 3
    for st in fused:
        conv_in, skip = st.inputs
        assert st.outputs[0] in _buffer_of(plan, skip).tensors   # the sum replaces the skip tensor
        assert st.outputs[0] not in _buffer_of(plan, conv_in).tensors  # never the windowed conv input
    # Two 16 KB tensors live in the first residual block instead of three.
    assert plan.activation_peak_bytes == 2 * 32 * 32 * 16
    assert greedy.activation_peak_bytes == 3 * 32 * 32 * 16
    assert plan.arena_bytes < 0.75 * greedy.arena_bytes


def test_depthwise_and_pointwise_run_in_place(plans):
    g, plan, greedy = plans["kws_ds_cnn"]
    dw = [st for st in plan.steps if st.name == "DEPTHWISE_CONV_2D"]
    pw = [st for st in plan.steps if st.name == "CONV_2D" and dict(st.call.params)["k_h"] == 1]
    assert len(dw) == 4 and len(pw) == 4
    for st in dw + pw:
        assert plan.offsets[st.outputs[0]] == plan.offsets[st.inputs[0]]
    # The depthwise steps got their row ring (2 rows of 5 x 64) on top of their scratch.
    assert all(st.call.scratch_bytes >= 2 * 5 * 64 for st in dw)
    # One 25x5x64 activation tensor at a time, plus scratch: well under the greedy plan.
    assert plan.arena_bytes < 25 * 5 * 64 + 2048 < greedy.arena_bytes


def test_scratch_is_planned_inside_the_arena_for_its_step_only(plans):
    _, plan, _ = plans["ic_resnet8"]
    scratch = [b for b in plan.buffers if not b.tensors]
    assert scratch and all(b.first == b.last for b in scratch)
    assert set(plan.scratch_offsets) == {i for i, st in enumerate(plan.steps) if st.call.scratch_bytes}
    for i, off in plan.scratch_offsets.items():
        size = plan.steps[i].call.scratch_bytes
        assert off + size <= plan.arena_bytes
        # No tensor live at that step overlaps it.
        for b in plan.buffers:
            if b.tensors and b.first <= i <= b.last:
                assert off + size <= b.offset or b.offset + b.size <= off
