"""SVDF (tinyq/compile/ops/kernels/svdf.py, firmware/kernels/tq_svdf.c) bit-exact with TFLM.

TensorFlow's converter does not make an SVDF from a Keras layer, so the models are written here with the flatbuffer
schema's object API (the one tflite_micro ships, as tests/hostile.py uses): TFLM's int8 form, an int8 input,
output and feature weights, int16 time weights and activation state (a variable tensor), an int32 bias or none,
random weights and scales chosen so that the state and the output use their range without living at its ends.
The state carries over from one inference to the next, in TFLM and in tinyq: every test runs a sequence of
inputs through both, from the reset state, and compares each output.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host


def _quant(scale: float, zp: int = 0):
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def svdf_tflite(input_size=8, units=4, rank=1, memory=5, bias=True, act="NONE", batch=1, layers=1, state_zp=0,
                seed=0, time_dtype="INT16", input_dtype="INT8") -> bytes:
    """A model of ``layers`` SVDFs in a row (each ``units`` x ``rank`` filters over the previous one's output)."""
    rng = np.random.default_rng(seed)
    m = schema.ModelT()
    m.version, m.description = 3, "tinyq SVDF test"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SVDF
    code.version = 1
    m.operatorCodes, m.buffers = [code], [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors, sg.operators = [], []

    def tensor(name, shape, ttype, q, data=None, variable=False) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.quantization, t.isVariable = name, list(shape), getattr(schema.TensorType, ttype), \
            q, variable
        buf = schema.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).tolist()
        m.buffers.append(buf)
        t.buffer = len(m.buffers) - 1
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    x_scale, x_zp = 0.05, int(rng.integers(-20, 20))
    x = tensor("input", (batch, input_size), input_dtype, _quant(x_scale, x_zp) if input_dtype == "INT8" else None)
    sg.inputs, size, centred, in_scale = [x], input_size, 74.0, x_scale  # rms of (x - zero point): random int8
    for layer in range(layers):
        filters = units * rank
        wf_scale, wt_scale = float(rng.uniform(0.002, 0.02)), float(rng.uniform(1e-4, 1e-3))
        wf = rng.integers(-127, 128, (filters, size)).astype(np.int8)
        wt = rng.integers(-20000, 20001, (filters, memory)).astype(np.int16 if time_dtype == "INT16" else np.int32)
        if time_dtype == "INT8":
            wt = (wt // 200).astype(np.int8)
        # The state about 3000 (int16), the output about 50 (int8), each from its inputs' rms.
        state_scale = in_scale * wf_scale * 73 * centred * np.sqrt(size) / 3000
        time_rms = float(np.abs(wt).mean()) * 1.15 * 3000 * np.sqrt(memory * rank)
        y_scale, y_zp = state_scale * wt_scale * time_rms / 50, int(rng.integers(-30, 30))
        i_wf = tensor(f"weights_feature{layer}", wf.shape, "INT8", _quant(wf_scale), wf)
        i_wt = tensor(f"weights_time{layer}", wt.shape, time_dtype, _quant(wt_scale), wt)
        i_b = -1
        if bias:
            b = rng.integers(-int(time_rms) // 4, int(time_rms) // 4, units).astype(np.int32)
            i_b = tensor(f"bias{layer}", (units,), "INT32", _quant(float(np.float32(state_scale) * np.float32(wt_scale))), b)
        i_state = tensor(f"state{layer}", (batch, memory * filters), time_dtype,
                         _quant(state_scale, state_zp), variable=True)
        y = tensor(f"output{layer}", (batch, units), "INT8", _quant(y_scale, y_zp))
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [x, i_wf, i_wt, i_b, i_state], [y]
        op.builtinOptionsType = schema.BuiltinOptions.SVDFOptions
        op.builtinOptions = schema.SVDFOptionsT()
        op.builtinOptions.rank = rank
        op.builtinOptions.fusedActivationFunction = getattr(schema.ActivationFunctionType, act)
        sg.operators.append(op)
        x, size, centred, in_scale = y, units, 50.0, y_scale
    sg.outputs = [x]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _inputs(g, n: int, seed: int = 1) -> np.ndarray:
    shape = g.input_tensors[0].shape
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.integers(-128, 128, (n - 4, *shape)), np.full((2, *shape), 127),
                           np.full((1, *shape), -128), rng.integers(-4, 4, (1, *shape))]).astype(np.int8)


CASES = [
    dict(input_size=8, units=4, rank=1, memory=5),
    dict(input_size=7, units=3, rank=2, memory=4),
    dict(input_size=16, units=8, rank=2, memory=10, bias=False),
    dict(input_size=1, units=2, rank=3, memory=1, act="RELU"),
    dict(input_size=40, units=16, rank=1, memory=8, act="RELU", seed=5),
    dict(input_size=9, units=5, rank=1, memory=3, layers=2, seed=2),
    dict(input_size=6, units=4, rank=2, memory=3, batch=2, seed=3),
    dict(input_size=10, units=4, rank=1, memory=7, state_zp=7, seed=4),
]


def _id(c: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in c.items())


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_svdf_bit_exact_with_tflm(case):
    """A sequence of inputs, each continuing from the state the one before left, in TFLM and in the generated C."""
    tflite = svdf_tflite(**case)
    g = parse_tflite(tflite)
    assert {op.opcode for op in g.operators} == {"SVDF"}
    x = _inputs(g, 20)
    ref = TflmReference(tflite)
    assert ref.keeps_state
    want = ref.run_all(x)
    np.testing.assert_array_equal(run_on_host(tflite, x), want)
    # Not all at the int8 limits: the scales put the outputs inside the range.
    assert np.mean((want > -128) & (want < 127)) > 0.4
    if case["memory"] > 1:  # the state matters: from the reset state each time, the outputs differ
        ref.reset()
        fresh = np.stack([(ref.reset(), ref.run(s))[1] for s in x])
        assert not np.array_equal(fresh, want)


def test_reference_keeps_the_state_and_resets_it():
    tflite = svdf_tflite(memory=4)
    ref = TflmReference(tflite)
    x = _inputs(parse_tflite(tflite), 6)
    first = ref.run_all(x)
    assert not np.array_equal(ref.run_all(x), first)  # the second pass continues from the first's state
    ref.reset()
    np.testing.assert_array_equal(ref.run_all(x), first)


def test_svdf_is_supported_and_lowered_checked():
    from tinyq.compile.analyze import model_macs, tflite_kind, unsupported_ops
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.ops.quant import quantize_multiplier

    from tinyq.compile.emit.tflm import resolver_method

    assert "SVDF" in SUPPORTED_OPS
    assert resolver_method("SVDF") == "AddSvdf"  # the TFLM project's
    g = parse_tflite(svdf_tflite(input_size=7, units=3, rank=2, memory=4))
    assert not unsupported_ops(g)
    assert tflite_kind(g) == "int8"  # its int16 state is the op's own, as the int8 LSTM's cell state
    call = lower(g, g.operators[0])
    check_call(call)
    assert call.macs == model_macs(g) == 6 * (7 + 4)
    p = dict(call.params)
    assert (p["batch"], p["in_dim"], p["filters"], p["units"], p["rank"], p["memory"]) == (1, 7, 6, 3, 2, 4)
    assert call.persistent == (g.operators[0].inputs[4],)
    # PrepareSvdf's multipliers: the scale ratios in float32, then QuantizeMultiplier.
    t = g.tensors
    xs, wf, wt, st, y = (t[i].quant.scale[0] for i in (*g.operators[0].inputs[:3], g.operators[0].inputs[4],
                                                       g.operators[0].outputs[0]))
    f32 = np.float32
    assert (p["mult1"], p["shift1"]) == quantize_multiplier(float(f32(f32(xs) * f32(wf)) / f32(st)))
    assert (p["mult2"], p["shift2"]) == quantize_multiplier(float(f32(f32(st) * f32(wt)) / f32(y)))


def test_state_has_its_own_region_for_the_whole_run():
    from tinyq.compile.plan import plan_model

    g = parse_tflite(svdf_tflite(layers=2))
    plan = plan_model(g)
    states = [op.inputs[4] for op in g.operators]
    for s in states:
        (buf,) = [b for b in plan.buffers if s in b.tensors]
        assert (buf.first, buf.last, buf.tensors) == (-1, len(plan.steps), (s,))
        others = [b for b in plan.buffers if b is not buf]
        assert all(b.offset + b.size <= buf.offset or buf.offset + buf.size <= b.offset for b in others)


def test_generated_reset_starts_the_sequence_again(tmp_path):
    """tq_model_reset() zeroes the state: the same inputs after it give the same outputs as from start-up."""
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.hostrun import CFLAGS, KERNELS_DIR
    from tinyq.compile.plan import plan_model

    tflite = svdf_tflite(layers=2, memory=4)
    g = parse_tflite(tflite)
    files = emit_model(plan_model(g), tflite)
    assert "void tq_model_reset(void);" in files["tq_model.h"] and "TQ_MODEL_STATE_BYTES" in files["tq_model.h"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "main.c").write_text(r"""
#include <stdio.h>
#include "tq_model.h"
int main(void) {
    static int8_t in[TQ_MODEL_INPUT_BYTES], out[TQ_MODEL_OUTPUT_BYTES];
    for (int pass = 0; pass < 3; ++pass) {
        if (pass == 2) tq_model_reset();
        for (int i = 0; i < 5; ++i) {
            for (unsigned k = 0; k < sizeof in; ++k) in[k] = (int8_t)(37 * i + 11 * k - 60);
            tq_model_run(in, out);
            fwrite(out, 1, sizeof out, stdout);
        }
    }
    return 0;
}
""")
    exe = tmp_path / "reset"
    sources = sorted(str(p) for p in tmp_path.glob("*.c")) + sorted(str(p) for p in KERNELS_DIR.glob("*.c"))
    subprocess.run(["gcc", *CFLAGS, "-I", str(tmp_path), "-I", str(KERNELS_DIR), *sources, "-o", str(exe)], check=True)
    out = np.frombuffer(subprocess.run([str(exe)], capture_output=True, check=True).stdout, np.int8).reshape(3, -1)
    assert not np.array_equal(out[1], out[0])  # the second pass continues the first's state
    np.testing.assert_array_equal(out[2], out[0])


def test_models_without_state_emit_no_reset():
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.plan import plan_model

    tflite = (Path(__file__).parent / "data" / "lstm" / "seq.tflite").read_bytes()
    files = emit_model(plan_model(parse_tflite(tflite)), tflite)
    assert "tq_model_reset" not in files["tq_model.h"] + files["tq_model.c"]


@pytest.mark.parametrize("kind, match", [
    (dict(time_dtype="INT8"), "SVDF with int8 time weights and state"),
    (dict(input_dtype="FLOAT32"), "a hybrid SVDF"),
])
def test_svdf_forms_tinyq_does_not_run_are_refused_in_one_line(kind, match):
    from tinyq.compile.analyze import analyze

    g = parse_tflite(svdf_tflite(**kind))
    with pytest.raises(UnsupportedModelError, match=match) as e:
        analyze(g)
    assert str(e.value).count("op 0 SVDF") == 1  # one line for the op, not one a tensor


def test_float_svdf_is_refused_naming_it():
    from tinyq.compile.analyze import check_compatibility
    from tinyq.compile.ops.kernels.svdf import svdf_form

    g = parse_tflite(svdf_tflite(input_dtype="FLOAT32"))
    # The same graph with float weights too: a float SVDF.
    import dataclasses

    tensors = [dataclasses.replace(t, dtype="FLOAT32") if t.dtype in ("INT8", "INT16", "INT32") else t
               for t in g.tensors]
    gf = dataclasses.replace(g, tensors=tuple(tensors))
    assert svdf_form(gf, gf.operators[0])[0].startswith("a float SVDF")
    issues = [i for i in check_compatibility(gf) if i.opcode == "SVDF"]
    assert len(issues) == 1 and "a float SVDF" in issues[0].problem


def test_keyword_scrambled_model_is_refused_for_its_int16_input():
    """TFLM's own SVDF test model (keyword_scrambled_8bit.tflite): int16 in, int32 out, 8-bit-state SVDFs. It is
    read (its int16 softmax output's zero point -32768 is TFLite's) and refused for what it is: an int16 model."""
    from tinyq.compile.analyze import check_compatibility, tflite_kind

    mirror = Path("/work/.mirror/tensorflow+tflite-micro/repo")
    try:
        tflite = subprocess.run(["git", "-C", str(mirror), "show",
                                 "HEAD:tensorflow/lite/micro/models/keyword_scrambled_8bit.tflite"],
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no TFLM source mirror on this machine")
    g = parse_tflite(tflite)
    assert tflite_kind(g) == "int16"
    first = check_compatibility(g)[0]
    assert first.op_index is None and "INT16 model input/output" in first.problem


def test_svdf_variants_tflm_does_not_run_are_refused():
    import dataclasses

    from tinyq.compile.ops.kernels.svdf import lower_svdf

    g = parse_tflite(svdf_tflite(rank=2, units=3))
    op = g.operators[0]
    with pytest.raises(UnsupportedModelError, match="not a variable tensor"):
        tensors = list(g.tensors)
        tensors[op.inputs[4]] = dataclasses.replace(tensors[op.inputs[4]], is_variable=False)
        lower_svdf(dataclasses.replace(g, tensors=tuple(tensors)), op)
    with pytest.raises(UnsupportedModelError, match="rank 4 does not divide"):
        lower_svdf(g, dataclasses.replace(op, options={**op.options, "rank": 4}))


def test_svdf_in_qemu_bit_exact(tmp_path):
    """Two SVDFs in a row on the emulated nRF52840: a sequence of inputs, state carried over, TFLM's outputs."""
    from tinyq.pipeline import run_model_on

    tflite = svdf_tflite(input_size=40, units=16, rank=2, memory=8, layers=2, seed=7)
    g = parse_tflite(tflite)
    x = _inputs(g, 6)
    m, plan, fw = run_model_on(tflite, "qemu", x, tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert m.arena_bytes == plan.ram_bytes
    print(f"SVDF x2 (40 -> 16 units x rank 2, memory 8): {m.cycles:,} {m.cycles_kind}, arena {m.arena_bytes:,} B, "
          f"flash {m.flash_bytes:,} B, {plan.macs:,} MACs")
