"""Benchmark tinyq on the four MLPerf Tiny architectures, on the nano33 QEMU twin.

    .venv/bin/python -m benchmarks.run            # all four models, about 30 s
    .venv/bin/python -m benchmarks.run kws_ds_cnn # one model
    .venv/bin/python -m benchmarks.run --cycles   # + estimated Cortex-M4 cycles (traced: about a minute)

For each model: quantize (timed), build the firmware for nano33 (timed), run it in
QEMU with deterministic -icount, and record instructions per inference and per layer
(QEMU counts instructions; on a Cortex-M4 most take one cycle, loads two, SMLAD one),
the int8 model size, flash, tinyq's arena (activations and each op's scratch), the
plain greedy plan's arena for comparison (no conv+ADD fusion, nothing in place), peak
RAM (static, which holds the arena, plus the stack high-water mark) and TFLM's arena
for the same model (from the tflite_micro interpreter). Writes benchmarks/results.md
and benchmarks/results.json.
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


def bench(name: str, cycles: bool = False) -> dict:
    """Measure one zoo model end to end (``cycles``: also estimate Cortex-M4 cycles, see benchmarks.cycles)."""
    from benchmarks import models
    from tinyq.boards import get_board
    from tinyq.build import build_firmware
    from tinyq.emit.firmware import emit_firmware
    from tinyq.emit.model import emit_model
    from tinyq.devices import open_device
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
        with open_device("qemu", board, fw.elf) as dev:
            report = drive(dev.transport, x, runs=3, warmup=1, per_layer=True, timeout=600)
            clock = dev.clock
        cpi = None
        if cycles:
            from benchmarks.cycles import cycles_per_instruction

            cpi = cycles_per_instruction(fw.elf, board, x)[1]
    m = evaluate(report, expected, board.chip.clock_hz, clock)
    greedy = plan_memory(g, fuse=False, inplace=False)
    layers = []
    for step, (op, cycles) in zip(plan.steps, m.layers):
        out = g.tensors[step.outputs[0]]
        layers.append({"op": op, "output_shape": list(out.shape), "macs": step.call.macs, "instructions": cycles,
                       "kernel": step.call.function})
    return {
        "model": name,
        "int8_bytes": len(tflite),
        "macs": plan.macs,
        "instructions": m.cycles,
        "instructions_per_mac": round(m.cycles / plan.macs, 2),
        "estimated_m4_cycles": round(m.cycles * cpi) if cpi else None,
        "target_instructions": int(TARGET_INSTRUCTIONS[name]),
        "ms_at_64mhz": round(m.latency_us / 1000, 2),
        "flash_bytes": fw.flash_bytes,
        "tinyq_arena_bytes": plan.ram_bytes,
        "greedy_arena_bytes": greedy.ram_bytes,
        "tinyq_peak_ram_bytes": m.static_ram_bytes + m.stack_high_water_bytes,
        "stack_high_water_bytes": m.stack_high_water_bytes,
        "tflm_arena_bytes": ref.arena.total,
        "tflm_arena_head_bytes": ref.arena.head,
        "arena_vs_tflm": round(plan.ram_bytes / ref.arena.total, 3),
        "outputs_bit_exact": m.outputs_match,
        "quantize_s": round(t_quant, 1),
        "build_s": round(t_build, 1),
        "reference_cycles_at_120mhz": {k: int(v) for k, v in REFERENCE_CYCLES[name].items()},
        "layers": layers,
    }


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(rows: list[dict]) -> str:
    """The speed table and the memory table, Markdown."""
    speed = [_row(("model", "int8 B", "MACs", "instructions", "target", "instr/MAC", "ms @64 MHz",
                   "est. M4 cycles", "TFLM+CMSIS-NN 2021 cycles", "X-CUBE-AI 10.2 cycles", "flash B", "bit-exact",
                   "quantize s", "build s")), "|" + "---|" * 14]
    for r in rows:
        ref = r["reference_cycles_at_120mhz"]
        est = f"{r['estimated_m4_cycles']:,}" if r.get("estimated_m4_cycles") else "(--cycles)"
        speed.append(_row((r["model"], f"{r['int8_bytes']:,}", f"{r['macs']:,}", f"{r['instructions']:,}",
                           f"{r['target_instructions']:,}", r["instructions_per_mac"], r["ms_at_64mhz"], est,
                           f"{ref['tflm_cmsis_2021']:,}", f"{ref['x_cube_ai_10_2']:,}", f"{r['flash_bytes']:,}",
                           "yes" if r["outputs_bit_exact"] else "NO", r["quantize_s"], r["build_s"])))
    memory = [_row(("model", "tinyq arena B", "TFLM arena B", "arena/TFLM (target <= 0.7)", "greedy plan B",
                    "saved by fusion + in place", "peak RAM B (static + stack)")), "|" + "---|" * 7]
    for r in rows:
        gain = 1 - r["tinyq_arena_bytes"] / r["greedy_arena_bytes"]
        memory.append(_row((r["model"], f"{r['tinyq_arena_bytes']:,}", f"{r['tflm_arena_bytes']:,}",
                            r["arena_vs_tflm"], f"{r['greedy_arena_bytes']:,}", f"{gain:.0%}",
                            f"{r['tinyq_peak_ram_bytes']:,}")))
    return "\n".join(speed) + "\n\n" + "\n".join(memory)


def layer_table(r: dict) -> str:
    """One model's instructions per layer, Markdown."""
    lines = [f"### {r['model']}", "", _row(("#", "op", "output", "kernel", "MACs", "instructions", "instr/MAC", "share")),
             "|" + "---|" * 8]
    for i, l in enumerate(r["layers"]):
        per = f"{l['instructions'] / l['macs']:.2f}" if l["macs"] else "-"
        lines.append(_row((i, l["op"], "x".join(map(str, l["output_shape"][1:])), l["kernel"], f"{l['macs']:,}",
                           f"{l['instructions']:,}", per, f"{l['instructions'] / r['instructions']:.1%}")))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from benchmarks.models import MODELS

    cycles = "--cycles" in argv
    names = [a for a in argv if a != "--cycles"] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"error: unknown model {', '.join(unknown)} (hint: one of {', '.join(MODELS)})", file=sys.stderr)
        return 2
    per = 12 if cycles else 8
    print(f"benchmarking {len(names)} model(s) on the nano33 QEMU twin: about {per * len(names)} s", flush=True)
    rows = []
    for name in tqdm(names, unit="model", file=sys.stderr):
        rows.append(bench(name, cycles))
    md = (
        "# tinyq on the MLPerf Tiny architectures (nano33, QEMU twin)\n\n"
        "`python -m benchmarks.run` writes this file. Instructions per inference are counted by QEMU `-icount`\n"
        "(repeatable to one 40-instruction SysTick tick); a Cortex-M4 spends one cycle on most of them (SMLAD, SXTB16,\n"
        "SMMLAR, ALU), two on a load, 1+N on LDM/STM, so cycles on silicon are somewhat higher than these counts.\n"
        "Est. M4 cycles (`--cycles`) weights the model code's executed instructions by the Cortex-M4's timings\n"
        "(loads 2, LDM/STM 1+N, LDRD 3, branches 2-3, the rest 1; no flash wait states): see benchmarks/cycles.py.\n"
        "It is a model, not a measurement; a board's DWT counter (`tinyq flash --port`) gives the real figure.\n"
        "The reference columns are the published MLPerf Tiny latencies on a 120 MHz Cortex-M4F as cycles.\n"
        "tinyq arena = activations and each op's scratch, planned together. Greedy plan = the same planner\n"
        "without conv+ADD fusion and in-place ops. TFLM arena = the `tflite_micro` host interpreter's reported\n"
        "total (64-bit host). Peak RAM = static RAM (arena, I/O buffers) + stack high-water mark.\n"
        "Seeded random weights: these measure speed and memory, not accuracy.\n\n" + table(rows) + "\n\n"
        "## Per layer\n\n" + "\n\n".join(layer_table(r) for r in rows) + "\n"
    )
    (HERE / "results.md").write_text(md)
    (HERE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    print(f"per-layer tables: {HERE / 'results.md'}")
    return 0 if all(r["outputs_bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
