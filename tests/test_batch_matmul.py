"""BATCH_MATMUL (tinyq/compile/ops/kernels/batch_matmul.py, firmware/kernels/tq_batch_matmul.c) bit-exact with TFLM.

Keras models (keras.layers.Dot, keras.ops.matmul, an attention-like block: x @ W, then q @ k^T, then the
scores @ v) and, where Keras' converter would add a TRANSPOSE or turn the product into a FULLY_CONNECTED,
tf.functions converted from their concrete function: adj_x and adj_y, batch dimensions broadcast either way,
a constant RHS (asymmetric: the converter gives it a zero point), a constant LHS, odd sizes. Both operands'
zero points are nonzero somewhere. The generated C (host gcc) must give the bytes tflite_micro gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host


def _calib(shape, n=32, seed=3):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def keras_tflite(name: str, shape) -> bytes:
    """The Keras model ``name`` (see MODELS) on inputs of ``shape``, full int8."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        out = MODELS[name](keras, inp)
        m = keras.Model(inp, out)
        rng = np.random.default_rng(1)
        m.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.4 for w in m.get_weights()])
        return quantize_keras(m, _calib(shape))

    return cached_tflite(["batch_matmul", "keras", name, shape, MODEL_SOURCES[name]], make)


def _attention(keras, x):
    q, k, v = (keras.layers.Dense(8)(x) for _ in range(3))
    scores = keras.layers.Dot(axes=(2, 2))([q, k])  # q @ k^T: BATCH_MATMUL adj_y
    return keras.ops.matmul(scores, v)  # the scores @ v: BATCH_MATMUL, both operands activations


MODELS = {
    "dot": lambda keras, x: keras.layers.Dot(axes=(2, 2))([x, keras.layers.Dense(x.shape[2])(x)]),
    "dot_rows": lambda keras, x: keras.layers.Dot(axes=(1, 1))([x, keras.layers.Dense(7)(x)]),
    "matmul": lambda keras, x: keras.ops.matmul(
        x, keras.layers.Reshape((x.shape[2], -1))(keras.layers.Dense(x.shape[2])(x))),
    "self": lambda keras, x: keras.ops.matmul(keras.layers.Dense(x.shape[1])(x), x),
    "attention": _attention,
}
#: The models' code, part of the cache key (a lambda's source is not, by itself).
MODEL_SOURCES = {"dot": "Dense(C) Dot(2,2)", "dot_rows": "Dense(7) Dot(1,1)", "matmul": "Dense(C) Reshape(C,-1) matmul",
                 "self": "Dense(H) @ x", "attention": "3 Dense(8), Dot(2,2), matmul"}
KERAS_CASES = [("dot", (6, 8)), ("dot", (5, 3)), ("dot_rows", (6, 5)), ("matmul", (7, 10)), ("self", (6, 4)),
               ("attention", (9, 12))]

rng0 = np.random.default_rng(0)
_W = rng0.normal(size=(8, 8)).astype(np.float32)
_C = rng0.normal(size=(5, 6)).astype(np.float32)
_C3 = rng0.normal(size=(2, 8, 5)).astype(np.float32)
_C9 = rng0.normal(size=(9, 7)).astype(np.float32)

#: tf.functions of an input (1, *shape): (key, shape, function of tf and x).
TF_CASES = [
    ("adj_x", (6, 8), lambda tf, x: tf.matmul(x, tf.matmul(x, _W), transpose_a=True)),
    ("adj_x_adj_y", (6, 6), lambda tf, x: tf.matmul(x, x + 1.0, transpose_a=True, transpose_b=True)),
    ("rhs_broadcast", (6, 8), lambda tf, x: tf.matmul(tf.reshape(x, (1, 2, 3, 8)),
                                                      tf.reshape(tf.matmul(x, _W), (1, 1, 6, 8)), transpose_b=True)),
    ("lhs_broadcast", (6, 8), lambda tf, x: tf.matmul(tf.reshape(x, (1, 1, 6, 8)),
                                                      tf.reshape(tf.matmul(x, _W), (1, 2, 3, 8)), transpose_b=True)),
    ("const_lhs", (6, 8), lambda tf, x: tf.matmul(_C, x)),
    ("const_rhs_batches", (6, 8), lambda tf, x: tf.matmul(tf.reshape(x, (1, 1, 6, 8)), _C3)),
    ("const_rhs_odd", (5, 9), lambda tf, x: tf.matmul(tf.reshape(x, (1, 1, 5, 9)), _C9[None, None])),
]


def tf_tflite(key: str, shape, fn) -> bytes:
    """``fn(tf, x)`` as a tf.function of a (1, *shape) input, converted to full int8 from its concrete function."""

    def make():
        import tensorflow as tf

        cf = tf.function(lambda x: fn(tf, x)).get_concrete_function(tf.TensorSpec((1, *shape), tf.float32))
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        calib = _calib(shape)
        conv.representative_dataset = lambda: ([c[None]] for c in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()

    return cached_tflite(["batch_matmul", "tf", key, shape], make)


def _assert_bit_exact(tflite, n=6, seed=2):
    g = parse_tflite(tflite)
    assert "BATCH_MATMUL" in {op.opcode for op in g.operators}, [op.opcode for op in g.operators]
    shape = g.input_tensors[0].shape
    x = np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


@pytest.mark.parametrize("name,shape", KERAS_CASES, ids=[f"{n}-{s[0]}x{s[1]}" for n, s in KERAS_CASES])
def test_keras_batch_matmul_bit_exact_with_tflm(name, shape):
    _assert_bit_exact(keras_tflite(name, shape))


@pytest.mark.parametrize("key,shape,fn", TF_CASES, ids=[c[0] for c in TF_CASES])
def test_tf_batch_matmul_bit_exact_with_tflm(key, shape, fn):
    _assert_bit_exact(tf_tflite(key, shape, fn))


def _bmm_ops(tflite):
    g = parse_tflite(tflite)
    return g, [op for op in g.operators if op.opcode == "BATCH_MATMUL"]


def test_the_cases_cover_the_parameters():
    """What the cases above are there for: each adj flag, broadcasting, constants on either side, zero points."""
    seen = set()
    for tflite in [keras_tflite(n, s) for n, s in KERAS_CASES] + [tf_tflite(*c) for c in TF_CASES]:
        g, ops = _bmm_ops(tflite)
        for op in ops:
            a, b = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
            seen |= {f"adj_x={bool(op.options.get('adj_x'))}", f"adj_y={bool(op.options.get('adj_y'))}"}
            seen |= {"const_lhs"} if a.is_constant else set()
            seen |= {"const_rhs"} if b.is_constant else {"two_activations"} if not a.is_constant else set()
            seen |= {"lhs_zp"} if a.quant.zero_point[0] else set()
            seen |= {"rhs_zp"} if b.quant.zero_point[0] else set()
            if tuple(a.shape[:-2]) != tuple(b.shape[:-2]):
                seen.add("broadcast")
    assert seen >= {"adj_x=True", "adj_x=False", "adj_y=True", "adj_y=False", "const_lhs", "const_rhs",
                    "two_activations", "lhs_zp", "rhs_zp", "broadcast"}


def test_exact_requantization_bit_exact(monkeypatch):
    """The long requantization (tq_rq_exact), for products whose sums the fast path cannot prove: forced."""
    from tinyq.compile.ops.kernels import batch_matmul

    monkeypatch.setattr(batch_matmul, "fast_ok", lambda *a: False)
    for tflite in (keras_tflite("attention", (9, 12)), tf_tflite(*TF_CASES[5])):
        g, ops = _bmm_ops(tflite)
        from tinyq.compile.ops import lower

        assert all(dict(lower(g, op).params)["fast"] == 0 for op in ops)
        _assert_bit_exact(tflite, n=3)


def test_batch_matmul_is_supported_and_counts_its_macs():
    from tinyq.compile.analyze import op_macs
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call
    from tinyq.compile.plan import plan_model

    assert "BATCH_MATMUL" in SUPPORTED_OPS
    g, ops = _bmm_ops(keras_tflite("attention", (9, 12)))
    first, second = ops  # q @ k^T: (9 x 8) . (8 x 9); scores @ v: (9 x 9) . (9 x 8)
    assert op_macs(g, first) == 9 * 9 * 8 and op_macs(g, second) == 9 * 8 * 9
    for op in ops:
        call = lower(g, op)
        check_call(call)
        assert call.macs == op_macs(g, op)
    # Scratch: 4 columns of the K-pairs (depth 8: 4 of them), a group of 4 output rows, the RHS as int16 pairs.
    assert lower(g, first).scratch_bytes == 16 * 4 + 4 * 9 + 4 * 4 * 10
    planned = [st.call for st in plan_model(g).steps if st.call.function == "tq_batch_matmul_s8"]
    assert [c.scratch_bytes for c in planned] == [lower(g, op).scratch_bytes for op in ops]
    # A constant RHS is packed on the host: no scratch for it, and the tensor is not emitted as well.
    g, (op,) = _bmm_ops(tf_tflite(*TF_CASES[5]))
    call = lower(g, op)
    assert op.inputs[1] in call.consumes and dict(call.params)["rhs_packed"] == 1
    assert call.scratch_bytes == 16 * 4 + 4 * 5


def test_pack_rhs_layout():
    """pack_rhs is the _w16 layout the conv tile reads: column pair (n, n+1), K-pair j: n's (ka, kb), n+1's."""
    from tinyq.compile.ops.kernels.batch_matmul import pack_rhs

    b = np.arange(-20, 15, dtype=np.int8).reshape(5, 7)  # depth 5 (padded to 8), 7 columns (padded to 8)
    words = pack_rhs(b, zp=3)
    assert len(words) == 4 * 4 * 2  # 4 column pairs, 4 K-pairs, 2 words
    v = np.zeros((8, 8), np.int64)
    v[:5, :7] = b.astype(np.int64) - 3
    for pair in range(4):
        for j in range(4):
            ka = 4 * (j // 2) + j % 2
            for side in range(2):
                w = words[(pair * 4 + j) * 2 + side]
                col = 2 * pair + side
                lo, hi = ((w & 0xFFFF) ^ 0x8000) - 0x8000, ((w >> 16) ^ 0x8000) - 0x8000
                assert (lo, hi) == (v[ka, col], v[ka + 2, col])


def test_matrices_past_the_kernels_sizes_are_refused():
    """tq_bmm_params_t holds rows, depth and columns in 16 bits: a larger product is refused by name."""
    import dataclasses

    from tinyq.compile.ops import lower
    from tinyq.errors import UnsupportedModelError

    g, (op,) = _bmm_ops(keras_tflite("dot", (6, 8)))
    big = {op.inputs[0]: (1, 70000, 8), op.outputs[0]: (1, 70000, 6)}
    g = dataclasses.replace(g, tensors=tuple(dataclasses.replace(t, shape=big[t.index]) if t.index in big else t
                                             for t in g.tensors))
    with pytest.raises(UnsupportedModelError, match="BATCH_MATMUL of 70000 x 8 by 8 x 6"):
        lower(g, op)
