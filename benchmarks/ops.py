"""tinyq per op against TFLM + CMSIS-NN (#28, item 2 "Not slow"), on the nano33 QEMU twin.

    PYTHONPATH=. .venv/bin/python -m benchmarks.ops            # every op model, ~10 min; writes ops.md, ops.json
    PYTHONPATH=. .venv/bin/python -m benchmarks.ops SUB MEAN   # some of them (prints, writes nothing)
    PYTHONPATH=. .venv/bin/python -m benchmarks.ops --export DIR   # also keep each .tflite and its verify.npz
    PYTHONPATH=. .venv/bin/python -m benchmarks.ops --resume   # measure only the cases ops.json lacks
    PYTHONPATH=. .venv/bin/python -m benchmarks.ops --render   # rewrite ops.md from ops.json's tinyq figures and TFLM

Each case is a single-op (or few-op) int8 model of one of the operators tinyq gained for #28, at a realistic
size, made by the test suite's own builders (tests/test_*.py, imported, not copied). tinyq's figure is the
instructions of the steps that compute the op, counted by QEMU -icount on the firmware's per-op profile, through
the same library calls as `tinyq build` and `tinyq flash --emulator qemu --per-layer` (benchmarks.run.measure).
The TFLM + CMSIS-NN figures are constants measured once in a session of our own (see TFLM below); nothing here
builds TFLM.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the tests' model builders (conftest.cached_tflite caches them)

#: A tensor of 24x24x16 for the element-wise ops (9,216 values); the binary ops whose second operand is a
#: computed 8-channel tensor (the tests' "same" operand: a 1x1 conv) take 24x48x8, as many values.
HWC = (24, 24, 16)
HWC8 = (24, 48, 8)


@dataclass(frozen=True)
class Case:
    """One op model: ``op`` is the opcode measured (every instance of it in the model, summed)."""

    name: str          # the row's key (the op, or op/variant)
    op: str
    shape: str         # what the op computes, for the table
    make: Callable[[], bytes]


# ---- builders: the test suite's, at benchmark sizes ----

def _tf(key, fn, shape, lo=-1.0, hi=1.0):
    from test_move import tf_int8

    return lambda: tf_int8(f"ops-bench-{key}", fn, (1, *shape), lo, hi)


def _tconv():
    from test_transpose_conv import tconv_tflite

    return tconv_tflite((12, 12, 16), 8, 3, 2, "same", True, None)


def _attention():
    from test_batch_matmul import keras_tflite

    return keras_tflite("attention", (16, 24))


def _lstm():
    return (ROOT / "tests" / "data" / "lstm" / "gesture.tflite").read_bytes()


def _unary(kind, lo, hi, shape=HWC):
    from test_unary import unary_tflite

    return lambda: unary_tflite(kind, lo, hi, shape)


def _elu():
    from test_unary import as_elu, unary_tflite

    return as_elu(unary_tflite("hard_swish", -3.0, 3.0, HWC))


def _binary(op, other="same", shape=HWC8):
    from test_binary import binary_tflite

    return lambda: binary_tflite(op, other, shape=shape)


def _prelu():
    from test_binary import prelu_tflite

    return prelu_tflite([1, 2], shape=HWC)


def _leaky():
    from test_leaky_relu import leaky_tflite

    return leaky_tflite(HWC, 0.2, -1.0)


def _log_softmax():
    from test_log_softmax import log_softmax_tflite

    return log_softmax_tflite((64, 10), -8.0, 8.0)


def _resize(method):
    from test_resize import function_tflite, resize_fn

    return lambda: function_tflite((12, 12, 16), ("ops-bench", method, 24), resize_fn(method, (24, 24), False, True))


def _reduce(what, keep=False):
    from test_reduce import function_tflite

    def fn(x):
        import tensorflow as tf

        f = {"max": tf.reduce_max, "sum": tf.reduce_sum, "mean": tf.reduce_mean}[what]
        return f(x, axis=[1, 2], keepdims=keep)

    return lambda: function_tflite(HWC, ("ops-bench", what, keep), fn)


def _l2():
    from test_reduce import function_tflite, l2_fn

    return function_tflite(HWC, ("ops-bench", "l2"), l2_fn)


def _argmax():
    from test_reduce import arg_fn, function_tflite

    return function_tflite(HWC, ("ops-bench", "argmax"), arg_fn("max", -1, "int32"))


def _tfn(name):
    """TensorFlow functions of a (1, 24, 24, 16) input (DEPTH_TO_SPACE: of (1, 12, 12, 64))."""
    import tensorflow as tf

    perm = [5, 2, 9, 0, 14, 7, 1, 12, 3, 15, 10, 4, 8, 13, 6, 11]
    return {
        "strided_slice": lambda x: x[:, 2:22, 1:23:2, :],
        "split": lambda x: tf.concat(tf.split(x, 2, axis=-1)[::-1], axis=-1),
        "pack": lambda x: tf.stack(tf.unstack(x, axis=1)[::-1], axis=2),
        "transpose": lambda x: tf.transpose(x, [0, 3, 1, 2]),
        "gather": lambda x: tf.gather(x, perm, axis=3),
        "depth_to_space": lambda x: tf.nn.depth_to_space(x, 2),
        "mirror_pad": lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"),
        "padv2": lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=0.5),
        "pad": lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]),
        # x and a rescaled copy of it, concatenated: the converter requantizes x to the output's scale (an int8 ->
        # int8 QUANTIZE), the int8 CONCATENATION spec wanting one scale for all.
        "concat": lambda x: tf.concat([x, 3.0 * x], axis=-1),
    }[name]


def _move(name, shape=HWC):
    def make():
        return _tf(name, _tfn(name), shape)()
    return make


def _requant():
    from test_quantize_op import quantize_tflite

    return quantize_tflite((1, *HWC), 0.0235, -1, 0.0705, -128)


def _float_ends():
    """An int8 model with float32 input and output (TensorFlow's default without inference_input_type): QUANTIZE
    float -> int8 of the 24x24x16 input, a 2x2 max pool, DEQUANTIZE of its 12x12x16 output."""
    from conftest import cached_tflite

    def make():
        import tensorflow as tf

        f = tf.function(lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"))
        cf = f.get_concrete_function(tf.TensorSpec((1, *HWC), tf.float32))
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, *HWC)).astype(np.float32)] for _ in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return conv.convert()

    return cached_tflite(["ops-bench", "float-ends", HWC], make)


_E = "24x24x16"
CASES: tuple[Case, ...] = (
    Case("TRANSPOSE_CONV", "TRANSPOSE_CONV", "12x12x16 -> 24x24x8, 3x3 stride 2 same, bias", _tconv),
    Case("BATCH_MATMUL", "BATCH_MATMUL", "attention 16x24, 3 Dense(8): QK^T 16x8x16 and AV 16x16x8 (2 ops)",
         _attention),
    Case("UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM(32) on 50x6 (gesture model)", _lstm),
    Case("HARD_SWISH", "HARD_SWISH", _E, _unary("hard_swish", -6.0, 6.0)),
    Case("LEAKY_RELU", "LEAKY_RELU", _E + ", slope 0.2", _leaky),
    Case("PRELU", "PRELU", _E + ", alpha per channel", _prelu),
    Case("ELU", "ELU", _E, _elu),
    Case("EXP", "EXP", _E, _unary("exp", -4.0, 2.0)),
    Case("LOG_SOFTMAX", "LOG_SOFTMAX", "64x10, over the last axis", _log_softmax),
    Case("RSQRT", "RSQRT", _E, _unary("rsqrt", 0.01, 4.0)),
    Case("SUB", "SUB", "24x48x8 - 24x48x8", _binary("sub")),
    Case("MAXIMUM", "MAXIMUM", "24x48x8, 24x48x8", _binary("max")),
    Case("MINIMUM", "MINIMUM", "24x48x8, 24x48x8", _binary("min")),
    Case("SQUARED_DIFFERENCE", "SQUARED_DIFFERENCE", "24x48x8, 24x48x8", _binary("sqd")),
    # (a constant divisor is folded into a MUL by the converter: the divisor is computed, as the other binary ops)
    Case("DIV", "DIV", "24x48x8 / 24x48x8", _binary("div")),
    Case("RESIZE_BILINEAR", "RESIZE_BILINEAR", "12x12x16 -> 24x24x16, half-pixel centers", _resize("bilinear")),
    Case("RESIZE_NEAREST_NEIGHBOR", "RESIZE_NEAREST_NEIGHBOR", "12x12x16 -> 24x24x16, half-pixel centers",
         _resize("nearest")),
    Case("REDUCE_MAX", "REDUCE_MAX", _E + " -> 16 (axes 1, 2)", _reduce("max")),
    Case("SUM", "SUM", _E + " -> 16 (axes 1, 2)", _reduce("sum")),
    Case("MEAN", "MEAN", _E + " -> 16 (axes 1, 2)", _reduce("mean")),
    Case("STRIDED_SLICE", "STRIDED_SLICE", _E + " -> 20x11x16", _move("strided_slice")),
    Case("SPLIT", "SPLIT", _E + " -> 2 x 24x24x8 (then concatenated)", _move("split")),
    Case("CONCATENATION", "CONCATENATION", "2 x 24x24x8 -> 24x24x16 (the SPLIT model)", _move("split")),
    Case("UNPACK", "UNPACK", _E + " -> 24 x 24x16", _move("pack")),
    Case("PACK", "PACK", "24 x 24x16 -> 24x24x16 (axis 2)", _move("pack")),
    Case("TRANSPOSE", "TRANSPOSE", _E + " -> 16x24x24", _move("transpose")),
    Case("GATHER", "GATHER", _E + ", 16 channel indices", _move("gather")),
    Case("DEPTH_TO_SPACE", "DEPTH_TO_SPACE", "12x12x64 -> 24x24x16", _move("depth_to_space", (12, 12, 64))),
    Case("MIRROR_PAD", "MIRROR_PAD", _E + " -> 26x26x16, reflect", _move("mirror_pad")),
    Case("PADV2", "PADV2", _E + " -> 26x26x16, value 0.5", _move("padv2")),
    Case("PAD", "PAD", _E + " -> 26x26x16", _move("pad")),
    Case("L2_NORMALIZATION", "L2_NORMALIZATION", _E + ", over channels", _l2),
    Case("ARG_MAX", "ARG_MAX", _E + " -> 24x24 int32", _argmax),
    Case("QUANTIZE/int8", "QUANTIZE", _E + ", int8 -> int8, scale x1/3", _requant),
    Case("CONCATENATION/requant", "CONCATENATION", "2 x 24x24x16 -> 24x24x32 (x and a MUL's output, one scale)",
         _move("concat")),
    Case("QUANTIZE/float", "QUANTIZE", _E + ", float32 -> int8", _float_ends),
    Case("DEQUANTIZE", "DEQUANTIZE", "12x12x16, int8 -> float32", _float_ends),
)
BY_NAME = {c.name: c for c in CASES}

#: TFLM + CMSIS-NN, measured in our own session (2026-12), not rebuilt here. TFLM main 90b983c2 (the commit of
#: shared/FACTS.md's whole-model figures) with what its download scripts pin: CMSIS-NN 4ab83cc3, CMSIS_6 5782d6f8,
#: Cortex_DFP c2c70a97, flatbuffers v25.9.23 (+ TFLM's patch), gemmlowp 719139ce, ruy d3712831, kissfft v130.
#: Built with TFLM's own Makefile: TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp OPTIMIZED_KERNEL_DIR=cmsis_nn
#: BUILD_TYPE=release_with_logs (-DNDEBUG), arm-none-eabi-gcc 12.2 (-mcpu=cortex-m4, FPv4-SP-D16, hard float),
#: core -Os, kernels and CMSIS-NN -O2. Run on the same QEMU machine (mps2-an386, -icount shift=0) from a harness
#: of our own (start-up, CMSDK UART, SysTick), MicroMutableOpResolver, a MicroProfilerInterface timing each op's
#: Invoke with SysTick (x40 = instructions), on the same .tflite files and the first input of tinyq's verify.npz.
#: Per case: (instructions of the op, summed over its instances; the kernel that ran: "CMSIS-NN" or "reference";
#: whether TFLM's output equals tinyq's). None: TFLM has no int8 kernel for the op.
TFLM: dict[str, tuple[int, str, bool] | None] = {
    "TRANSPOSE_CONV": (767080, "CMSIS-NN", True),
    "BATCH_MATMUL": (33880, "CMSIS-NN", True),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1420200, "CMSIS-NN", True),
    "HARD_SWISH": (773960, "reference", True),
    "LEAKY_RELU": (442640, "reference", True),
    "PRELU": (481640, "reference", True),
    "ELU": (73960, "reference", True),
    "EXP": None,  # TFLM's EXP is float only (exp.cc: "input->type != kTfLiteFloat32")
    "LOG_SOFTMAX": (221120, "reference", True),
    "RSQRT": (3955480, "reference", True),
    "SUB": (834760, "reference", True),
    "MAXIMUM": (74320, "CMSIS-NN", True),
    "MINIMUM": (74280, "CMSIS-NN", True),
    "SQUARED_DIFFERENCE": (1013040, "reference", True),
    "RESIZE_BILINEAR": (632160, "reference", True),
    "RESIZE_NEAREST_NEIGHBOR": (46000, "reference", True),
    "REDUCE_MAX": (1205160, "reference", True),
    "SUM": (1197000, "reference", True),
    "MEAN": (1197040, "reference", True),
    # TFLM on the Cortex-M4 differs from tinyq (and from the x86 tflite_micro reference tinyq matches) on 9,172 of
    # 9,216 outputs, by up to 250: not a timing question, reported for review (issue #28).
    "DIV": (1737800, "reference", False),
    "STRIDED_SLICE": (14520, "reference", True),
    "SPLIT": (84320, "reference", True),
    "CONCATENATION": (44360, "reference", True),
    "UNPACK": (38000, "reference", True),
    "PACK": (43760, "reference", True),
    "TRANSPOSE": (55200, "CMSIS-NN", True),
    "GATHER": (248520, "reference", True),
    "DEPTH_TO_SPACE": (44000, "reference", True),
    "MIRROR_PAD": (1413840, "reference", True),
    "PADV2": (8680, "CMSIS-NN", True),
    "PAD": (8600, "CMSIS-NN", True),
    "L2_NORMALIZATION": (656040, "reference", True),
    "ARG_MAX": (101680, "reference", True),
    "QUANTIZE/int8": (410040, "reference", True),
    "CONCATENATION/requant": (46680, "reference", True),
    "QUANTIZE/float": (295120, "reference", True),
    "DEQUANTIZE": (255160, "reference", True),
}


_BUILT: dict[bytes, tuple] = {}  # one build and run per model, for the cases that share it


def measure_case(case: Case, export: Path | None = None) -> dict:
    """Build ``case`` for nano33 and run it on the QEMU twin as benchmarks.run.measure does (the library calls of
    `tinyq build` and `tinyq flash --emulator qemu --per-layer`); the op's figures."""
    import shutil

    from tinyq import pipeline
    from tinyq.graph import parse_tflite
    from tinyq.model.tfenv import quiet

    with quiet():
        tflite = case.make()
    g = parse_tflite(tflite)
    targets = [i for i, op in enumerate(g.operators) if op.opcode == case.op]
    if not targets:
        raise RuntimeError(f"{case.name}: the model has no {case.op} ({[op.opcode for op in g.operators]})")
    if tflite not in _BUILT:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{case.name.replace('/', '_')}.tflite"
            path.write_bytes(tflite)
            built = pipeline.compile_model(path, "nano33", None, Path(tmp) / "b")
            m = pipeline.run_on(Path(tmp) / "b", emulator="qemu", runs=3, warmup=1, per_layer=True, timeout=600)
            layers = [{**step, "instructions": c} for step, (_, c) in zip(built.report.layers, m.layers)]
            if export is not None:
                export.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, export / path.name)
                shutil.copy(Path(tmp) / "b" / "verify.npz", export / (path.stem + ".verify.npz"))
        _BUILT[tflite] = (m, layers, path.stem)
    m, layers, model = _BUILT[tflite]
    steps = [l for l in layers if set(l["ops"]) & set(targets)]
    covered = sorted({i for l in steps for i in l["ops"]})
    return {
        "case": case.name, "op": case.op, "shape": case.shape, "model": model,
        "model_ops": [op.opcode for op in g.operators],
        "op_indices": targets,
        "tinyq_steps": [{"step": l["step"], "op": l["op"], "ops": l["ops"], "kernel": l["kernel"],
                         "instructions": l["instructions"]} for l in steps],
        # A step that also computes other ops (a fusion) is compared with TFLM's sum over the same ops.
        "compared_ops": covered,
        "tinyq_instructions": sum(l["instructions"] for l in steps),
        "tinyq_kernel": ", ".join(dict.fromkeys(l["kernel"] for l in steps)),
        "model_instructions": m.cycles,
        "outputs_bit_exact": m.outputs_match,
    }


def with_tflm(row: dict) -> dict:
    t = TFLM.get(row["case"], "missing")
    if t == "missing":
        return {**row, "tflm_instructions": None, "tflm_kernel": "not measured", "ratio": None}
    if t is None:
        return {**row, "tflm_instructions": None, "tflm_kernel": "no int8 kernel in TFLM", "ratio": None}
    n, kernel, same = t
    return {**row, "tflm_instructions": n, "tflm_kernel": kernel, "tflm_output_equal": same,
            "ratio": round(row["tinyq_instructions"] / n, 3)}


def table(rows: list[dict]) -> str:
    out = ["| op | shape | tinyq instructions | TFLM+CMSIS-NN instructions | tinyq / TFLM | TFLM kernel | TFLM output = tinyq's | tinyq kernel |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tf = f"{r['tflm_instructions']:,}" if r["tflm_instructions"] else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        same = {True: "yes", False: "NO"}.get(r.get("tflm_output_equal"), "-")
        fused = " (fused: " + " + ".join(r["model_ops"][i] for i in r["compared_ops"]) + ")" \
            if len(r["compared_ops"]) > len(r["op_indices"]) else ""
        out.append(f"| {r['case']} | {r['shape']} | {r['tinyq_instructions']:,}{fused} | {tf} | {ratio} | "
                   f"{r['tflm_kernel']} | {same} | {r['tinyq_kernel']} |")
    return "\n".join(out)


HEADER = """# tinyq per op against TFLM + CMSIS-NN (nano33 QEMU twin)

`python -m benchmarks.ops` writes this file. Each row is one operator tinyq gained for #28, in a single-op (or
few-op) int8 model at a realistic size, built by the test suite's own builders. Instructions are QEMU -icount
counts (`mps2-an386`, one SysTick tick per 40 instructions) of the op alone: tinyq's from its firmware's per-op
profile (`tinyq flash --emulator qemu --per-layer`), TFLM's from a MicroProfiler around each op's Invoke, summed
over the op's instances in the model. Ratio below 1: tinyq runs fewer instructions.

TFLM + CMSIS-NN was built and run in a session of our own (2026-12) and is not rebuilt by this script: TFLM main
90b983c2 with the dependencies its download scripts pin (CMSIS-NN 4ab83cc3, CMSIS_6 5782d6f8, Cortex_DFP c2c70a97,
flatbuffers v25.9.23, gemmlowp 719139ce, ruy d3712831), TFLM's Makefile with TARGET=cortex_m_generic
TARGET_ARCH=cortex-m4+fp OPTIMIZED_KERNEL_DIR=cmsis_nn BUILD_TYPE=release_with_logs (-DNDEBUG), arm-none-eabi-gcc
12.2, core -Os, kernels and CMSIS-NN -O2, on the same .tflite files and inputs. "TFLM kernel" says whether the op
ran CMSIS-NN's code or TFLM's reference kernel.
"""


def write(rows: list[dict]) -> None:
    behind = [r for r in rows if r["ratio"] is not None and r["ratio"] > 1]
    summary = (f"\n\n{len(rows)} cases; tinyq behind TFLM + CMSIS-NN on {len(behind)}"
               + (": " + ", ".join(r["case"] for r in behind) if behind else "") + ".\n")
    missing = [c.name for c in CASES if c.name not in {r["case"] for r in rows}]
    if missing:
        summary += f"\nNot measured yet (`--resume` goes on): {', '.join(missing)}.\n"
    (HERE / "ops.md").write_text(HEADER + "\n" + table(rows) + summary)
    (HERE / "ops.json").write_text(json.dumps(rows, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if "--render" in argv:  # the TFLM constants changed, tinyq's figures did not
        rows = [with_tflm({k: v for k, v in r.items() if not k.startswith(("tflm_", "ratio"))})
                for r in json.loads((HERE / "ops.json").read_text())]
        write(rows)
        print(table(rows))
        return 0
    export = None
    if "--export" in argv:
        k = argv.index("--export")
        export = Path(argv[k + 1])
        argv = argv[:k] + argv[k + 2:]
    names = [a for a in argv if not a.startswith("-")]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"error: unknown case {', '.join(unknown)} (hint: one of {', '.join(BY_NAME)})", file=sys.stderr)
        return 2
    resume = "--resume" in argv  # keep the rows ops.json already has (a run cut short goes on)
    done = {r["case"]: r for r in json.loads((HERE / "ops.json").read_text())} if resume else {}
    rows, failed = [], []
    for i, case in enumerate([BY_NAME[n] for n in names] or CASES):
        print(f"[{i + 1}/{len(names) or len(CASES)}] {case.name}", flush=True)
        if case.name in done:
            rows.append(with_tflm({k: v for k, v in done[case.name].items() if not k.startswith(("tflm_", "ratio"))}))
            continue
        try:
            rows.append(with_tflm(measure_case(case, export)))
        except Exception as e:  # one case's failure is reported, the others still run
            print(f"    FAILED: {type(e).__name__}: {e}", flush=True)
            failed.append(case.name)
            continue
        r = rows[-1]
        if not names:
            write(rows)  # as it goes: a run cut short keeps what it measured (--resume goes on from there)
        print(f"    tinyq {r['tinyq_instructions']:,}  TFLM {r['tflm_instructions']}  ratio {r['ratio']}  "
              f"bit-exact {r['outputs_bit_exact']}", flush=True)
    print(table(rows))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if not names:
        write(rows)
    return 0 if not failed and all(r["outputs_bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
