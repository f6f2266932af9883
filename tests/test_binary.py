"""The binary element-wise ops with broadcasting (tinyq/compile/ops/kernels/binary.py, firmware/kernels/tq_binary.c)
bit-exact with TFLM: SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, DIV, PRELU and the broadcasting ADD.

Small Keras models converted to full int8, one op each (beside the convs and pools that make a second
operand at run time), the second operand of every broadcast shape against a (4, 4, 8) input: the same
shape, a vector over the channels ((8,), constant or computed), (1, 1, 8), (4, 1, 8), a scalar constant,
either operand first, with the fused RELU and RELU6 where the op has them. The generated C (host gcc)
must give the bytes the tflite_micro interpreter gives, on every int8 input value, the two extremes and
random tensors. DIV is TFLM's own int8 kernel (div.cc, reference_ops::DivElementwise), divisors of zero
included (where its C is undefined, tinyq gives what the interpreter gives on x86).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.graph import parse_tflite
from tinyq.model.reference import TflmReference
from tinyq.pipeline import run_on_host

SHAPE = (4, 4, 8)
VEC = np.linspace(-1.0, 1.5, 8).astype(np.float32)
POS_VEC = np.linspace(0.5, 2.0, 8).astype(np.float32)
ROWS = np.linspace(-1.0, 1.0, 32).astype(np.float32).reshape(4, 1, 8)


def _other(x, kind: str):
    """The second operand for an input x of SHAPE, computed at run time."""
    from keras import layers as L

    if kind == "same":
        return L.Conv2D(8, 1)(x)
    if kind == "vec":  # (1, 8): a computed per-channel vector
        return L.Dense(8)(L.GlobalAveragePooling2D()(x))
    if kind == "pixel":  # (1, 1, 1, 8)
        return L.AveragePooling2D(4)(x)
    if kind == "row":  # (1, 4, 1, 8)
        return L.AveragePooling2D((1, 4))(x)
    if kind == "col1":  # (1, 4, 4, 1)
        return L.Conv2D(1, 1)(x)
    raise ValueError(kind)


_CONSTS = {"vec_const": VEC, "pos_vec_const": POS_VEC, "rows_const": ROWS, "scalar": np.float32(0.375),
           "pos_scalar": np.float32(1.75),
           # for a (2, 3, 4, 8) input: broadcast, full, broadcast, full, broadcast from the outside in
           "five": np.linspace(-1.0, 1.0, 8).astype(np.float32).reshape(2, 1, 4, 1)}


def _binary(op: str, a, b):
    import keras

    f = {"sub": keras.ops.subtract, "max": keras.ops.maximum, "min": keras.ops.minimum, "add": keras.ops.add,
         "div": keras.ops.divide, "sqd": lambda u, v: keras.ops.square(keras.ops.subtract(u, v))}[op]
    return f(a, b)


def binary_tflite(op: str, other: str, first: bool = False, act: str | None = None, lo: float = -2.0,
                  hi: float = 2.0, shape=SHAPE) -> bytes:
    """x OP other (other OP x with ``first``), then ``act`` (fused by the converter)."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras
        from keras import layers as L

        inp = keras.Input(shape)
        if other in _CONSTS:
            c = _CONSTS[other]
            out = L.Lambda(lambda t: _binary(op, c, t) if first else _binary(op, t, c))(inp)
        else:
            b = _other(inp, other)
            layer = {"sub": L.Subtract, "max": L.Maximum, "min": L.Minimum}.get(op)
            if layer is not None and other == "same":  # the Keras layers themselves
                out = layer()([b, inp] if first else [inp, b])
            else:
                out = L.Lambda(lambda t: _binary(op, t[1], t[0]) if first else _binary(op, t[0], t[1]))([inp, b])
        if act:
            out = L.Activation(act)(out)
        keras.utils.set_random_seed(3)
        m = keras.Model(inp, out)
        calib = np.random.default_rng(1).uniform(lo, hi, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["binary", op, other, first, act, lo, hi, shape, 1], make)


def prelu_tflite(shared_axes, shape=SHAPE, lo: float = -2.0) -> bytes:
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        layer = keras.layers.PReLU(alpha_initializer=keras.initializers.RandomUniform(-0.5, 0.8, seed=4),
                                   shared_axes=shared_axes)
        m = keras.Model(inp, layer(inp))
        calib = np.random.default_rng(1).uniform(lo, 2.0, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["binary-prelu", shared_axes, shape, lo, 1], make)


def inputs(shape) -> np.ndarray:
    """Every int8 value tiled over the tensor, the two extremes everywhere, then random tensors."""
    n = int(np.prod(shape))
    every = np.resize(np.arange(-128, 128, dtype=np.int8), n).reshape(shape)
    rnd = np.random.default_rng(2).integers(-128, 128, (5, *shape)).astype(np.int8)
    return np.concatenate([every[None], np.full((1, *shape), -128, np.int8), np.full((1, *shape), 127, np.int8), rnd])


def assert_bit_exact(tflite: bytes, opcode: str) -> None:
    g = parse_tflite(tflite)
    assert opcode in {op.opcode for op in g.operators}, [op.opcode for op in g.operators]
    x = inputs(g.input_tensors[0].shape)
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


OPCODES = {"sub": "SUB", "max": "MAXIMUM", "min": "MINIMUM", "sqd": "SQUARED_DIFFERENCE", "div": "DIV", "add": "ADD"}

CASES = [
    *(dict(op=op, other=o) for op in ("sub", "max", "min", "sqd")
      for o in ("same", "vec", "pixel", "row", "col1", "vec_const", "rows_const", "scalar")),
    dict(op="sub", other="scalar", first=True), dict(op="sub", other="vec_const", first=True),
    dict(op="sub", other="pixel", first=True), dict(op="sub", other="same", first=True),
    dict(op="max", other="row", first=True), dict(op="min", other="vec_const", first=True),
    dict(op="sqd", other="pixel", first=True),
    dict(op="sub", other="same", act="relu"), dict(op="sub", other="vec_const", act="relu6"),
    dict(op="sub", other="pixel", act="relu6"),
    # DIV: divisors positive (a pool of a positive input), of both signs (a conv), and constants.
    dict(op="div", other="same"), dict(op="div", other="same", first=True),
    dict(op="div", other="pixel", lo=0.5), dict(op="div", other="row", lo=0.5, first=True),
    dict(op="div", other="col1"), dict(op="div", other="pos_vec_const", first=True, lo=0.5),
    dict(op="div", other="pos_scalar", first=True, lo=0.5), dict(op="div", other="pixel", act="relu", lo=0.5),
    dict(op="div", other="pixel", act="relu6", lo=0.5),
    # ADD with broadcasting (tq_add_bcast_s8 here; the same shape keeps its table kernel).
    *(dict(op="add", other=o) for o in ("vec", "pixel", "row", "col1", "vec_const", "rows_const", "scalar")),
    dict(op="add", other="pixel", act="relu"), dict(op="add", other="vec_const", act="relu6"),
    dict(op="add", other="scalar", first=True),
]


def _id(c: dict) -> str:
    return "-".join(str(v) if not isinstance(v, bool) else ("first" if v else "") for v in c.values() if v != "")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_binary_op_bit_exact_with_tflm(case):
    tflite = binary_tflite(**case)
    assert_bit_exact(tflite, OPCODES[case["op"]])
    g = parse_tflite(tflite)
    op = next(o for o in g.operators if o.opcode == OPCODES[case["op"]])
    if case.get("act"):
        assert op.options["fused_activation_function"] == case["act"].upper()
    if op.opcode == "ADD":  # the broadcast one, on the broadcast kernel
        assert tuple(g.tensors[op.inputs[0]].shape) != tuple(g.tensors[op.inputs[1]].shape)


PRELU_AXES = [None, [1, 2], [1, 2, 3], [3], [1]]


@pytest.mark.parametrize("shared_axes", PRELU_AXES, ids=str)
def test_prelu_bit_exact_with_tflm(shared_axes):
    """Keras PReLU: alpha a constant per element, per channel, shared by all, per pixel, per row."""
    assert_bit_exact(prelu_tflite(shared_axes), "PRELU")


def test_prelu_with_a_small_negative_range():
    assert_bit_exact(prelu_tflite([1, 2], lo=-0.05), "PRELU")


def test_five_dimensional_broadcast():
    """TFLM broadcasts up to 8 axes (BroadcastBinaryOpSimple): a 5-D input minus a constant that alternates
    broadcast and full axes (four loops after merging), and MAXIMUM of it with a 5-D constant."""
    assert_bit_exact(binary_tflite("sub", "five", shape=(2, 3, 4, 8)), "SUB")
    assert_bit_exact(binary_tflite("max", "five", shape=(2, 3, 4, 8)), "MAXIMUM")


def test_analyze_accepts_every_binary_op_and_the_five_dimensional_one():
    from tinyq.compile.analyze import analyze
    from tinyq.compile.ops import SUPPORTED_OPS

    assert {"SUB", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "DIV", "PRELU", "ADD"} <= SUPPORTED_OPS
    for tflite in (binary_tflite("sub", "same"), binary_tflite("div", "pixel", lo=0.5), prelu_tflite([1, 2]),
                   binary_tflite("sqd", "vec"), binary_tflite("sub", "five", shape=(2, 3, 4, 8))):
        assert not analyze(parse_tflite(tflite)).issues


def test_lowerings_check_against_their_descriptors_and_run_in_place():
    from tinyq.compile.ops import lower
    from tinyq.compile.ops.kernel import check_call

    kernels = {}
    for tflite in (binary_tflite("sub", "same"), binary_tflite("max", "pixel"), binary_tflite("min", "scalar"),
                   binary_tflite("sqd", "vec"), binary_tflite("div", "pixel", lo=0.5), prelu_tflite(None),
                   binary_tflite("add", "vec_const"), binary_tflite("add", "pixel")):
        g = parse_tflite(tflite)
        for op in g.operators:
            call = lower(g, op)
            check_call(call)
            kernels[op.opcode] = call.function
            if op.opcode in OPCODES.values() or op.opcode == "PRELU":
                x = g.tensors[op.inputs[0]]
                assert call.overwrites == tuple(i for i in op.inputs if g.tensors[i].size == x.size
                                                and not g.tensors[i].is_constant)
    mine = {"SUB": "tq_sub_s8", "MAXIMUM": "tq_maximum_s8", "MINIMUM": "tq_minimum_s8", "DIV": "tq_div_s8",
            "SQUARED_DIFFERENCE": "tq_squared_difference_s8", "PRELU": "tq_prelu_s8", "ADD": "tq_add_bcast_s8"}
    assert {k: v for k, v in kernels.items() if k in mine} == mine


def test_same_shape_add_keeps_its_table_kernel():
    """The same-shape ADD (benchmarked, fused into convs) keeps tq_add_s8 and its tables from ADD_TABLE_MIN_SIZE
    elements on; a smaller one (an unrolled GRU's) runs in place through the broadcast loop, the 2 KB of tables
    being more than it saves."""
    from dataclasses import replace

    from tinyq.compile.ops import lower
    from tinyq.compile.ops.lower_ops import ADD_TABLE_MIN_SIZE
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(SHAPE)
        m = keras.Model(inp, keras.layers.Add()([inp, keras.layers.Conv2D(8, 1)(inp)]))
        return quantize_keras(m, np.random.default_rng(1).uniform(-2, 2, size=(32, *SHAPE)).astype(np.float32))

    tflite = cached_tflite(["binary-add-same", 1], make)
    g = parse_tflite(tflite)
    op = next(o for o in g.operators if o.opcode == "ADD")
    y = g.tensors[op.outputs[0]]
    assert lower(g, op).function == ("tq_add_s8" if y.size >= ADD_TABLE_MIN_SIZE else "tq_add_bcast_s8")
    small = y.size < ADD_TABLE_MIN_SIZE
    big = replace(g, tensors=tuple(replace(t, shape=(1, 2 * ADD_TABLE_MIN_SIZE)) if t.index in (*op.inputs, *op.outputs)
                                   else t for t in g.tensors))
    assert lower(big, op).function == "tq_add_s8" and small == (lower(g, op).overwrites == op.inputs)
    assert_bit_exact(tflite, "ADD")


def test_merged_broadcast_loops():
    """Axes that broadcast alike merge into one loop, as in TFLM's BroadcastBinaryOpSimple."""
    from tinyq.compile.ops.kernels.binary import merged_broadcast

    assert merged_broadcast((1, 4, 4, 8), (1, 4, 4, 8), (1, 4, 4, 8)) == [(128, 1, 1)]
    assert merged_broadcast((1, 4, 4, 8), (8,), (1, 4, 4, 8)) == [(16, 8, 0), (8, 1, 1)]
    assert merged_broadcast((1, 4, 4, 8), (), (1, 4, 4, 8)) == [(128, 1, 0)]
    assert merged_broadcast((), (1, 4, 4, 8), (1, 4, 4, 8)) == [(128, 0, 1)]
    assert merged_broadcast((1, 4, 4, 8), (1, 4, 1, 8), (1, 4, 4, 8)) == [(4, 32, 8), (4, 8, 0), (8, 1, 1)]
    assert merged_broadcast((1, 4, 4, 8), (1, 4, 4, 1), (1, 4, 4, 8)) == [(16, 8, 1), (8, 1, 0)]
    assert merged_broadcast((1, 1, 1, 8), (1, 4, 4, 1), (1, 4, 4, 8)) == [(16, 0, 1), (8, 1, 0)]
    assert merged_broadcast((), (), ()) == [(1, 0, 0)]
    assert merged_broadcast((2, 3, 4, 8), (2, 1, 4, 1), (2, 3, 4, 8)) == [
        (2, 96, 4), (3, 32, 0), (4, 8, 1), (8, 1, 0)]


def _fake(shape, index, scale=0.01, zp=0, const=False):
    from tinyq.graph import Quantization, Tensor

    q = Quantization(scale=(scale,), zero_point=(zp,))
    return Tensor(index, f"t{index}", tuple(shape), "INT8", q, np.zeros(shape, np.int8) if const else None)


def test_refusals_name_the_op_and_the_reason():
    """A DIV whose rescaling factor would make TFLM's own kernel shift by an amount C leaves undefined, a
    PRELU whose alpha has a scale a channel, and a broadcast of more alternating axes than the kernel walks
    are refused, not miscomputed."""
    from tinyq.compile.ops.kernels import binary
    from tinyq.errors import UnsupportedModelError

    g = parse_tflite(binary_tflite("div", "pixel", lo=0.5))
    op = next(o for o in g.operators if o.opcode == "DIV")
    a, b, y = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    tensors = list(g.tensors)
    tensors[y.index] = dataclasses.replace(y, quant=dataclasses.replace(y.quant, scale=(1e-9,)))
    with pytest.raises(UnsupportedModelError, match=r"op \d+ DIV: a rescaling factor of 2\^\d+"):
        binary.lower_div(dataclasses.replace(g, tensors=tensors), op)

    g = parse_tflite(prelu_tflite([1, 2]))
    op = next(o for o in g.operators if o.opcode == "PRELU")
    alpha = g.tensors[op.inputs[1]]
    tensors = list(g.tensors)
    tensors[alpha.index] = dataclasses.replace(alpha, quant=dataclasses.replace(alpha.quant, scale=(0.01,) * 8,
                                                                               zero_point=(0,) * 8, axis=2))
    with pytest.raises(UnsupportedModelError, match=r"op \d+ PRELU has a per-channel quantized alpha \(8 scales\)"):
        binary.lower_prelu(dataclasses.replace(g, tensors=tensors), op)

    six_a, six_b = _fake((2, 1, 2, 1, 2, 1), 0), _fake((1, 2, 1, 2, 1, 2), 1)
    with pytest.raises(UnsupportedModelError, match="SUB broadcasts .* in 6 alternating axes"):
        binary.broadcast_fields(six_a, six_b, _fake((2, 2, 2, 2, 2, 2), 2), "op 0 SUB")


def test_a_model_of_binary_ops_in_qemu(tmp_path):
    """SUB, MAXIMUM, MINIMUM, PRELU, SQUARED_DIFFERENCE, DIV and a broadcasting ADD in one model, run by the
    firmware in QEMU: bit-exact with TFLM."""
    import shutil

    from tinyq.model.quantize import quantize_keras
    from tinyq.pipeline import run_model_on

    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("no qemu-system-arm / arm-none-eabi-gcc")

    def make():
        import keras
        from keras import layers as L

        keras.utils.set_random_seed(3)
        inp = keras.Input(SHAPE)
        a = L.Subtract()([inp, L.Conv2D(8, 1)(inp)])
        a = L.Maximum()([a, L.AveragePooling2D((1, 4))(inp)])
        a = L.Lambda(lambda t: keras.ops.minimum(t, 1.25))(a)
        a = L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.0, 0.5, seed=4), shared_axes=[1, 2])(a)
        a = L.Lambda(lambda t: keras.ops.square(t - VEC))(a)
        pool = L.AveragePooling2D(4)(L.Activation("relu")(inp))
        a = L.Lambda(lambda t: keras.ops.divide(t[0], t[1] + 0.5))([a, pool])
        out = L.Lambda(lambda t: t + VEC)(a)
        m = keras.Model(inp, out)
        return quantize_keras(m, np.random.default_rng(1).uniform(-2, 2, size=(32, *SHAPE)).astype(np.float32))

    tflite = cached_tflite(["binary-qemu", 1], make)
    ops = {op.opcode for op in parse_tflite(tflite).operators}
    assert {"SUB", "MAXIMUM", "MINIMUM", "PRELU", "SQUARED_DIFFERENCE", "DIV", "ADD"} <= ops, ops
    x = inputs(parse_tflite(tflite).input_tensors[0].shape)[:4]
    m, plan, _ = run_model_on(tflite, "qemu", x, tmp_path)
    assert {"tq_sub_s8", "tq_maximum_s8", "tq_minimum_s8", "tq_prelu_s8", "tq_squared_difference_s8", "tq_div_s8",
            "tq_add_bcast_s8"} <= {st.call.function for st in plan.steps}
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
