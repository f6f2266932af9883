"""Benchmark tinyq on the official MLPerf Tiny models (and seeded copies), on the nano33 QEMU twin.

    .venv/bin/python -m benchmarks.run              # the four official models + the seeded copies, ~1.5 min
    .venv/bin/python -m benchmarks.run kws ad       # some models (official names, or the seeded ones)
    .venv/bin/python -m benchmarks.run --cycles     # + estimated Cortex-M4 cycles (traced: a few minutes)
    .venv/bin/python -m benchmarks.run --official   # the official models only

Each model goes through the same library calls as `tinyq build` and `tinyq flash --emulator qemu
--per-layer` (tinyq.pipeline.compile_model and .run_on): built for nano33, run in QEMU with deterministic
-icount, checked byte for byte against TFLM. Writes benchmarks/results.md and benchmarks/results.json.
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
OFFICIAL_DIR = HERE.parent.parent / "shared" / "models" / "mlperf-tiny"

#: The official int8 files, by short name.
OFFICIAL = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
}
#: Published X-CUBE-AI 10.2 latency on a 120 MHz Cortex-M4F (NUCLEO-L4R5ZI, MLPerf Tiny), as cycles.
X_CUBE_AI_CYCLES = {"kws": 43.4e-3 * 120e6, "vww": 89.4e-3 * 120e6, "ic": 165.7e-3 * 120e6, "ad": 4.8e-3 * 120e6}
#: Measured (shared/FACTS.md, 2026-11): TFLM main 90b983c2 + the CMSIS-NN it pins (4ab83cc3), gcc 12.2,
#: core -Os / kernels -O2, the same QEMU machine and icount: instructions around one Invoke(), and
#: arena_used_bytes() on the 32-bit target. All four outputs equal tinyq's byte for byte.
TFLM_CMSIS_INSTRUCTIONS = {"kws": 7.70e6, "vww": 24.10e6, "ic": 29.86e6, "ad": 0.583e6}
TFLM_REFERENCE_INSTRUCTIONS = {"kws": 43.0e6, "vww": 100.1e6, "ic": 107.3e6, "ad": 1.95e6}
TFLM_ARENA_32BIT = {"kws": 22_820, "vww": 100_708, "ic": 54_996, "ad": 2_580}
#: The targets of issue #16 (official models, nano33 twin).
TARGETS = {
    "kws": {"cycles": 3.9e6, "instructions": 2.9e6, "arena": 8_800},
    "vww": {"cycles": 8.0e6, "instructions": 5.9e6, "arena": 32_768},
    "ic": {"cycles": 15.0e6, "instructions": 11.1e6, "arena": 27_500},
    "ad": {"cycles": 0.43e6, "instructions": 0.32e6, "arena": 2_580},
}


def measure(model: Path, calib: Path | None, out: Path, cycles: bool) -> dict:
    """Build ``model`` for nano33 and run it on the QEMU twin, as the CLI does; the figures as a dict."""
    from tinyq import pipeline
    from tinyq.boards import get_board

    t0 = time.perf_counter()
    built = pipeline.compile_model(model, "nano33", calib, out)
    t_build = time.perf_counter() - t0
    m = pipeline.run_on(out, emulator="qemu", runs=3, warmup=1, per_layer=True, timeout=600)
    r = built.report
    est = None
    if cycles:
        from benchmarks.cycles import cycles_per_instruction

        inputs = np.load(out / "verify.npz")["inputs"]
        cpi = cycles_per_instruction(out / r.firmware["qemu"].elf, get_board("nano33"), inputs)[1]
        est = round(m.cycles * cpi)
    layers = [{**step, "instructions": c} for step, (_, c) in zip(r.layers, m.layers)]
    return {
        "int8_bytes": r.quantization["quant_bytes"],
        "macs": r.macs,
        "instructions": m.cycles,
        "instructions_per_mac": round(m.cycles / r.macs, 2),
        "estimated_m4_cycles": est,
        "ms_at_64mhz": round(m.latency_us / 1000, 2),
        "flash_bytes": m.flash_bytes,
        "arena_bytes": r.arena_bytes,
        "peak_ram_bytes": m.static_ram_bytes + m.stack_high_water_bytes,
        "tflm_host_arena_bytes": r.tflm_arena_bytes,
        "outputs_bit_exact": m.outputs_match,
        "build_s": round(t_build, 1),
        "layers": layers,
    }


def official(name: str, cycles: bool) -> dict:
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        r = measure(OFFICIAL_DIR / OFFICIAL[name], None, Path(tmp) / "b", cycles)
        # The build's drawing of its memory plan, kept beside the tables (the README shows VWW's).
        shutil.copy(Path(tmp) / "b" / "memory.png", HERE / f"memory_{name}.png")
    return {"model": name, "file": OFFICIAL[name], **r, "targets": TARGETS[name],
            "x_cube_ai_cycles": int(X_CUBE_AI_CYCLES[name]),
            "tflm_cmsis_nn_instructions": int(TFLM_CMSIS_INSTRUCTIONS[name]),
            "tflm_reference_instructions": int(TFLM_REFERENCE_INSTRUCTIONS[name]),
            "tflm_arena_32bit_bytes": TFLM_ARENA_32BIT[name]}


def seeded(name: str, cycles: bool) -> dict:
    """A seeded-weight copy from benchmarks/models.py, saved and built from its .keras like a user's model."""
    from benchmarks import models
    from tinyq.model.tfenv import quiet

    with tempfile.TemporaryDirectory() as tmp:
        with quiet():  # TensorFlow's start-up notes would bury the progress bar
            model = models.build(name)
            path, calib = Path(tmp) / f"{name}.keras", Path(tmp) / "calib.npy"
            model.save(path)
        np.save(calib, models.calibration_data(model))
        return {"model": name, **measure(path, calib, Path(tmp) / "b", cycles)}


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _m(x: float) -> str:
    return f"{x / 1e6:.2f} M"


def official_table(rows: list[dict]) -> str:
    lines = [_row(("model", "MACs", "instructions", "target", "est. M4 cycles", "target", "X-CUBE-AI 10.2 cycles",
                   "TFLM+CMSIS-NN instructions", "TFLM ref. kernels instructions", "arena B", "target",
                   "TFLM arena (32-bit) B", "flash B", "bit-exact")), "|" + "---|" * 14]
    for r in rows:
        t = r["targets"]
        est = _m(r["estimated_m4_cycles"]) if r.get("estimated_m4_cycles") else "(--cycles)"
        lines.append(_row((r["model"].upper(), _m(r["macs"]), _m(r["instructions"]), _m(t["instructions"]), est,
                           _m(t["cycles"]), _m(r["x_cube_ai_cycles"]), _m(r["tflm_cmsis_nn_instructions"]),
                           _m(r["tflm_reference_instructions"]), f"{r['arena_bytes']:,}", f"{t['arena']:,}",
                           f"{r['tflm_arena_32bit_bytes']:,}", f"{r['flash_bytes']:,}",
                           "yes" if r["outputs_bit_exact"] else "NO")))
    return "\n".join(lines)


def seeded_table(rows: list[dict]) -> str:
    lines = [_row(("model (seeded weights)", "MACs", "instructions", "instr/MAC", "est. M4 cycles", "arena B",
                   "TFLM host arena B (64-bit)", "flash B", "bit-exact")), "|" + "---|" * 9]
    for r in rows:
        est = _m(r["estimated_m4_cycles"]) if r.get("estimated_m4_cycles") else "(--cycles)"
        lines.append(_row((r["model"], _m(r["macs"]), _m(r["instructions"]), r["instructions_per_mac"], est,
                           f"{r['arena_bytes']:,}", f"{r['tflm_host_arena_bytes']:,}", f"{r['flash_bytes']:,}",
                           "yes" if r["outputs_bit_exact"] else "NO")))
    return "\n".join(lines)


def layer_table(r: dict) -> str:
    """One model's instructions per layer, Markdown."""
    lines = [f"### {r['model']}", "", _row(("#", "op", "output", "kernel", "MACs", "instructions", "instr/MAC",
                                             "share")), "|" + "---|" * 8]
    for l in r["layers"]:
        per = f"{l['instructions'] / l['macs']:.2f}" if l["macs"] else "-"
        lines.append(_row((l["step"], l["op"], "x".join(map(str, l["output_shape"][1:])), l["kernel"],
                           f"{l['macs']:,}", f"{l['instructions']:,}", per,
                           f"{l['instructions'] / r['instructions']:.1%}")))
    return "\n".join(lines)


HEADER = """# tinyq on the MLPerf Tiny models (nano33, QEMU twin)

`python -m benchmarks.run` writes this file, through the same library calls as `tinyq build` and `tinyq flash
--emulator qemu --per-layer`. Instructions per inference are counted by QEMU `-icount` (repeatable to one
40-instruction SysTick tick). Est. M4 cycles (`--cycles`) weights the model code's executed instructions by the
Cortex-M4's timings (loads 2, LDM/STM 1+N, LDRD 3, branches 2-3, the rest 1; no flash wait states): see
benchmarks/cycles.py; a model, not a measurement (a board's DWT counter, `tinyq flash --port`, gives the real one).
X-CUBE-AI 10.2: the published MLPerf Tiny latency on a 120 MHz Cortex-M4F, as cycles. TFLM columns: measured
here (2026-11) with TFLM main 90b983c2 and the CMSIS-NN it pins (4ab83cc3), gcc 12.2, core -Os / kernels -O2,
on the same QEMU machine and icount, instructions around one Invoke(), arena = arena_used_bytes() on the 32-bit
target; all outputs equal tinyq's. tinyq's arena = every byte of RAM the model needs (activations and each op's
scratch, planned together); peak RAM adds the I/O buffers and the stack's high-water mark. The seeded copies'
"TFLM host arena" is the tflite_micro host interpreter's figure (64-bit pointers), not a 32-bit measurement.
Channels that hold one value for every input leave the graph before it is lowered, their values folded into
their readers' biases (tinyq.compile.dead_channels, exact): the per-layer tables show the channels and MACs that run
(official VWW: 808 channels dropped, the rest of its constant ones written, not computed: 3.92 M of its
7.49 M MACs run); the MACs column of the main tables is the model's.
"""


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from benchmarks.models import MODELS

    cycles = "--cycles" in argv
    only_official = "--official" in argv
    names = [a for a in argv if not a.startswith("--")]
    unknown = [n for n in names if n not in OFFICIAL and n not in MODELS]
    if unknown:
        print(f"error: unknown model {', '.join(unknown)} (hint: one of {', '.join([*OFFICIAL, *MODELS])})",
              file=sys.stderr)
        return 2
    off = [n for n in names if n in OFFICIAL] or ([] if names else list(OFFICIAL))
    seed = [n for n in names if n in MODELS] or ([] if names or only_official else list(MODELS))
    if not OFFICIAL_DIR.is_dir() and off:
        print(f"note: {OFFICIAL_DIR} is missing; the official models are skipped", file=sys.stderr)
        off = []
    rows_off, rows_seed = [], []
    for name in tqdm(off + seed, unit="model", file=sys.stderr):
        (rows_off if name in off else rows_seed).append(official(name, cycles) if name in off else seeded(name, cycles))
    parts = [HEADER]
    if rows_off:
        parts += ["## The official models (main table)\n", official_table(rows_off), ""]
    if rows_seed:
        parts += ["## Seeded copies of the architectures (speed and memory only)\n", seeded_table(rows_seed), ""]
    parts += ["## Per layer\n", "\n\n".join(layer_table(r) for r in rows_off + rows_seed), ""]
    (HERE / "results.md").write_text("\n".join(parts))
    (HERE / "results.json").write_text(json.dumps({"official": rows_off, "seeded": rows_seed}, indent=2) + "\n")
    if rows_off:
        print(official_table(rows_off))
    if rows_seed:
        print(seeded_table(rows_seed))
    print(f"per-layer tables: {HERE / 'results.md'}")
    return 0 if all(r["outputs_bit_exact"] for r in rows_off + rows_seed) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
