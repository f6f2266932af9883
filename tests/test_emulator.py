"""Hardware-in-the-loop on the emulator: the same firmware as for the board, run in QEMU.

Marked ``emulator``; Renode and real-board tests skip with the reason when absent.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyq.boards import get_board
from tinyq.cli import cli
from tinyq.compile.emit.firmware import emit_firmware
from tinyq.errors import DeviceTimeoutError
from tinyq.device.devices import open_device
from tinyq.graph import parse_tflite
from tinyq.pipeline import run_model_on
from tinyq.report.measure import drive
from tinyq.compile.plan import plan_model

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed",
)
pytestmark = [pytest.mark.emulator, needs_qemu]


def test_build_report(digits_build):
    out, report = digits_build
    assert report["board"] == "nano33" and report["host_bit_exact_inputs"] == 8
    q = report["quantization"]
    assert q["quant_accuracy"] >= q["float_accuracy"] - 0.02 and q["size_ratio"] >= 3
    assert report["arena_bytes"] <= report["tflm_arena_bytes"]
    assert (out / "qemu" / "firmware.elf").is_file() and (out / "board" / "firmware.hex").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no scratch folders left


def test_flash_on_qemu_measures_and_verifies(digits_build):
    out, report = digits_build
    r = CliRunner().invoke(cli, ["flash", "--build", str(out), "--emulator", "qemu", "--json", "--per-layer",
                                 "--runs", "5"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["outputs_match"] and m["inputs_checked"] == 8 and m["runs"] == 5
    assert m["cycles_kind"] == "instructions" and m["timer"] == "systick"
    # Plausible for 0.78 M MACs on a Cortex-M4: SMLAD makes two MACs an instruction, so no fewer than half
    # an instruction a MAC (the SIMD kernels run about one), and no more than 40.
    assert report["macs"] / 2 < m["cycles"] < 40 * report["macs"]
    assert m["latency_us"] == pytest.approx(m["cycles"] / 64, rel=1e-3)
    assert m["arena_bytes"] == report["arena_bytes"]
    assert 64 < m["stack_high_water_bytes"] < get_board("nano33").memory.stack_bytes
    assert m["static_ram_bytes"] == report["firmware"]["qemu"]["static_ram_bytes"]
    assert m["flash_bytes"] == report["firmware"]["qemu"]["flash_bytes"]
    assert len(m["layers"]) == 10 and sum(l["cycles"] for l in m["layers"]) <= m["cycles"] * 1.05
    conv = [l["cycles"] for l in m["layers"] if l["op"] == "CONV_2D"]
    assert max(conv) > 0.3 * m["cycles"]  # the 3x3 conv with 64 channels dominates


def test_icount_makes_latency_repeatable(digits_build):
    """With -icount the count is the instructions executed, to one SysTick tick (40 instructions): each
    timed run starts on a fresh tick, but the loop that waits for it notices the edge a few instructions
    late, by an amount that depends on when the host's command arrived. Without icount the figure
    moves by percents."""
    out, _ = digits_build
    runs = []
    for _ in range(3):
        r = CliRunner().invoke(cli, ["flash", "--build", str(out), "--emulator", "qemu", "--json", "--runs", "3"])
        assert r.exit_code == 0, r.output
        runs.append(json.loads(r.output)["cycles"])
    assert max(runs) - min(runs) <= 40, runs


def _run_in_qemu(tflite: bytes, tmp_path: Path, n: int = 3, device: str = "qemu", per_layer: bool = False,
                 **plan_options):
    """``n`` seeded inputs (normal around the input's zero point) through the model planned with ``plan_options``."""
    t = parse_tflite(tflite).input_tensors[0]
    x = np.clip(np.round(np.random.default_rng(5).normal(size=(n, *t.shape)) / t.quant.scale[0]) + t.quant.zero_point[0],
                -128, 127).astype(np.int8)
    return run_model_on(tflite, device, x, tmp_path, per_layer=per_layer, **plan_options)


def test_resnet_blocks_by_winograd_in_qemu(zoo, tmp_path):
    """ResNet-8's 3x3 stride-1 convs by Winograd F(2, 3) on the device: in row bands, one with the
    residual ADD fused into its last stage (the sum written over the skip tensor row by row)."""
    m, plan, _ = _run_in_qemu(zoo("ic_resnet8"), tmp_path, n=2, weights="int16", wino=True)
    wino = [st for st in plan.steps for c in (st.call.stages or (st.call,)) if dict(c.params).get("w16") == 3]
    assert any(st.name.startswith("BAND:") and st.name.endswith("CONV_2D+ADD") for st in wino)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"


@pytest.mark.parametrize("name", ["kws_ds_cnn", "ic_resnet8", "ad_fc_autoencoder",
                                  pytest.param("vww_mobilenet_v1_025", marks=pytest.mark.slow)])
def test_mlperf_architectures_in_qemu_bit_exact(zoo, name, tmp_path):
    m, plan, fw = _run_in_qemu(zoo(name), tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert m.arena_bytes == plan.ram_bytes
    assert plan.macs / 4 < m.cycles < 60 * plan.macs
    assert m.stack_high_water_bytes < fw.stack_bytes


def test_hanging_firmware_times_out_and_qemu_is_stopped(tmp_path):
    """A firmware that never answers must be reported, not waited on, and its QEMU killed."""
    from tinyq.resources import FIRMWARE_DIR

    board = get_board("nano33")
    src = tmp_path / "hang.c"
    src.write_text("int main(void) { for (;;) { __asm__ volatile(\"nop\"); } }\n")
    (tmp_path / "tq_board.h").write_text(emit_firmware(board, "qemu")["tq_board.h"])
    (tmp_path / "linker.ld").write_text(emit_firmware(board, "qemu")["linker.ld"])
    rt = FIRMWARE_DIR / "runtime"
    elf = tmp_path / "hang.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
                    "-I", str(tmp_path), "-I", str(rt), str(src), str(rt / "startup.c"), str(rt / "console_cmsdk.c"),
                    "-T", str(tmp_path / "linker.ld"), "-nostartfiles", "--specs=nano.specs", "-o", str(elf)], check=True)
    with pytest.raises(DeviceTimeoutError, match="within 2 s"):
        with open_device("qemu", board, elf) as dev:
            drive(dev.transport, np.zeros((1, 64), np.int8), timeout=2.0)
    left = subprocess.run(["pgrep", "-f", str(elf)], capture_output=True, text=True).stdout.strip()
    assert left == ""


@pytest.mark.hil
@pytest.mark.skipif("TINYQ_HIL_PORT" not in os.environ, reason="no board: set TINYQ_HIL_PORT to its serial port")
def test_digits_on_a_real_board(digits_build):
    out, _ = digits_build
    r = CliRunner().invoke(cli, ["flash", "--build", str(out), "--port", os.environ["TINYQ_HIL_PORT"], "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["outputs_match"] and m["timer"] == "dwt"


def _op_cases():
    import test_ops

    return [(k, p) for k, p in test_ops.CASES if k in ("conv", "dw", "fc", "add", "add_bcast")]


@pytest.mark.parametrize("kind,params", _op_cases(), ids=[f"{k}-{i}" for i, (k, _) in enumerate(_op_cases())])
def test_op_cases_in_qemu_bit_exact(kind, params, tmp_path):
    """The seeded single-op cases on the device: the Cortex-M4 assembly inner loops (not the
    C twins the host runs) with every tail: pixel counts not a multiple of 4, odd channel
    counts, unaligned channel counts, FC widths not a multiple of 4."""
    import test_ops

    tflite = test_ops.op_tflite(kind, params)
    # A depthwise case runs each kernel the planner may pick: windowed, then (below) channel-planar.
    windowed = {"dw_planes": False} if kind == "dw" else {}
    m, _, _ = _run_in_qemu(tflite, tmp_path, n=4, **windowed)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    if kind in ("conv", "fc", "dw"):  # the int16-weight inner loops and the depthwise border streams too
        m, plan, _ = _run_in_qemu(tflite, tmp_path / "w16", n=4, weights="int16", **windowed)
        assert kind == "dw" or any(dict(c.params).get("w16") for c in plan.calls)
        assert m.outputs_match, f"the fast layout: inputs {m.mismatched_inputs} differ from TFLM"
    if kind == "conv" and test_ops.winograd_applies(tflite):
        m, plan, _ = _run_in_qemu(tflite, tmp_path / "wino", n=4, weights="int16", wino=True)
        assert any(dict(c.params).get("w16") == 3 for c in plan.calls)
        assert m.outputs_match, f"Winograd: inputs {m.mismatched_inputs} differ from TFLM"
    if kind == "dw" and test_ops.planar_applies(tflite):
        m, plan, _ = _run_in_qemu(tflite, tmp_path / "planar", n=4, dw_planes=True)
        assert any(c.function == "tq_depthwise3x3_plane_s8" for c in plan.calls)
        assert m.outputs_match, f"channel-planar: inputs {m.mismatched_inputs} differ from TFLM"


@pytest.mark.parametrize("shape,act", [((25, 5, 64), None), ((24, 24, 32), None), ((24, 24, 32), "relu")])
def test_depthwise_instruction_models_match_qemu(shape, act, tmp_path):
    """The planner picks a 3x3 depthwise kernel from a model of each one's instructions
    (tinyq.compile.ops.lower_ops); in QEMU, on a KWS-sized layer (its planes run down the columns) and a
    VWW-sized one (along the rows; and with a ReLU, whose output zero point of -128 takes the _z kernels),
    the channel-planar model is within 1 % of the count, the
    windowed one (a fitted figure a pixel's group of channels) within 15 %, and the faster kernel
    is the one the planner picks. A kernel change that moves its cost must move its model too."""
    import test_ops
    from tinyq.compile.ops.lower_ops import depthwise3x3_plane_instructions, depthwise3x3_windowed_instructions

    h, w, c = shape
    tflite = test_ops.op_tflite("dw", dict(h=h, w=w, c=c, k=3, strides=1, dilation=1, padding="same", act=act,
                                           mult=1))  # relu: an output zero point of -128, the _z kernels
    measured = {}
    for planes in (True, False):
        m, plan, _ = _run_in_qemu(tflite, tmp_path / str(planes), n=1, per_layer=True, dw_planes=planes)
        (call,) = [c for c in plan.kernel_calls if "depthwise" in c.function]
        p = dict(call.params)
        model = depthwise3x3_plane_instructions(p) if planes else depthwise3x3_windowed_instructions(p)
        (layer,) = [n for op, n in m.layers if op == "DEPTHWISE_CONV_2D"]  # the layer alone, not the I/O copies
        assert m.outputs_match and abs(layer - model) < (0.01 if planes else 0.15) * model, (call.function, layer)
        measured[call.function] = layer
    chosen = [c.function for c in plan_model(parse_tflite(tflite)).kernel_calls if "depthwise" in c.function]
    assert chosen == [min(measured, key=measured.get)]
