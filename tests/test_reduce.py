"""Reductions (tinyq/compile/ops/kernels/reduce.py, firmware/kernels/tq_reduce.c, MEAN's and SUM's tq_mean_s8)
bit-exact with TFLM.

REDUCE_MAX, REDUCE_MIN, SUM and MEAN from Keras (GlobalMaxPooling2D, GlobalAveragePooling1D/2D, keras.ops.max /
min / sum / mean over one or several axes, negative ones, with and without keepdims); ARG_MAX / ARG_MIN and
L2_NORMALIZATION from tf.function concrete functions (Keras's argmax converts to ops TFLite has no int8 kernel
for, and UnitNormalization to SQUARE / RSQRT, not L2_NORMALIZATION). Int32 indices are compared with tflite_micro;
int64 ones with TFLite's reference kernels (tf.lite.Interpreter, BUILTIN_REF), since TFLM's ARG_MAX writes only
int32. Plus one model of several of these ops, with an int32 output, run in QEMU bit-exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.errors import UnsupportedModelError
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host


def _calib(shape, n: int = 32) -> np.ndarray:
    return np.random.default_rng(1).uniform(-2.0, 3.0, size=(n, *shape)).astype(np.float32)


def keras_tflite(shape, key: tuple, build) -> bytes:
    """``build(keras, input)`` (a Keras graph from the input) converted to full int8; ``key`` names it."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        return quantize_keras(keras.Model(inp, build(keras, inp)), _calib(shape))

    return cached_tflite(["reduce-keras", shape, key], make)


def function_tflite(shape, key: tuple, fn) -> bytes:
    """``fn`` as a tf.function's concrete function converted to full int8 with a representative dataset."""

    def make():
        import tensorflow as tf

        f = tf.function(fn, input_signature=[tf.TensorSpec((1, *shape), tf.float32)])
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        calib = _calib((1, *shape))
        conv.representative_dataset = lambda: ([x] for x in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()

    return cached_tflite(["reduce-function", shape, key], make)


def inputs(shape, n_random: int = 6) -> np.ndarray:
    """Edge tensors (all -128, all 127, alternating ends, ties of the extreme value, a ramp) then random ones."""
    size = int(np.prod(shape))
    edges = [np.full(size, -128), np.full(size, 127), np.resize([-128, 127], size), np.resize([5, 5, -3], size),
             np.resize(np.arange(-128, 128), size), np.resize(np.arange(127, -129, -1), size)]
    rand = np.random.default_rng(2).integers(-128, 128, (n_random, size))
    return np.concatenate([np.stack(edges), rand]).astype(np.int8).reshape(-1, *shape)


def check_bit_exact(tflite: bytes, opcode: str, x: np.ndarray | None = None) -> None:
    g = parse_tflite(tflite)
    assert opcode in [op.opcode for op in g.operators], [op.opcode for op in g.operators]
    x = inputs(g.input_tensors[0].shape[1:]) if x is None else x
    ref = TflmReference(tflite)
    want = np.stack([ref.run(s) for s in x])
    got = run_on_host(tflite, x)  # int8: the output; indices: the device's output bytes, read in their type
    got = got if g.single_int8_io else g.unpack("output", got)[0].reshape(want.shape)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


# ---- REDUCE_MAX, REDUCE_MIN, SUM, MEAN ----

#: (op, input shape, axes, keepdims)
REDUCE_CASES = [
    ("max", (5, 7, 3), (1, -1), True), ("max", (5, 7, 3), (-2,), False), ("max", (6, 10), (0,), False),
    ("max", (4, 5, 6), (0, 1, 2), False), ("max", (9,), (-1,), True),
    ("min", (5, 7, 3), (-2,), False), ("min", (5, 7, 3), (0, 2), True), ("min", (6, 10), (-1,), True),
    ("sum", (5, 7, 3), (1, 2), False), ("sum", (5, 7, 3), (-1,), True), ("sum", (6, 10), (0,), False),
    ("sum", (4, 5, 6), (0, -1), True), ("sum", (12,), (0,), False),
    ("mean", (5, 7, 3), (-1,), True), ("mean", (5, 7, 3), (0, -2), False), ("mean", (6, 10), (-2,), True),
    ("mean", (4, 5, 6), (0, 1, 2), True), ("mean", (4, 5, 6), (1,), False),
]
OPCODES = {"max": "REDUCE_MAX", "min": "REDUCE_MIN", "sum": "SUM", "mean": "MEAN"}


@pytest.mark.parametrize("case", REDUCE_CASES, ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}-{c[2]}-{c[3]}"
                                                    for c in REDUCE_CASES])
def test_keras_ops_reductions_bit_exact_with_tflm(case):
    what, shape, axes, keep = case
    tflite = keras_tflite(shape, ("ops", what, axes, keep),
                          lambda keras, x: getattr(keras.ops, what)(x, axis=axes, keepdims=keep))
    check_bit_exact(tflite, OPCODES[what])


@pytest.mark.parametrize("layer,shape,opcode", [("GlobalMaxPooling2D", (5, 7, 3), "REDUCE_MAX"),
                                                ("GlobalMaxPooling2D", (4, 4, 16), "REDUCE_MAX"),
                                                ("GlobalAveragePooling2D", (5, 7, 3), "MEAN"),
                                                ("GlobalAveragePooling1D", (9, 6), "MEAN"),
                                                ("GlobalMaxPooling1D", (9, 6), "REDUCE_MAX")])
@pytest.mark.parametrize("keep", [False, True])
def test_keras_global_pooling_bit_exact_with_tflm(layer, shape, opcode, keep):
    tflite = keras_tflite(shape, ("layer", layer, keep), lambda keras, x: getattr(keras.layers, layer)(keepdims=keep)(x))
    check_bit_exact(tflite, opcode)


def test_mean_keeps_its_kernel_and_sum_shares_it():
    """MEAN keeps lower_ops' lowering (the benchmarked bytes); SUM is that kernel without 1/count."""
    from tinyq.compile.ops import lower
    from tinyq.compile.ops.lower_ops import lower_mean

    g = parse_tflite(keras_tflite((5, 7, 3), ("layer", "GlobalAveragePooling2D", False),
                                  lambda keras, x: keras.layers.GlobalAveragePooling2D(keepdims=False)(x)))
    op = next(op for op in g.operators if op.opcode == "MEAN")
    assert lower(g, op) == lower_mean(g, op)
    g = parse_tflite(keras_tflite((5, 7, 3), ("ops", "sum", (1, 2), False),
                                  lambda keras, x: keras.ops.sum(x, axis=(1, 2), keepdims=False)))
    assert lower(g, next(op for op in g.operators if op.opcode == "SUM")).function == "tq_mean_s8"


# ---- ARG_MAX, ARG_MIN ----

def arg_fn(what: str, axis: int, dtype: str, reshape: bool = False):
    def fn(x):
        import tensorflow as tf

        f = tf.math.argmax if what == "max" else tf.math.argmin
        y = f(x, axis=axis, output_type=getattr(tf, dtype))
        return tf.reshape(y, (-1,)) if reshape else y

    return fn


ARG_CASES = [("max", (5, 7, 3), -1), ("max", (5, 7, 3), 1), ("max", (10,), 0), ("max", (6, 10), -2),
             ("min", (5, 7, 3), 2), ("min", (5, 7, 3), -3), ("min", (6, 10), 1), ("min", (4, 3, 2), 0)]


@pytest.mark.parametrize("case", ARG_CASES, ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}-{c[2]}" for c in ARG_CASES])
def test_arg_minmax_int32_bit_exact_with_tflm(case):
    what, shape, axis = case
    tflite = function_tflite(shape, ("arg", what, axis, "int32"), arg_fn(what, axis, "int32"))
    assert parse_tflite(tflite).output_tensors[0].dtype == "INT32"
    check_bit_exact(tflite, "ARG_MAX" if what == "max" else "ARG_MIN")


@pytest.mark.parametrize("case", ARG_CASES[::3], ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}-{c[2]}"
                                                      for c in ARG_CASES[::3]])
def test_arg_minmax_int64_bit_exact_with_tflite_reference_kernels(case):
    """TFLM's ARG_MAX writes int32 only: int64 indices are checked against TFLite's reference kernels."""
    import tensorflow as tf

    what, shape, axis = case
    tflite = function_tflite(shape, ("arg", what, axis, "int64"), arg_fn(what, axis, "int64"))
    g = parse_tflite(tflite)
    assert g.output_tensors[0].dtype == "INT64" and ("ARG_MAX" if what == "max" else "ARG_MIN") in \
        [op.opcode for op in g.operators]
    x = inputs(shape)
    it = tf.lite.Interpreter(model_content=tflite,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    want = []
    for s in x:
        it.set_tensor(it.get_input_details()[0]["index"], s[None])
        it.invoke()
        want.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    got = g.unpack("output", run_on_host(tflite, x))[0].reshape(np.stack(want).shape)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.stack(want))


def test_arg_max_through_a_reshape_bit_exact_with_tflm():
    """An int32 tensor inside the model (ARG_MAX's output) reshaped to the model's output: RESHAPE moves its bytes."""
    tflite = function_tflite((5, 7, 3), ("arg-reshape", "max", 2), arg_fn("max", 2, "int32", reshape=True))
    assert [op.opcode for op in parse_tflite(tflite).operators] == ["ARG_MAX", "RESHAPE"]
    check_bit_exact(tflite, "ARG_MAX")


def test_index_output_passes_the_gate_and_is_an_int8_model():
    from tinyq.compile.analyze import analyze, tflite_kind

    g = parse_tflite(function_tflite((5, 7, 3), ("arg-reshape", "max", 2), arg_fn("max", 2, "int32", reshape=True)))
    assert tflite_kind(g) == "int8"
    assert analyze(g).issues == ()


# ---- L2_NORMALIZATION ----

def l2_fn(x):
    import tensorflow as tf

    return tf.math.l2_normalize(x, axis=-1)


@pytest.mark.parametrize("shape", [(8,), (5, 8), (3, 4, 16), (2, 3, 5), (1,), (300,)])
def test_l2_normalization_bit_exact_with_tflm(shape):
    tflite = function_tflite(shape, ("l2", "v1"), l2_fn)
    g = parse_tflite(tflite)
    zp = g.input_tensors[0].quant.zero_point[0]
    x = inputs(shape)
    # Rows of the zero point (a sum of squares of 0, taken as 1), one step off it (1), a few steps (small sums
    # whose inverse square root needs a left shift), and every value once.
    size, depth = x[0].size, shape[-1]
    near = [np.full(size, zp), np.resize([zp + 1] + [zp] * (depth - 1), size),
            np.resize([zp - 2, zp + 1] + [zp] * max(0, depth - 2), size)]
    x = np.concatenate([x, np.clip(np.stack(near), -128, 127).astype(np.int8).reshape(-1, *shape)])
    check_bit_exact(tflite, "L2_NORMALIZATION", x)


# ---- lowerings, refusals ----

def test_reduce_lowerings_are_supported_and_checked():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call

    assert {"REDUCE_MAX", "REDUCE_MIN", "SUM", "MEAN", "ARG_MAX", "ARG_MIN", "L2_NORMALIZATION"} <= SUPPORTED_OPS
    models = [keras_tflite((5, 7, 3), ("ops", what, axes, keep),
                           lambda keras, x, w=what, a=axes, k=keep: getattr(keras.ops, w)(x, axis=a, keepdims=k))
              for what, _, axes, keep in [c for c in REDUCE_CASES if c[1] == (5, 7, 3)]]
    models += [function_tflite((5, 7, 3), ("arg", "max", -1, "int32"), arg_fn("max", -1, "int32")),
               function_tflite((5, 7, 3), ("arg", "min", 2, "int32"), arg_fn("min", 2, "int32")),
               function_tflite((5, 8), ("l2", "v1"), l2_fn)]
    seen = set()
    for tflite in models:
        g = parse_tflite(tflite)
        for op in g.operators:
            call = lower(g, op)
            check_call(call)
            seen.add((op.opcode, call.function))
    assert {("REDUCE_MAX", "tq_reduce_minmax_s8"), ("REDUCE_MIN", "tq_reduce_minmax_s8"), ("SUM", "tq_mean_s8"),
            ("ARG_MAX", "tq_arg_minmax_s8"), ("ARG_MIN", "tq_arg_minmax_s8"),
            ("L2_NORMALIZATION", "tq_l2norm_s8")} <= seen


def _with_op(g, opcode: str, options: dict | None = None, out_quant=None):
    op = next(op for op in g.operators if op.opcode == opcode)
    ops = tuple(dataclasses.replace(o, options={**o.options, **(options or {})}) if o is op else o
                for o in g.operators)
    tensors = list(g.tensors)
    if out_quant is not None:
        tensors[op.outputs[0]] = dataclasses.replace(tensors[op.outputs[0]], quant=out_quant)
    return dataclasses.replace(g, operators=ops, tensors=tuple(tensors)), ops[op.index]


def test_requantizing_reduce_max_and_fused_l2_are_refused():
    """TFLM's REDUCE_MAX requires the output's quantization to be the input's, and its L2_NORMALIZATION takes no
    fused activation: either would fail in TFLM's Prepare, so tinyq refuses them."""
    from tinyq.compile.ops import lower
    from tinyq.graph import Quantization

    g = parse_tflite(keras_tflite((5, 7, 3), ("ops", "max", (-2,), False),
                                  lambda keras, x: keras.ops.max(x, axis=(-2,), keepdims=False)))
    g, op = _with_op(g, "REDUCE_MAX", out_quant=Quantization((0.5,), (3,)))
    with pytest.raises(UnsupportedModelError, match="quantization"):
        lower(g, op)
    g, op = _with_op(parse_tflite(function_tflite((5, 8), ("l2", "v1"), l2_fn)), "L2_NORMALIZATION",
                     {"fused_activation_function": "RELU"})
    with pytest.raises(UnsupportedModelError, match="fused RELU"):
        lower(g, op)


# ---- on the device ----

def mixed_fn(x):
    """Resizes, reductions, an L2 normalization and an ARG_MAX with int32 indices as the model's output."""
    import tensorflow as tf

    a = tf.compat.v1.image.resize_bilinear(x, (9, 11), align_corners=True)
    b = tf.compat.v1.image.resize_nearest_neighbor(a, (5, 7), half_pixel_centers=True)
    n = tf.math.l2_normalize(b, axis=-1)
    m = tf.reduce_mean(n, axis=-1) + tf.reduce_max(n, axis=-1) + tf.reduce_min(n, axis=-1) + tf.reduce_sum(n, axis=-1)
    return tf.math.argmax(m, axis=-1, output_type=tf.int32)


def test_resize_and_reductions_in_qemu_bit_exact(tmp_path):
    from tinyq.pipeline import run_model_on

    tflite = function_tflite((6, 6, 4), ("mixed", "v2"), mixed_fn)
    ops = {op.opcode for op in parse_tflite(tflite).operators}
    assert {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "MEAN", "REDUCE_MAX", "REDUCE_MIN", "SUM",
            "L2_NORMALIZATION", "ARG_MAX"} <= ops, ops
    x = inputs((6, 6, 4), n_random=3)[2:]
    m, plan, _ = run_model_on(tflite, "qemu", x, tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert m.inputs_checked == len(x)
