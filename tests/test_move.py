"""Data-movement ops (tinyq/compile/ops/kernels/move.py, firmware/kernels/tq_move.c) bit-exact with TFLM.

Each graph is a tf.function (or a Keras model) converted to full int8 with int8 input and output, checked
to hold the op, to pass tinyq's gate, and run by the generated C (host gcc) against the tflite_micro
interpreter on random int8 tensors, byte for byte. Ops with several outputs (SPLIT, SPLIT_V, UNPACK) feed a
CONCATENATION or PACK that reorders them, so that the model has one output that holds every one of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

#: Part of every cache key: bump it when the converter helper changes.
VERSION = 1


def tf_int8(key: str, fn, shape, lo: float = -1.0, hi: float = 1.0) -> bytes:
    """``fn`` (TensorFlow ops on one float input of ``shape``, batch included) converted to full int8 through a
    concrete function, with a representative dataset; cached under ``key`` (the case's own description)."""

    def make() -> bytes:
        import tensorflow as tf

        cf = tf.function(fn).get_concrete_function(tf.TensorSpec(shape, tf.float32))
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        rng = np.random.default_rng(0)
        conv.representative_dataset = lambda: ([rng.uniform(lo, hi, shape).astype(np.float32)] for _ in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()

    return cached_tflite(["move", VERSION, key, tuple(shape), lo, hi], make)


def keras_int8(key: str, make_model, shape) -> bytes:
    """A Keras model (``make_model(keras)`` of input ``shape``, no batch) converted by tinyq's quantize_keras."""
    from tinyq.model.quantize import quantize_keras

    def make() -> bytes:
        import keras

        m = make_model(keras)
        calib = np.random.default_rng(1).uniform(-1, 1, size=(16, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["move-keras", VERSION, key, tuple(shape)], make)


def check_bit_exact(tflite: bytes, opcode: str, n: int = 4, seed: int = 3) -> None:
    """The graph holds ``opcode`` and passes the gate; the generated C gives TFLM's bytes on ``n`` random inputs."""
    from tinyq.compile.analyze import check_compatibility

    g = parse_tflite(tflite)
    codes = [op.opcode for op in g.operators]
    assert opcode in codes, codes
    assert check_compatibility(g) == (), check_compatibility(g)
    shape = g.input_tensors[0].shape
    x = np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)
    ref = TflmReference(tflite)
    want = np.stack([ref.run(s) for s in x])
    got = run_on_host(tflite, x)
    np.testing.assert_array_equal(got, want)


# ---- STRIDED_SLICE ----

STRIDED = {
    "begin-end": ((1, 4, 5, 6), lambda x: x[:, 1:3]),
    "negative-strides": ((1, 4, 5, 6), lambda x: x[:, ::-1, 1:, ::2]),
    "shrink": ((1, 4, 5, 6), lambda x: x[:, 2, :, -1]),
    "negative-indices": ((1, 4, 5, 6), lambda x: x[:, -3:-1, ::-2, 1:5:3]),
    "ellipsis": ((1, 4, 5, 6), lambda x: x[..., 1:3]),
    "new-axis": ((1, 4, 5), lambda x: x[:, None, 1:3, ::-1]),
    "rank-2": ((1, 40), lambda x: x[:, 3:-2:3]),
    "masks": ((1, 4, 5, 6), lambda x: __import__("tensorflow").strided_slice(
        x, [0, 3, 1, 5], [1, 0, 4, 0], [1, -1, 2, -2], begin_mask=0b0001, end_mask=0b0010, shrink_axis_mask=0)),
    "shrink-mask-batch": ((1, 4, 5, 6), lambda x: __import__("tensorflow").strided_slice(
        x, [0, -1, 0, 2], [1, 0, 5, 3], [1, 1, 1, 1], end_mask=0b0110, shrink_axis_mask=0b1001)),
    "whole-rows": ((1, 8, 8, 16), lambda x: x[:, 2:6]),
}


@pytest.mark.parametrize("case", STRIDED)
def test_strided_slice(case):
    shape, fn = STRIDED[case]
    check_bit_exact(tf_int8(f"strided-{case}", fn, shape), "STRIDED_SLICE")


# ---- SLICE ----

SLICES = {
    "4d": ((1, 6, 7, 8), [0, 1, 2, 0], [1, 3, -1, 5]),
    "3d": ((1, 9, 10), [0, 4, 1], [1, -1, 7]),
    "channels": ((1, 4, 4, 12), [0, 0, 0, 3], [1, 4, 4, 6]),
}


@pytest.mark.parametrize("case", SLICES)
def test_slice(case):
    import tensorflow as tf

    shape, begin, size = SLICES[case]
    check_bit_exact(tf_int8(f"slice-{case}-{begin}-{size}", lambda x: tf.slice(x, begin, size), shape), "SLICE")


# ---- SPLIT, SPLIT_V (reordered by a CONCATENATION) ----

@pytest.mark.parametrize("axis", [1, 2, 3, -1, -3])
def test_split(axis):
    import tensorflow as tf

    def fn(x):
        a, b, c = tf.split(x, 3, axis=axis)
        return tf.concat([c, a, b], axis=axis)

    check_bit_exact(tf_int8(f"split-{axis}", fn, (1, 6, 9, 12)), "SPLIT")


@pytest.mark.parametrize("axis", [1, 2, 3, -2])
def test_split_v(axis):
    import tensorflow as tf

    def fn(x):
        a, b, c = tf.split(x, [1, 3, 2], axis=axis)
        return tf.concat([c, a, b], axis=axis)

    check_bit_exact(tf_int8(f"split_v-{axis}", fn, (1, 6, 6, 6)), "SPLIT_V")


# ---- UNPACK and PACK ----

@pytest.mark.parametrize("axis", [1, 2, 3, -1])
def test_unpack_pack(axis):
    import tensorflow as tf

    def fn(x):
        parts = tf.unstack(x, axis=axis)
        return tf.stack(parts[::-1], axis=axis % 4 - 1 if axis != 1 else 0)

    tflite = tf_int8(f"unpack-{axis}", fn, (1, 3, 4, 5))
    check_bit_exact(tflite, "UNPACK")
    check_bit_exact(tflite, "PACK")


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_pack(axis):
    import tensorflow as tf

    def fn(x):
        return tf.stack([x[:, 0], x[:, 2], x[:, 1]], axis=axis)

    check_bit_exact(tf_int8(f"pack-{axis}", fn, (1, 3, 4, 5)), "PACK")


# ---- Keras layers ----

def test_keras_cropping2d():
    tflite = keras_int8("cropping2d", lambda k: k.Sequential([k.Input((10, 12, 3)), k.layers.Cropping2D(((1, 2), (3, 1)))]),
                        (10, 12, 3))
    g = parse_tflite(tflite)
    code = next(op.opcode for op in g.operators if op.opcode in ("STRIDED_SLICE", "SLICE"))
    check_bit_exact(tflite, code)


def test_keras_ops_split_stack_unstack():
    def make(k):
        inp = k.Input((4, 6, 8))
        a, b = k.ops.split(inp, 2, axis=-1)
        parts = k.ops.unstack(inp, axis=1)
        y = k.ops.concatenate([b, a], axis=-1)
        z = k.ops.stack(parts[::-1], axis=1)
        return k.Model(inp, k.ops.concatenate([y, z], axis=2))

    tflite = keras_int8("ops-split-stack", make, (4, 6, 8))
    for code in ("SPLIT", "UNPACK", "PACK"):
        check_bit_exact(tflite, code)


# ---- the lowering ----

def test_ops_are_supported_and_lowerings_match_descriptors():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call

    for code in ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK", "PACK"):
        assert code in SUPPORTED_OPS
    import tensorflow as tf

    for tflite in (tf_int8("strided-negative-strides", STRIDED["negative-strides"][1], (1, 4, 5, 6)),
                   tf_int8("split-1", lambda x: tf.concat(tf.split(x, 3, axis=1)[::-1], axis=1), (1, 6, 9, 12))):
        g = parse_tflite(tflite)
        for op in g.operators:
            check_call(lower(g, op))


def test_views_merge_contiguous_axes():
    from tinyq.compile.ops.kernels.move import contiguous_strides, views

    # A slice of whole rows of a (1, 8, 8, 16) tensor: one run of 4 * 8 * 16 bytes.
    (v,) = views((1, 4, 8, 16), contiguous_strides((1, 8, 8, 16)), contiguous_strides((1, 4, 8, 16)), in_start=256)
    assert v[3] == (1, 1, 1, 1, 1, 512) and v[4][-1] == 1 and v[1] == 256
    # 8 axes that do not merge: split into views over the outer two.
    dims = (2, 3, 2, 2, 2, 2, 2, 2)
    vs = views(dims, (1000, 300, 100, 40, 15, 7, 3, 1), contiguous_strides(dims))
    assert len(vs) == 6 and all(len(v[3]) == 6 for v in vs)
