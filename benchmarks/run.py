"""Benchmark tinyq on the four MLPerf Tiny architectures, on the nano33 QEMU twin.

    .venv/bin/python -m benchmarks.run            # all four models, about 2 minutes
    .venv/bin/python -m benchmarks.run kws_ds_cnn # one model

For each model: quantize (timed), build the firmware for nano33 (timed), run it in
QEMU with deterministic -icount, and record instructions per inference (QEMU counts
instructions; on a Cortex-M4 most take one cycle, loads and MACs more), the int8
model size, flash, tinyq's peak RAM (static, which holds the arena, plus the stack
high-water mark), tinyq's arena and TFLM's arena for the same model (from the
tflite_micro interpreter). Writes benchmarks/results.md and benchmarks/results.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# Published per-inference latency at 120 MHz (FACTS.md), as cycles, for context.
REFERENCE_CYCLES = {
    "kws_ds_cnn": {"tflm_cmsis_2021": 181.9e-3 * 120e6, "x_cube_ai_10_2": 43.4e-3 * 120e6},
    "vww_mobilenet_v1_025": {"tflm_cmsis_2021": 600.6e-3 * 120e6, "x_cube_ai_10_2": 89.4e-3 * 120e6},
    "ic_resnet8": {"tflm_cmsis_2021": 704.2e-3 * 120e6, "x_cube_ai_10_2": 165.7e-3 * 120e6},
    "ad_fc_autoencoder": {"tflm_cmsis_2021": 10.1e-3 * 120e6, "x_cube_ai_10_2": 4.8e-3 * 120e6},
}
TARGET_INSTRUCTIONS = {"kws_ds_cnn": 6e6, "vww_mobilenet_v1_025": 11e6, "ic_resnet8": 20e6, "ad_fc_autoencoder": 0.6e6}


def bench(name: str) -> dict:
    """Measure one zoo model end to end."""
    from benchmarks import models
    from tinyq.boards import get_board
    from tinyq.build import build_firmware
    from tinyq.emit.firmware import emit_firmware
    from tinyq.emit.model import emit_model
    from tinyq.flash import instructions_per_tick, run_qemu
    from tinyq.graph import parse_tflite
    from tinyq.measure import drive, evaluate
    from tinyq.plan import plan_memory
    from tinyq.quantize import quantize_keras
    from tinyq.reference import TflmReference

    board = get_board("nano33")
    t0 = time.perf_counter()
    model = models.build(name)
    tflite = quantize_keras(model, models.calibration_data(model))
    t_quant = time.perf_counter() - t0
    g = parse_tflite(tflite)
    t1 = time.perf_counter()
    plan = plan_memory(g)
    files = {**emit_model(g, plan, tflite, source=f"{name}.tflite"), **emit_firmware(board, "qemu")}
    with tempfile.TemporaryDirectory() as tmp:
        fw = build_firmware(files, board, "qemu", Path(tmp) / "fw")
        t_build = time.perf_counter() - t1
        ref = TflmReference(tflite)
        t = g.input_tensors[0]
        x = np.clip(np.round(np.random.default_rng(0).normal(size=(2, *t.shape)) / t.quant.scale[0])
                    + t.quant.zero_point[0], -128, 127).astype(np.int8)
        expected = np.stack([ref.run(s) for s in x])
        with run_qemu(fw.elf, board) as tr:
            report = drive(tr, x, runs=3, warmup=1, timeout=600)
    m = evaluate(report, expected, board.chip.clock_hz, instructions_per_tick(board.emulator.qemu.clock_hz))
    return {
        "model": name,
        "int8_bytes": len(tflite),
        "macs": plan.macs,
        "instructions": m.cycles,
        "instructions_per_mac": round(m.cycles / plan.macs, 2),
        "target_instructions": int(TARGET_INSTRUCTIONS[name]),
        "ms_at_64mhz": round(m.latency_us / 1000, 2),
        "flash_bytes": fw.flash_bytes,
        "tinyq_arena_bytes": plan.ram_bytes,
        "tinyq_peak_ram_bytes": m.static_ram_bytes + m.stack_high_water_bytes,
        "stack_high_water_bytes": m.stack_high_water_bytes,
        "tflm_arena_bytes": ref.arena.total,
        "tflm_arena_head_bytes": ref.arena.head,
        "arena_vs_tflm": round(plan.ram_bytes / ref.arena.total, 3),
        "outputs_bit_exact": m.outputs_match,
        "quantize_s": round(t_quant, 1),
        "build_s": round(t_build, 1),
        "reference_cycles_at_120mhz": {k: int(v) for k, v in REFERENCE_CYCLES[name].items()},
    }


def table(rows: list[dict]) -> str:
    head = ("| model | int8 B | MACs | instructions | instr/MAC | target | ms @64 MHz | flash B | tinyq arena B "
            "| tinyq peak RAM B | TFLM arena B | arena/TFLM | bit-exact | quantize s | build s |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['int8_bytes']:,} | {r['macs']:,} | {r['instructions']:,} | {r['instructions_per_mac']} "
            f"| {r['target_instructions']:,} | {r['ms_at_64mhz']} | {r['flash_bytes']:,} | {r['tinyq_arena_bytes']:,} "
            f"| {r['tinyq_peak_ram_bytes']:,} | {r['tflm_arena_bytes']:,} | {r['arena_vs_tflm']} "
            f"| {'yes' if r['outputs_bit_exact'] else 'NO'} | {r['quantize_s']} | {r['build_s']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from benchmarks.models import MODELS

    names = argv or list(MODELS)
    print(f"benchmarking {len(names)} model(s) on the nano33 QEMU twin: about {30 * len(names)} s", flush=True)
    rows = []
    for name in tqdm(names, unit="model", file=sys.stderr):
        rows.append(bench(name))
    md = (
        "# tinyq on the MLPerf Tiny architectures (nano33, QEMU twin)\n\n"
        "Instructions per inference counted by QEMU `-icount` (deterministic); a Cortex-M4 spends about one cycle\n"
        "on most, more on loads and multiplies. Peak RAM = static RAM (holds the arena and I/O buffers) + stack\n"
        "high-water mark. tinyq arena = activations + im2col scratch. TFLM arena = `tflite_micro` host\n"
        "interpreter's reported total (64-bit host).\n"
        "Seeded random weights: these measure speed and memory, not accuracy.\n\n" + table(rows) + "\n"
    )
    (HERE / "results.md").write_text(md)
    (HERE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(md)
    return 0 if all(r["outputs_bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
