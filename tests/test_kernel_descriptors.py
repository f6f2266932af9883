"""The kernel descriptors (tinyq.compile.ops.kernel) against what is built from them and what uses them.

tq_params.h, tq_offsets.h and tq_layout.h are generated from the descriptors and committed: regenerating them gives the
same bytes (after changing a descriptor: ``python -m tinyq.compile.ops.gen``). Every lowering names a registered
kernel, passes its own struct and only that struct's fields, and every kernel's symbol is defined in its
family's C file.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tinyq.compile.ops import LOWERINGS, SUPPORTED_OPS
from tinyq.compile.ops.cexpr import FORMULAS
from tinyq.compile.ops.gen import KERNELS_DIR, generated
from tinyq.compile.ops.kernel import KERNELS, STRUCTS, check_call


@pytest.mark.parametrize("name", ["tq_params.h", "tq_offsets.h", "tq_layout.h"])
def test_generated_headers_are_current(name):
    text = generated()[KERNELS_DIR / name]
    assert (KERNELS_DIR / name).read_text() == text, f"{name} is stale: run python -m tinyq.compile.ops.gen"


def test_readme_operator_table_is_current():
    """README.md's operator table is what the descriptors and TFLM's op list give (gen writes it); every op tinyq
    runs is in it with its kernels, every one TFLM lacks an int8 kernel for said so."""
    from tinyq.compile.ops import SUPPORTED_OPS
    from tinyq.compile.ops.gen import README, op_table

    text = README.read_text(encoding="utf-8")
    assert generated()[README] == text, "README.md's operator table is stale: run python -m tinyq.compile.ops.gen"
    rows = {ln.split(" | ")[0][2:]: ln for ln in op_table().splitlines() if ln.startswith("| ") and " | " in ln}
    from tinyq.compile.ops.kernels.float_ends import FLOAT_OPS

    for op in SUPPORTED_OPS:
        run = "| float32 where the converter leaves it" if op in FLOAT_OPS else "| int8, bit-exact with"
        assert run in rows[op] and "`tq_" in rows[op], rows[op]
    assert "TFLite's reference kernels" in rows["GELU"] and "| no |" in rows["GELU"]


def test_no_struct_prototype_or_formula_is_written_by_hand_too():
    """The structs, kernel prototypes and scratch formulas are in tq_params.h only."""
    for path in KERNELS_DIR.glob("*.[ch]"):
        if path.name == "tq_params.h":
            continue
        text = path.read_text()
        for s in STRUCTS:
            assert not re.search(r"\}\s*" + s + r"\s*;", text), f"{path.name} defines {s}"
        for k in KERNELS:
            assert not re.search(r"^void " + k + r"\(.*\);", text, re.M), f"{path.name} declares {k}"
        for f in FORMULAS:
            assert not re.search(r"\b" + f + r"\([^;]*\)\s*\{", text), f"{path.name} defines {f}"


def test_formulas_evaluate_as_their_c(tmp_path):
    """Each scratch formula, evaluated in Python and compiled from its generated C, on a spread of layers."""
    import numpy as np

    from tinyq.compile.ops import scratch

    rng = np.random.default_rng(0)
    names = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_pairs", "dil_w", "fast", "act_min", "act_max",
             "stride_h", "stride_w", "pad_h", "pad_w", "small_patch", "transposed", "w16", "planes")
    rows, want = [], []
    for _ in range(300):
        p = dict(in_h=int(rng.integers(1, 50)), in_w=int(rng.integers(1, 50)), in_c=int(rng.integers(1, 130)),
                 out_c=int(rng.integers(1, 130)), k_pairs=int(rng.integers(1, 300)), dil_w=int(rng.integers(1, 3)),
                 fast=int(rng.integers(0, 2)), act_min=int(rng.choice([-128, -100, 0])), act_max=int(rng.choice([127, 90])),
                 stride_h=int(rng.integers(1, 3)), stride_w=int(rng.integers(1, 3)), pad_h=int(rng.integers(0, 2)),
                 pad_w=int(rng.integers(0, 2)), small_patch=int(rng.choice([0, 0, 2, 5])),
                 transposed=int(rng.integers(0, 2)), w16=int(rng.choice([0, 1, 2, 3])), planes=int(rng.integers(1, 3)))
        p["out_h"], p["out_w"] = max(1, p["in_h"] // p["stride_h"]), max(1, p["in_w"] // p["stride_w"])
        rows.append(" ".join(str(p[n]) for n in names))
        want.append([f.eval(p) for f in (scratch.conv, scratch.conv_add, scratch.depthwise3x3, scratch.dw_plane)])
    harness = tmp_path / "f.c"
    harness.write_text("#include <stdio.h>\n#include \"tq_kernels.h\"\nint main(void) {\n    int v[19];\n"
                       "    while (1) {\n        for (int i = 0; i < 19; ++i) if (scanf(\"%d\", &v[i]) != 1) return 0;\n"
                       "        tq_conv_params_t p = {0};\n"
                       + "".join(f"        p.{n} = v[{i}];\n" for i, n in enumerate(names))
                       + "        printf(\"%u %u %u %u\\n\", tq_conv2d_scratch_bytes(&p), tq_conv2d_add_scratch_bytes(&p),\n"
                         "               tq_depthwise3x3_scratch_bytes(&p), tq_depthwise3x3_plane_scratch_bytes(&p));\n"
                         "    }\n}\n")
    exe = tmp_path / "f"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-conversion", "-I", str(KERNELS_DIR),
                    str(harness), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], input="\n".join(rows) + "\n", capture_output=True, text=True, check=True).stdout
    assert [[int(x) for x in line.split()] for line in got.splitlines()] == want


def test_every_kernel_is_defined_in_its_family_file():
    for k in KERNELS.values():
        src = (KERNELS_DIR / k.c_file).read_text()
        assert re.search(r"^void " + k.symbol + r"\(", src, re.M), f"{k.symbol} not in {k.c_file}"
        if k.asm_file:
            asm = (KERNELS_DIR / k.asm_file).read_text()
            for v in k.variants:
                assert re.search(r"^\s*(FUNC\s+|\w+\s+)" + v + r"\b", asm, re.M), f"{v} not in {k.asm_file}"
                assert re.search(r"^void " + v + r"\(", src, re.M), f"{v}'s C twin not in {k.c_file}"


def test_every_opcode_has_a_kernel():
    covered = {op for k in KERNELS.values() for op in k.opcodes}
    assert covered == set(SUPPORTED_OPS) == set(LOWERINGS)


def test_layout_matches_the_compiler_on_a_32_bit_target(tmp_path):
    """tq_params.h asserts tq_offsets.h against the compiler's offsetof on 32-bit targets: the
    Cortex-M4 compiler accepts it (the static asserts would fail it otherwise)."""
    cc = "arm-none-eabi-gcc"
    src = tmp_path / "t.c"
    src.write_text('#include "tq_kernels.h"\nint tq_t;\n')
    try:
        subprocess.run([cc, "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Wall", "-Werror", "-c", "-I",
                        str(KERNELS_DIR), str(src), "-o", str(tmp_path / "t.o")], check=True)
    except FileNotFoundError:
        pytest.skip("no arm-none-eabi-gcc")


def test_lowered_calls_match_their_descriptors(zoo):
    from tinyq.graph import parse_tflite
    from tinyq.compile.ops import lower

    for name in ("kws_ds_cnn", "vww_mobilenet_v1_025", "ic_resnet8"):
        g = parse_tflite(zoo(name))
        for op in g.operators:
            check_call(lower(g, op))
