"""The memory plan: conv + ADD fusion, in-place steps, row bands, and scratch inside the arena.

Bit-exactness of the plans is checked elsewhere (whole models against TFLM, on the
host and in QEMU); here: that the plan does what it claims, on the MLPerf models.
"""

import pytest

from tinyq.pipeline import run_on_host
from tinyq.graph import parse_tflite
from tinyq.compile.plan import PlanOptions, plan_model


@pytest.fixture(scope="module")
def plans(zoo):
    out = {}
    for name in ("kws_ds_cnn", "ic_resnet8"):
        g = parse_tflite(zoo(name))
        # Without row bands: these tests look at fusion and in-place steps one by one.
        out[name] = (g, plan_model(g, PlanOptions(band=False)), plan_model(g, PlanOptions(fuse=False, inplace=False, band=False)))
    return out


def _buffer_of(plan, tensor):
    return next(b for b in plan.buffers if tensor in b.tensors)


def test_residual_adds_run_in_the_convs_and_write_over_the_skip_tensor(plans):
    g, plan, greedy = plans["ic_resnet8"]
    fused = [st for st in plan.steps if st.name == "CONV_2D+ADD"]
    assert len(fused) == 3 and len([st for st in plan.steps if st.name != "SUBSAMPLE"]) == len(g.operators) - 3
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
    # The depthwise steps run channel-planar: two channels' planes for scratch (25 + 3 int16 down a
    # column, 5 + 2 columns each, the second starting at the first's last column of zero points:
    # 13 columns), still under the pointwise steps' scratch, and no ring of rows held back.
    assert all(st.call.function == "tq_depthwise3x3_plane_s8" and dict(st.call.params)["planes"] == 2
               and st.call.scratch_bytes == 2 * 28 * (2 * 7 - 1) for st in dw)
    assert max(st.call.scratch_bytes for st in dw) <= min(st.call.scratch_bytes for st in pw)
    # Windowed, they get their row ring (2 rows of 5 x 64) on top of their scratch.
    windowed = plan_model(g, PlanOptions(dw_planes=False))
    assert all(st.call.scratch_bytes >= 2 * 5 * 64 for st in windowed.steps if st.name == "DEPTHWISE_CONV_2D")
    # One 25x5x64 activation tensor at a time, plus scratch: well under the greedy plan.
    assert plan.arena_bytes < 25 * 5 * 64 + 2048 < greedy.arena_bytes


def test_depthwise_border_columns_read_weight_streams_of_their_own(plans):
    """KWS's 25x5 maps: 2 pixels in 5 are border columns. They run the interior kernel on a window
    moved inside the input, with streams whose outside tap weighs 0 and whose bias holds its
    zero-point term (bit-exactness: test_ops' depthwise cases, on the host and in QEMU)."""
    g, compact, _ = plans["kws_ds_cnn"]
    plan = plan_model(g, PlanOptions(band=False, weights="int16", dw_planes=False))  # the flash-for-speed layout, windowed
    dw = [st.call for st in plan.steps if st.call.function == "tq_depthwise3x3_s8"]
    assert len(dw) == 4
    # The compact layout (--weights int8) keeps the flash: its border pixels go through a patch.
    assert not any(a.name in ("wl", "wr") for st in compact.steps for a in st.call.arrays)
    assert plan.weight_bytes > compact.weight_bytes
    for c in dw:
        p, arrays = dict(c.params), {a.name: a for a in c.arrays}
        assert (p["w_left"], p["w_right"]) == ("@wl", "@wr")
        assert len(arrays["wl"].values) == len(arrays["w"].values) == len(arrays["wr"].values)
        assert arrays["wl"].values != arrays["w"].values != arrays["wr"].values


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


# --- row bands ---------------------------------------------------------------------------------------

from conftest import MLPERF  # noqa: E402

needs_mlperf = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"{MLPERF} not present")


@needs_mlperf
def test_vww_runs_its_first_stage_by_rows_and_fits_32k():
    """Official VWW's peak is 48x48x8 -> 48x48x16 after the 96x96x3 input; by rows, only windows of
    those tensors exist and the chain's output goes over input rows already read."""
    from tinyq.graph import load_tflite

    g = load_tflite(MLPERF / "vww_96_int8.tflite")
    whole, plan = plan_model(g, PlanOptions(band=False)), plan_model(g)
    (b,) = plan.bands()
    assert b["step"] == 0 and b["name"].startswith("BAND:CONV>DW>CONV>DW")
    assert b["output_over_input"] and b["window_bytes"] < 8192
    first = plan.steps[0]
    assert plan.offsets[first.outputs[0]] == plan.offsets[first.inputs[0]]
    assert whole.arena_bytes == 55_360 and plan.arena_bytes <= 32_768
    assert plan.macs == whole.macs
    # Bands run the layers' own kernels (here all windowed: the weights are the same bytes).
    assert plan_model(g, PlanOptions(band=False, dw_planes=False)).weight_bytes == plan_model(g, PlanOptions(dw_planes=False)).weight_bytes


@needs_mlperf
def test_ic_fits_27500_with_its_projections_on_subsampled_copies():
    """Official IC's peak was the second residual block: its 16 KB input stays live for the 1x1
    stride-2 projection while the main branch runs. With the projection reading a quarter-size copy
    taken first, the input dies in the main branch's band, whose output goes over it."""
    from tinyq.graph import load_tflite

    g = load_tflite(MLPERF / "pretrainedResnet_quant.tflite")
    plan = plan_model(g)
    assert plan.arena_bytes <= 27_500
    subs = [i for i, st in enumerate(plan.steps) if st.name == "SUBSAMPLE"]
    assert subs
    for i in subs:
        (x,), (xs,) = plan.steps[i].inputs, plan.steps[i].outputs
        assert 4 * plan.graph.tensors[xs].nbytes == plan.graph.tensors[x].nbytes
        j = next(k for k in range(i + 1, len(plan.steps)) if xs in plan.steps[k].inputs)
        p = dict(plan.steps[j].call.params)
        assert (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"]) == (1, 1, 1, 1)
        # The full input is read by nobody from the projection on.
        assert all(x not in st.inputs for st in plan.steps[j:])
    band = plan.steps[subs[0] + 1]
    assert band.call.stages and plan.offsets[band.outputs[0]] == plan.offsets[band.inputs[0]]


def test_subsampled_projections_are_bit_exact(zoo):
    """The seeded ResNet-8 through the same rewrite: generated C against TFLM on the host."""
    tflite = zoo("ic_resnet8")
    g = parse_tflite(tflite)
    plan = plan_model(g)
    assert [st.name for st in plan.steps].count("SUBSAMPLE") >= 1
    _bit_exact(tflite, g, plan)


def test_band_windows_and_overlay_on_hand_made_chains():
    from tinyq.compile.ops import band

    def conv(h, w, c_in, c_out, k, s):
        out_h = (h + s - 1) // s
        pad = max((out_h - 1) * s + k - h, 0) // 2
        return {"in_h": h, "in_w": w, "in_c": c_in, "out_h": out_h, "out_w": (w + s - 1) // s, "out_c": c_out,
                "k_h": k, "stride_h": s, "pad_h": pad, "dil_h": 1}

    # 3x3 s1 then 1x1: the 3x3 layer's output waits in a window of 1 row (its reader is 1x1).
    f = band.simulate([conv(8, 8, 4, 4, 3, 1), conv(8, 8, 4, 8, 1, 1)])
    assert f.windows == (1, 0) and f.window_bytes == 8 * 4 and f.row_copies == 0
    # ... widening 4 -> 8 channels: output row r would land on input rows r+1 and on, still unread.
    assert not f.overlay_ok
    # A 3x3 reader: a window of 3 rows, each produced row moved down twice before it leaves.
    f = band.simulate([conv(8, 8, 4, 4, 1, 1), conv(8, 8, 4, 4, 3, 1)])
    assert f.windows == (3, 0) and f.row_copies == 2 * (8 - 3) + 0
    # Stride 2 halves the rows: the output never catches up with the input rows still to read.
    f = band.simulate([conv(16, 16, 4, 4, 3, 2), conv(8, 8, 4, 4, 3, 2)])
    assert f.overlay_ok


def test_kernel_scratch_sizes_agree_between_python_and_c(tmp_path, zoo):
    """Each kernel's scratch is generated into C (tq_params.h, from tinyq/compile/ops/scratch.py) and planned in Python: equal for every
    conv and 3x3 depthwise lowered from the seeded models and the official ones."""
    import subprocess

    from tinyq.graph import load_tflite
    from tinyq.compile.hostrun import KERNELS_DIR

    graphs = [parse_tflite(zoo(n)) for n in ("kws_ds_cnn", "vww_mobilenet_v1_025", "ic_resnet8")]
    if MLPERF.is_dir():
        graphs += [load_tflite(MLPERF / f) for f in ("kws_ref_model.tflite", "vww_96_int8.tflite",
                                                   "pretrainedResnet_quant.tflite")]
    from dataclasses import replace

    from tinyq.compile.ops import lower
    from tinyq.compile.ops.lower_ops import depthwise3x3_plane_call, depthwise3x3_plane_scratch_bytes

    rows, want = [], []
    for g in graphs:
        lowered = plan_model(g).lowered + plan_model(g, PlanOptions(weights="int16", wino=True)).lowered
        # As lowered, as the planner chose (small patches), and band stages (which run one row at a time).
        stages = {id(s) for st in lowered for s in st.call.stages}
        calls = [lower(g, op) for op in g.operators] + [s for st in lowered for s in (st.call.stages or (st.call,))]
        calls += [st.call for st in lowered if st.call.function == "tq_conv2d_add_s8"]
        # Every depthwise layer channel-planar too, both ways round, with one plane and two.
        calls += [replace(c, params=tuple((k, v) for k, v in c.params if k != "transposed") + (("transposed", t),))
                  for op in g.operators for planes in (1, 2)
                  if (c := depthwise3x3_plane_call(g, op, planes)) for t in (0, 1)]
        for c in calls:
            if c.function in ("tq_conv2d_s8", "tq_depthwise3x3_s8", "tq_conv2d_add_s8", "tq_depthwise3x3_plane_s8"):
                p = dict(c.params)
                if id(c) in stages:
                    p["out_h"] = 1
                fields = [p[k] for k in ("in_c", "out_h", "out_w", "out_c", "k_pairs", "dil_w", "fast",
                                         "act_min", "act_max", "stride_h", "stride_w")]
                fields += [p.get("small_patch", 0), p.get("transposed", 0), p.get("w16", 0), p.get("planes", 0)]
                fields += [p[k] for k in ("in_h", "in_w", "pad_h", "pad_w")]
                kind = {"tq_depthwise3x3_s8": 0, "tq_conv2d_s8": 1, "tq_conv2d_add_s8": 2,
                        "tq_depthwise3x3_plane_s8": 3}[c.function]
                if kind == 3:
                    c = replace(c, scratch_bytes=depthwise3x3_plane_scratch_bytes(p))
                rows.append(" ".join(str(v) for v in [kind, *fields]))
                want.append(c.scratch_bytes)
    harness = tmp_path / "s.c"
    harness.write_text(r"""
#include <stdio.h>
#include "tq_kernels.h"
int main(void) {
    int conv, in_c, out_h, out_w, out_c, k_pairs, dil_w, fast, lo, hi, s_h, s_w, small, transposed, w16, planes;
    int in_h, in_w, pad_h, pad_w;
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &conv, &in_c, &out_h, &out_w, &out_c,
                 &k_pairs, &dil_w, &fast, &lo, &hi, &s_h, &s_w, &small, &transposed, &w16, &planes, &in_h, &in_w,
                 &pad_h, &pad_w) == 20) {
        tq_conv_params_t p = {0};
        p.in_c = (uint16_t)in_c; p.out_h = (uint16_t)out_h; p.out_w = (uint16_t)out_w; p.out_c = (uint16_t)out_c;
        p.k_pairs = (uint16_t)k_pairs; p.dil_w = (uint16_t)dil_w; p.fast = (uint8_t)fast;
        p.act_min = lo; p.act_max = hi; p.small_patch = (uint8_t)small;
        p.stride_h = (uint16_t)s_h; p.stride_w = (uint16_t)s_w; p.transposed = (uint8_t)transposed;
        p.w16 = (uint8_t)w16; p.planes = (uint8_t)planes;
        p.in_h = (uint16_t)in_h; p.in_w = (uint16_t)in_w; p.pad_h = (uint16_t)pad_h; p.pad_w = (uint16_t)pad_w;
        printf("%u\n", conv == 3 ? tq_depthwise3x3_plane_scratch_bytes(&p)
                        : conv == 2 ? tq_conv2d_add_scratch_bytes(&p)
                        : conv ? tq_conv2d_scratch_bytes(&p) : tq_depthwise3x3_scratch_bytes(&p));
    }
    return 0;
}
""")
    exe = tmp_path / "s"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(KERNELS_DIR), str(harness), "-o",
                    str(exe)], check=True)
    got = subprocess.run([str(exe)], input="\n".join(rows) + "\n", capture_output=True, text=True,
                         check=True).stdout.split()
    assert len(want) > 40 and sum(r.startswith("3 ") for r in rows) > 10
    assert sum(r.split()[14] == "3" for r in rows) > 4 and sum(r.split()[15] == "2" for r in rows) > 4
    assert [int(v) for v in got] == want


def test_layout_constants_agree_between_python_and_c(tmp_path):
    """The facts the weight layouts and the band runner share with C, stated once each side."""
    import subprocess

    from tinyq.compile.hostrun import KERNELS_DIR
    from tinyq.compile.ops import band, layout

    harness = tmp_path / "k.c"
    harness.write_text('#include <stdio.h>\n#include "tq_kernels.h"\nint main(void) {\n'
                       '    printf("%u %u %u\\n", TQ_TILE_LEAD_WORDS, TQ_TILE_TAIL_WORDS, (unsigned)TQ_BAND_MAX_STAGES);\n'
                       '    return 0;\n}\n')
    exe = tmp_path / "k"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(KERNELS_DIR), str(harness), "-o",
                    str(exe)], check=True)
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == [layout.TILE_LEAD_WORDS, layout.TILE_TAIL_WORDS, band.MAX_STAGES]
    # The stream itself: per pair, the biases, the weights, then rnd, mult, shift of each channel.
    chan = [(10, 11, 12, 13), (20, 21, 22, 23), (30, 31, 32, 33), (40, 41, 42, 43)]
    s = layout.tile_stream((1, 2, 3, 4), chan)
    assert s == (10,) * 4 + (20,) * 4 + (1, 2) + (11, 12, 13, 21, 22, 23) + (30,) * 4 + (40,) * 4 + (3, 4) + (
        31, 32, 33, 41, 42, 43)


# --- the variants the planner may pick, forced, against TFLM on the host ------------------------------

def _chain_model():
    import keras

    L = keras.layers
    keras.utils.set_random_seed(5)
    inp = keras.Input((13, 11, 4))
    h = L.Conv2D(8, 3, padding="same", activation="relu6")(inp)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu6")(h)       # clamped: the unfused path
    h = L.Conv2D(8, 1, activation="relu")(h)
    h = L.DepthwiseConv2D(3, strides=2, padding="same")(h)                # full range: the fused path
    h = L.Conv2D(12, 3, padding="same", dilation_rate=2)(h)
    return keras.Model(inp, L.Conv2D(4, 1)(h))


@pytest.fixture(scope="module")
def chain():
    import inspect as _inspect

    import numpy as np

    from conftest import cached_tflite
    from tinyq.model.quantize import quantize_keras

    def make():
        m = _chain_model()
        calib = np.random.default_rng(1).normal(size=(32, 13, 11, 4)).astype(np.float32)
        return quantize_keras(m, calib)

    tflite = cached_tflite(["chain", _inspect.getsource(_chain_model)], make)
    return tflite, parse_tflite(tflite)


def _bit_exact(tflite, g, plan):
    import numpy as np

    from tinyq.model.reference import TflmReference

    ref = TflmReference(tflite)
    x = np.random.default_rng(9).integers(-128, 128, (6, *g.input_tensors[0].shape)).astype(np.int8)
    want = np.stack([ref.run(s) for s in x])
    got = run_on_host(tflite, x, plan=plan)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_small_border_patches_are_bit_exact(chain, groups):
    from tinyq.compile.plan import _with_small_patch, place

    tflite, g = chain
    steps = list(plan_model(g, PlanOptions(band=False, dw_planes=False)).lowered)
    dw = [i for i, st in enumerate(steps) if st.call.function == "tq_depthwise3x3_s8"]
    assert len(dw) == 2
    plan = place(g, [_with_small_patch(st, groups) if i in dw else st for i, st in enumerate(steps)])
    assert all(dict(plan.steps[i].call.params)["small_patch"] == groups for i in dw)
    _bit_exact(tflite, g, plan)


@pytest.mark.parametrize("first,last", [(0, 1), (0, 3), (1, 4), (0, 5), (2, 4)])
def test_every_band_is_bit_exact(chain, first, last):
    """Bands over every kind of link: 3x3 conv, clamped and full-range depthwise, stride 2, dilation."""
    from tinyq.compile.ops import band
    from tinyq.compile.plan import Step, place

    tflite, g = chain
    steps = list(plan_model(g, PlanOptions(band=False)).lowered)
    run = steps[first:last + 1]
    call, facts = band.band_call([st.call for st in run])
    fused = Step("BAND", tuple(o for st in run for o in st.ops), run[0].inputs, run[-1].outputs, call,
                 call.overwrites)
    plan = place(g, steps[:first] + [fused] + steps[last + 1:])
    assert plan.bands() and plan.bands()[0]["layers"] == last - first + 1
    _bit_exact(tflite, g, plan)


@needs_mlperf
def test_kws_fits_8800_with_its_input_inside_the_first_output():
    """Official KWS: one 25x5x64 tensor (8,000 B) and the largest scratch. Its depthwise layers run
    channel-planar (faster, a 392-byte plane); windowed, they fit only through small border patches."""
    from tinyq.graph import load_tflite

    g = load_tflite(MLPERF / "kws_ref_model.tflite")
    plan = plan_model(g)
    first = plan.steps[0]
    # The 49x10 input sits in the last bytes of the first conv's 25x5x64 output.
    assert plan.offsets[first.inputs[0]] - plan.offsets[first.outputs[0]] == first.call.end_overlay > 0
    assert plan.arena_bytes <= 8_800
    dw = [st.call for st in plan.steps if st.name == "DEPTHWISE_CONV_2D"]
    assert len(dw) == 4 and all(c.function == "tq_depthwise3x3_plane_s8" and dict(c.params)["transposed"] for c in dw)
    windowed = plan_model(g, PlanOptions(dw_planes=False))
    assert windowed.arena_bytes == plan.arena_bytes
    assert all(dict(st.call.params).get("small_patch") for st in windowed.steps if st.name == "DEPTHWISE_CONV_2D")


@needs_mlperf
def test_depthwise_kernel_is_chosen_by_its_instructions():
    """The planner's model of both depthwise kernels picks channel-planar for VWW's stride-1 layers and
    keeps the windowed kernel for stride 2 (each output gathers 4 inputs); on the 3x3 map (every pixel a
    border pixel) windowed only where border columns have weight streams of their own (the layout that
    spends flash on speed), else they would go through patches."""
    from tinyq.graph import load_tflite

    g = load_tflite(MLPERF / "vww_96_int8.tflite")
    for weights16, small_planar in ((True, set()), (False, {(3, 1)})):
        plan = plan_model(g, PlanOptions(weights="int16" if weights16 else "int8"))
        dw = [(dict(st.call.params), st.call.function) for st in plan.steps if st.name == "DEPTHWISE_CONV_2D"]
        planar = {(p["out_w"], p["stride_w"]) for p, f in dw if f == "tq_depthwise3x3_plane_s8"}
        windowed = {(p["out_w"], p["stride_w"]) for p, f in dw if f == "tq_depthwise3x3_s8"}
        assert planar == {(24, 1), (12, 1), (6, 1)} | small_planar
        assert windowed == {(12, 2), (6, 2), (3, 2), (3, 1)} - small_planar
        assert plan.arena_bytes <= 32_768


# --- the placement's three parts, on hand-made graphs ---------------------------------------------------

def _step(name, ins, outs, **call):
    from tinyq.compile.ops import KernelCall
    from tinyq.compile.plan import Step

    c = KernelCall(function=name, params_type=None, params=(), args=(), **call)
    return Step(name, (0,), tuple(ins), tuple(outs), c, c.overwrites)


def test_lifetimes_views_share_their_input_and_io_spans_the_model():
    from tinyq.compile.plan import lifetimes

    # t0 -conv-> t1 -reshape(view)-> t2 -fc-> t3
    steps = [_step("conv", [0], [1]), _step("reshape", [1], [2], alias=True), _step("fc", [2], [3])]
    lt = lifetimes([0], [3], steps)
    assert lt.find(2) == lt.find(1)
    r = lt.find(1)
    assert (lt.first[r], lt.last[r]) == (0, 2) and sorted(lt.members[r]) == [1, 2]
    assert (lt.first[0], lt.last[0]) == (-1, 0) and (lt.first[3], lt.last[3]) == (2, 3)


def test_alias_writes_in_place_only_over_an_input_that_dies_there():
    from tinyq.compile.plan import alias, lifetimes

    size = {0: 64, 1: 64, 2: 64, 3: 64, 4: 64}.__getitem__
    # t1 = relu(t0) may overwrite t0 (t0 dies there); t3 = relu(t1) may not overwrite t1 (t2 still reads it)
    steps = [_step("relu", [0], [1], overwrites=(0,), inplace_scratch=8),
             _step("relu", [1], [3], overwrites=(1,)), _step("add", [1, 3], [4])]
    lt = lifetimes([0], [4], steps)
    out = alias(lt, steps, size)
    assert lt.find(1) == lt.find(0) and lt.find(3) != lt.find(1)
    assert out[0].call.scratch_bytes == 8  # the in-place ring it asked for
    # A bigger output never goes over a smaller input.
    steps = [_step("relu", [0], [1], overwrites=(0,))]
    lt = lifetimes([0], [1], steps)
    alias(lt, steps, {0: 32, 1: 64}.__getitem__)
    assert lt.find(1) != lt.find(0)


def test_alias_puts_an_input_inside_its_output_at_the_proven_displacement():
    from tinyq.compile.plan import alias, lifetimes

    steps = [_step("conv", [0], [1], end_overlay=40)]
    lt = lifetimes([0], [1], steps)
    alias(lt, steps, {0: 24, 1: 64}.__getitem__)
    assert lt.find(0) == lt.find(1) and lt.disp == {0: 40}
    # Not when it would stick out of the output.
    lt = lifetimes([0], [1], steps)
    alias(lt, steps, {0: 32, 1: 64}.__getitem__)
    assert lt.find(0) != lt.find(1) and not lt.disp


def test_placement_is_greedy_by_size_over_lifetimes():
    from tinyq.compile.plan import placement

    sizes = {"a": 100, "b": 60, "c": 50, "d": 40}
    first = {"a": 0, "b": 1, "c": 2, "d": 0}
    last = {"a": 1, "b": 2, "c": 3, "d": 3}
    off = placement(sizes, first, last)
    # a first at 0; b overlaps a's life at step 1: above it; c starts after a died: a's place;
    # d lives through all: above everything it meets.
    assert off == {"a": 0, "b": 100, "c": 0, "d": 160}
