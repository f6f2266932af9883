"""Unary element-wise ops by table (tinyq/compile/ops/kernels/unary.py + lut.py, firmware/kernels/tq_lut.c),
bit-exact with their reference kernels.

One-op Keras models converted to full int8 over several input ranges (the zero point at either end, tiny
and large scales) and an odd size (the kernel's byte tail), run by the generated C on the host on every int8
value and on random tensors, byte for byte against:
  - tflite_micro (TflmReference) for HARD_SWISH, ABS, RSQRT, ELU, LOGISTIC and TANH, which it has int8
    kernels for;
  - TFLite's reference kernels (tf.lite.Interpreter with BUILTIN_REF) for EXP, LOG, SQRT and GELU, which
    tflite_micro runs in float only (EXP, LOG, SQRT) or not at all (GELU).
TensorFlow's converter keeps ELU in float (DEQUANTIZE, ELU, QUANTIZE); the int8 ELU here is a converted
one-op int8 model re-coded as ELU (what another tool chain can give), which TFLM runs.
SQRT and RSQRT fail in their reference kernels on an input below the zero point (a negative value): those
inputs are left out of the comparison (tinyq gives sqrt(0) and 127 there, see unary.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import LiteReference, TflmReference, reference_for
from tinyq.pipeline import run_on_host

#: (op, Keras layer kind, calibration range low, high, shape)
CASES = [
    ("HARD_SWISH", "hard_swish", -6.0, 6.0, (4, 4, 16)),
    ("HARD_SWISH", "hard_swish", 0.0, 4.0, (3, 5, 7)),        # zero point -128
    ("HARD_SWISH", "hard_swish", -5.0, 0.0, (256,)),          # zero point 127
    ("HARD_SWISH", "hard_swish", -0.05, 0.05, (256,)),        # tiny scale
    ("HARD_SWISH", "hard_swish", -80.0, 120.0, (256,)),       # large scale
    ("HARD_SWISH", "hard_silu", -3.0, 5.0, (2, 3, 11)),
    ("ABS", "abs", -4.0, 4.0, (256,)),
    ("ABS", "abs", -2.0, 0.0, (3, 5, 7)),                      # zero point 127
    ("ABS", "abs", -0.01, 0.03, (256,)),
    ("ABS", "abs", -300.0, 100.0, (256,)),
    ("RSQRT", "rsqrt", 0.01, 4.0, (256,)),
    ("RSQRT", "rsqrt", 0.5, 200.0, (3, 5, 7)),
    ("RSQRT", "rsqrt", 0.0001, 0.01, (256,)),
    ("EXP", "exp", -4.0, 2.0, (256,)),
    ("EXP", "exp", -8.0, 0.0, (3, 5, 7)),                     # zero point 127
    ("EXP", "exp", 0.0, 3.0, (256,)),                         # zero point -128
    ("EXP", "exp", -0.02, 0.02, (256,)),
    ("LOG", "log", 0.1, 4.0, (256,)),
    ("LOG", "log", 0.001, 0.05, (3, 5, 7)),
    ("LOG", "log", 1.0, 900.0, (256,)),
    ("SQRT", "sqrt", 0.0, 4.0, (256,)),
    ("SQRT", "sqrt", 0.0, 0.02, (3, 5, 7)),
    ("SQRT", "sqrt", 0.0, 5000.0, (256,)),
    ("GELU", "gelu", -4.0, 4.0, (256,)),
    ("GELU", "gelu_tanh", -3.0, 6.0, (3, 5, 7)),
    ("GELU", "gelu", -0.1, 0.1, (256,)),
    ("LOGISTIC", "sigmoid", -6.0, 6.0, (256,)),
    ("LOGISTIC", "sigmoid", 0.0, 4.0, (3, 5, 7)),             # zero point -128
    ("LOGISTIC", "sigmoid", -0.05, 0.05, (256,)),
    ("LOGISTIC", "sigmoid", -80.0, 120.0, (256,)),            # past the input range radius both ways
    ("TANH", "tanh", -3.0, 3.0, (256,)),
    ("TANH", "tanh", -5.0, 0.0, (3, 5, 7)),                   # zero point 127
    ("TANH", "tanh", -0.002, 0.001, (256,)),
    ("TANH", "tanh", -20.0, 1.0, (256,)),
]

#: Ops tflite_micro has int8 kernels for; the others are compared with TFLite's reference kernels.
TFLM_OPS = {"HARD_SWISH", "ABS", "RSQRT", "ELU", "LOGISTIC", "TANH"}


def _layer(kind: str):
    import keras

    ops = keras.ops
    if kind in ("hard_swish", "hard_silu", "gelu", "sigmoid", "tanh"):
        return keras.layers.Activation(kind)
    fn = {"abs": ops.abs, "rsqrt": ops.rsqrt, "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt,
          "gelu_tanh": lambda t: ops.gelu(t, approximate=True), "neg": ops.negative, "square": ops.square}[kind]
    return keras.layers.Lambda(fn)


def unary_tflite(kind: str, lo: float, hi: float, shape) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        m = keras.Model(inp, _layer(kind)(inp))
        calib = np.random.default_rng(1).uniform(lo, hi, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["unary", kind, lo, hi, shape], make)


def as_elu(tflite: bytes) -> bytes:
    """A one-op int8 model re-coded as ELU (its tensors and their quantization as converted)."""
    from hostile import edit
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    def fn(m, sg):
        op = sg.operators[0]
        code = m.operatorCodes[op.opcodeIndex]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ELU
        code.version = 1
        op.builtinOptionsType, op.builtinOptions = 0, None
    return edit(tflite, fn)


def reference(op: str, tflite: bytes):
    """The reference the build checks the model against (tinyq.model.reference.reference_for): TFLM where it has
    an int8 kernel for the op, TFLite's reference kernels (BUILTIN_REF) where it has not."""
    ref = reference_for(tflite)
    assert isinstance(ref, TflmReference if op in TFLM_OPS else LiteReference), (op, type(ref))
    return ref


def inputs_for(g, op: str, n_random: int = 6) -> np.ndarray:
    """Every int8 value (tiled over the input, as many tensors as it takes), then random tensors; for SQRT
    and RSQRT only values at or above the zero point (the references fail below it)."""
    x = g.input_tensors[0]
    shape, n = tuple(x.shape), int(np.prod(x.shape))
    lo = int(x.quant.zero_point[0]) if op in ("SQRT", "RSQRT") else -128
    values = np.arange(lo, 128, dtype=np.int8)
    rng = np.random.default_rng(2)
    every = [np.resize(np.roll(values, -k * n), n) for k in range(-(-len(values) // n))]
    rand = [rng.integers(lo, 128, n) for _ in range(n_random)]
    return np.stack(every + rand).astype(np.int8).reshape(-1, *shape)


def check_bit_exact(op: str, tflite: bytes) -> None:
    g = parse_tflite(tflite)
    assert [o.opcode for o in g.operators] == [op], [o.opcode for o in g.operators]
    x = inputs_for(g, op)
    ref = reference(op, tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{c[2]}-{c[3]}-{len(c[4])}d" for c in CASES])
def test_unary_bit_exact(case):
    op, kind, lo, hi, shape = case
    check_bit_exact(op, unary_tflite(kind, lo, hi, shape))


@pytest.mark.parametrize("base", [("hard_swish", -1.0, 3.0, (256,)), ("hard_swish", -6.0, 2.0, (3, 5, 7)),
                                  ("abs", -0.02, 0.05, (256,))], ids=["hs", "hs-wide", "tiny"])
def test_elu_bit_exact_with_tflm(base):
    """TFLM's int8 ELU (its float32 table, elu.cc) on converted int8 models re-coded as ELU."""
    check_bit_exact("ELU", as_elu(unary_tflite(*base)))


def test_the_table_module_matches_the_references_on_every_input():
    """The tables themselves (no C): each op's table function against its reference on all 256 inputs."""
    from tinyq.compile.ops.kernels.unary import op_table

    for op, kind, lo, hi, shape in CASES[::3]:
        tflite = unary_tflite(kind, lo, hi, shape)
        g = parse_tflite(tflite)
        table = np.array(op_table(g, g.operators[0]))
        x = inputs_for(g, op, n_random=0)
        ref = reference(op, tflite)
        got = np.stack([ref.run(s) for s in x]).ravel()
        np.testing.assert_array_equal(table[x.ravel().astype(int) + 128], got, err_msg=f"{op} {lo}..{hi}")


def test_keras_activations_that_become_supported_ops():
    """keras.layers.Activation(...) in int8: hard_silu is HARD_SWISH, gelu is GELU (a table: TFLite only),
    swish/silu are LOGISTIC + MUL, hard_sigmoid is ADD + MUL, softplus is EXP + ADD + LOG (EXP and LOG:
    TFLite only, so the model is compared with TFLite's reference kernels); all run bit-exact."""
    expect = {"hard_silu": ["HARD_SWISH"], "gelu": ["GELU"], "swish": ["LOGISTIC", "MUL"],
              "silu": ["LOGISTIC", "MUL"], "hard_sigmoid": ["ADD", "MUL"], "softplus": ["EXP", "ADD", "LOG"]}
    for kind, ops in expect.items():
        tflite = activation_tflite(kind)
        g = parse_tflite(tflite)
        assert [o.opcode for o in g.operators] == ops, (kind, [o.opcode for o in g.operators])
        x = inputs_for(g, "")
        ref = TflmReference(tflite) if kind not in ("gelu", "softplus") else LiteReference(tflite)
        np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]), err_msg=kind)


def activation_tflite(kind: str) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input((64,))
        m = keras.Model(inp, keras.layers.Activation(kind)(inp))
        return quantize_keras(m, np.random.default_rng(1).uniform(-4, 4, size=(32, 64)).astype(np.float32))

    return cached_tflite(["activation", kind], make)


@pytest.mark.parametrize("kind,op", [("neg", "NEG"), ("square", "SQUARE")])
def test_ops_without_an_int8_kernel_are_refused(kind, op):
    """NEG and SQUARE have no int8 kernel in TFLM or TFLite: the converter keeps them in float between a
    DEQUANTIZE and a QUANTIZE, and an int8 one (re-coded) runs nowhere. tinyq runs NEG there in float (exact) and
    refuses SQUARE, naming the op and why; an int8 one it refuses either way."""
    from hostile import with_opcode
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from tinyq.compile.analyze import analyze
    from tinyq.compile.ops import SUPPORTED_OPS

    tflite = unary_tflite(kind, -4.0, 4.0, (256,))
    g = parse_tflite(tflite)
    assert [o.opcode for o in g.operators] == ["DEQUANTIZE", op, "QUANTIZE"]
    int8 = parse_tflite(with_opcode(unary_tflite("abs", -4.0, 4.0, (256,)), getattr(schema.BuiltinOperator, op)))
    if op == "NEG":  # in float between int8 ops (LayerNormalization's): tinyq runs it, exact, as TFLM does
        analyze(g)
        x = inputs_for(g, op)
        np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([TflmReference(tflite).run(s) for s in x]))
        from tinyq.compile.plan import plan_model

        with pytest.raises(UnsupportedModelError, match="NEG of INT8"):
            plan_model(int8)
        return
    assert op not in SUPPORTED_OPS
    with pytest.raises(UnsupportedModelError, match=f"op 1 {op}: left in float by TensorFlow's int8 converter"):
        analyze(g)
    with pytest.raises(UnsupportedModelError, match=f"op {op} is not supported"):
        analyze(int8)


def test_keras_elu_stays_float_and_is_refused():
    """keras.layers.ELU converts to a float ELU between DEQUANTIZE and QUANTIZE: refused, naming the ELU and why."""
    from tinyq.compile.analyze import analyze

    def make():
        import keras

        from tinyq.model.quantize import quantize_keras

        inp = keras.Input((64,))
        return quantize_keras(keras.Model(inp, keras.layers.ELU()(inp)),
                              np.random.default_rng(1).uniform(-4, 4, size=(32, 64)).astype(np.float32))

    g = parse_tflite(cached_tflite(["keras-elu"], make))
    assert [o.opcode for o in g.operators] == ["DEQUANTIZE", "ELU", "QUANTIZE"]
    with pytest.raises(UnsupportedModelError, match="op 1 ELU: left in float by TensorFlow's int8 converter"):
        analyze(g)


def test_hard_swish_refuses_what_tflm_refuses():
    """TFLM's HardSwishPrepare fails when the output multiplier would need a left shift (output scale at or below
    input scale / 128, a multiplier of 1 or more); the lowering refuses the same layer."""
    from tinyq.compile.ops.kernels.unary import hard_swish_table

    hard_swish_table(1.0, 0, 1.0 / 64, 0)  # a multiplier of 1/2: a right shift
    for s_out in (1.0 / 128, 1e-4):
        with pytest.raises(UnsupportedModelError, match="HARD_SWISH"):
            hard_swish_table(1.0, 0, s_out, 0)


def test_lut_ops_are_supported_and_run_in_place():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.ops.kernels.lut import KERNEL
    from tinyq.compile.plan import plan_model

    assert set(KERNEL.opcodes) <= SUPPORTED_OPS
    for op, kind, lo, hi, shape in CASES[::4]:
        g = parse_tflite(unary_tflite(kind, lo, hi, shape))
        o = g.operators[0]
        call = lower(g, o)
        check_call(call)
        assert call.function == "tq_lut_s8" and call.overwrites == (o.inputs[0],)
        assert len(call.arrays[0].values) == 256
        assert any(c.function == "tq_lut_s8" for c in plan_model(g).calls)


def test_lut_kernel_on_unaligned_and_short_runs():
    """tq_lut_s8 with every alignment of its output and sizes below, at and past a word (compiled on the
    host): out[i] = table[(uint8_t)in[i]], also in place."""
    import ctypes
    import subprocess
    import tempfile
    from pathlib import Path

    from tinyq.compile.hostrun import CFLAGS
    from tinyq.resources import FIRMWARE_DIR

    kern = FIRMWARE_DIR / "kernels"
    with tempfile.TemporaryDirectory() as d:
        so = Path(d) / "lut.so"
        subprocess.run(["gcc", *CFLAGS, "-shared", "-fPIC", "-I", str(kern), str(kern / "tq_lut.c"), "-o", str(so)],
                       check=True)
        lib = ctypes.CDLL(str(so))

        class Params(ctypes.Structure):
            _fields_ = [("size", ctypes.c_uint32), ("table", ctypes.POINTER(ctypes.c_int8))]

        table = (ctypes.c_int8 * 256)(*np.random.default_rng(3).integers(-128, 128, 256))
        t = np.frombuffer(table, np.int8)
        rng = np.random.default_rng(4)
        for size in (0, 1, 3, 4, 5, 8, 13, 64, 67):
            for off_in in range(4):
                for off_out in range(4):
                    src = (ctypes.c_int8 * 80)(*rng.integers(-128, 128, 80))
                    dst = (ctypes.c_int8 * 80)()
                    p = Params(size, table)
                    lib.tq_lut_s8(ctypes.byref(p), ctypes.byref(src, off_in), ctypes.byref(dst, off_out))
                    want = t[np.frombuffer(src, np.uint8)[off_in:off_in + size]]
                    assert np.array_equal(np.frombuffer(dst, np.int8)[off_out:off_out + size], want)
                    before = np.frombuffer(src, np.int8).copy()
                    lib.tq_lut_s8(ctypes.byref(p), ctypes.byref(src, off_in), ctypes.byref(src, off_in))
                    want = t[before.view(np.uint8)[off_in:off_in + size]]
                    assert np.array_equal(np.frombuffer(src, np.int8)[off_in:off_in + size], want)


def test_a_model_tflm_cannot_run_builds_against_tflites_reference_kernels(tmp_path):
    """GELU has no TFLM kernel: `tinyq build` checks the generated C against TensorFlow Lite's reference kernels
    instead, and says so (build.json's reference; no TFLM arena)."""
    import json

    from click.testing import CliRunner

    from tinyq.cli import cli

    (tmp_path / "gelu.tflite").write_bytes(unary_tflite("gelu", -4.0, 4.0, (256,)))
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "gelu.tflite"), "--board", "nano33", "-o",
                                 str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["reference"] == "TensorFlow Lite's reference kernels" and rep["host_bit_exact_inputs"] == 8
    assert rep["tflm_arena_bytes"] is None
