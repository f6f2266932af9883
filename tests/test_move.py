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


def tflite_reference(tflite: bytes, xs: np.ndarray) -> np.ndarray:
    """TFLite's reference kernels on each input (tinyq.model.reference.LiteReference, what the build checks a
    model TFLM cannot run against): the reference where TFLM has no kernel (TILE)."""
    from tinyq.model.reference import LiteReference

    ref = LiteReference(tflite)
    return np.stack([ref.run(x) for x in xs])


def check_bit_exact(tflite: bytes, opcode: str, n: int = 4, seed: int = 3, tflm: bool = True) -> None:
    """The graph holds ``opcode`` and passes the gate; the generated C gives TFLM's bytes on ``n`` random inputs
    (``tflm`` False: TFLite's reference kernels', for an op TFLM lacks)."""
    from tinyq.compile.analyze import check_compatibility

    g = parse_tflite(tflite)
    codes = [op.opcode for op in g.operators]
    assert opcode in codes, codes
    assert check_compatibility(g) == (), check_compatibility(g)
    shape = g.input_tensors[0].shape
    x = np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)
    if tflm:
        ref = TflmReference(tflite)
        want = np.stack([ref.run(s) for s in x])
    else:
        want = tflite_reference(tflite, x)
    got = run_on_host(tflite, x)
    np.testing.assert_array_equal(got, want)


def edit_tflite(tflite: bytes, edit) -> bytes:
    """``tflite`` after ``edit(model, schema)`` changed its object tree (TensorFlow's flatbuffer schema): graphs the
    converter does not write (EXPAND_DIMS, SQUEEZE, which it turns into RESHAPE) and malformed ones."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    edit(m, schema)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


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

def split_tflite(axis: int) -> bytes:
    """SPLIT in 3 along ``axis``, the parts concatenated as (c, a, b)."""
    import tensorflow as tf

    def fn(x):
        a, b, c = tf.split(x, 3, axis=axis)
        return tf.concat([c, a, b], axis=axis)

    return tf_int8(f"split-{axis}", fn, (1, 6, 9, 12))


@pytest.mark.parametrize("axis", [1, 2, 3, -1, -3])
def test_split(axis):
    check_bit_exact(split_tflite(axis), "SPLIT")


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


# ---- TRANSPOSE ----

TRANSPOSES = {
    "3d": ((1, 5, 7), [0, 2, 1]),
    "4d-nchw": ((1, 4, 5, 6), [0, 3, 1, 2]),
    "4d-swap-hw": ((1, 4, 5, 6), [0, 2, 1, 3]),
    "4d-batch": ((1, 4, 5, 6), [3, 1, 2, 0]),
    "5d": ((1, 2, 3, 4, 5), [0, 3, 1, 4, 2]),
}


@pytest.mark.parametrize("case", TRANSPOSES)
def test_transpose(case):
    import tensorflow as tf

    shape, perm = TRANSPOSES[case]
    check_bit_exact(tf_int8(f"transpose-{perm}", lambda x: tf.transpose(x, perm), shape), "TRANSPOSE")


def test_transpose_6d_against_tflite():
    """TFLM transposes up to 5 dims: a 6-D transpose is checked against TFLite's reference kernels."""
    import tensorflow as tf

    perm = [0, 5, 3, 1, 4, 2]
    check_bit_exact(tf_int8(f"transpose-{perm}", lambda x: tf.transpose(x, perm), (1, 2, 3, 2, 3, 2)), "TRANSPOSE",
                    tflm=False)


# ---- GATHER ----

GATHERS = {
    "axis1": ((1, 4, 5, 6), [2, 0, 1, 1, 3], 1, 0),
    "axis2-runs": ((1, 4, 7, 6), [0, 1, 2, 6, 5, 4, 3, 3, 3], 2, 0),
    "axis-1": ((1, 4, 5, 6), [5, 0, 2], -1, 0),
    "2d-indices": ((1, 4, 5, 6), [[1, 0], [3, 3]], 2, 0),
    "batch-dims": ((1, 4, 5, 6), [[2, 0, 1]], 2, 1),
    "rank2": ((1, 30), [[7, 8, 9, 29, 0]], 1, 1),
}


@pytest.mark.parametrize("case", GATHERS)
def test_gather(case):
    import tensorflow as tf

    shape, idx, axis, bd = GATHERS[case]
    fn = lambda x: tf.gather(x, idx, axis=axis, batch_dims=bd)  # noqa: E731
    check_bit_exact(tf_int8(f"gather-{idx}-{axis}-{bd}", fn, shape), "GATHER")


def test_gather_of_constant_params():
    """GATHER from a table stored in the model (its params a constant int8 tensor): the kernel reads it in flash.
    The converter folds such a GATHER with constant indices away, so the graph is edited: params become a
    constant of the input's shape and quantization, added to the input by an ADD so the input is still used."""
    import copy

    import tensorflow as tf

    def edit(m, schema):
        sg = m.subgraphs[0]
        op = _op_of(m, schema, "GATHER")
        x = sg.tensors[op.inputs[0]]
        table = schema.TensorT()
        table.shape, table.type, table.name = list(x.shape), schema.TensorType.INT8, b"table"
        table.quantization = copy.deepcopy(x.quantization)
        buf = schema.BufferT()
        buf.data = np.random.default_rng(7).integers(-128, 128, x.shape).astype(np.int8).tobytes()
        m.buffers.append(buf)
        table.buffer = len(m.buffers) - 1
        sg.tensors.append(table)
        op.inputs = [len(sg.tensors) - 1, op.inputs[1]]

    base = tf_int8("gather-const-base", lambda x: tf.gather(x, [3, 1, 1, 0], axis=2) + tf.gather(x, [0, 1, 2, 3], axis=2),
                   (1, 3, 4, 5))
    tflite = edit_tflite(base, edit)
    g = parse_tflite(tflite)
    gathers = [op for op in g.operators if op.opcode == "GATHER"]
    assert len(gathers) == 2 and sum(g.tensors[op.inputs[0]].is_constant for op in gathers) == 1
    check_bit_exact(tflite, "GATHER")


# ---- DEPTH_TO_SPACE, SPACE_TO_DEPTH ----

@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space(block):
    import tensorflow as tf

    fn = lambda x: tf.nn.depth_to_space(x, block)  # noqa: E731
    check_bit_exact(tf_int8(f"d2s-{block}", fn, (1, 3, 4, 2 * block * block)), "DEPTH_TO_SPACE")


@pytest.mark.parametrize("block", [2, 3])
def test_space_to_depth(block):
    import tensorflow as tf

    fn = lambda x: tf.nn.space_to_depth(x, block)  # noqa: E731
    check_bit_exact(tf_int8(f"s2d-{block}", fn, (1, 2 * block, 3 * block, 5)), "SPACE_TO_DEPTH")


# ---- SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND ----

S2B = {
    "pads": ((1, 6, 6, 3), [2, 2], [[1, 1], [2, 0]]),
    "no-pad": ((1, 4, 6, 2), [2, 3], [[0, 0], [0, 0]]),
    "3x1": ((1, 5, 4, 2), [3, 1], [[2, 2], [0, 0]]),
    "nhc": ((1, 7, 3), [2], [[0, 1]]),
}


@pytest.mark.parametrize("case", S2B)
def test_space_to_batch_nd(case):
    """The padding is the zero point, as TFLite's kernel pads (its output offset; a dilated conv from older
    converters relies on it): checked against TFLite's reference kernels with a zero point far from 0.
    TFLM's kernel never sets that offset (its SpaceToBatchParams are left as allocated) and pads with whatever
    its arena held there (0 in one run, 9 in another, whatever the zero point): it is no reference for the
    padding."""
    import tensorflow as tf

    shape, block, pads = S2B[case]
    tflite = tf_int8(f"s2b-{block}-{pads}", lambda x: tf.space_to_batch_nd(x, block, pads), shape, lo=-0.3)
    assert parse_tflite(tflite).output_tensors[0].quant.zero_point[0] < -50  # the fill is not 0
    check_bit_exact(tflite, "SPACE_TO_BATCH_ND", tflm=False)


B2S = {
    "crops": ((4, 3, 3, 2), [2, 2], [[1, 0], [0, 1]]),
    "no-crop": ((6, 2, 3, 2), [2, 3], [[0, 0], [0, 0]]),
    "big-crops": ((9, 3, 3, 1), [3, 3], [[2, 3], [4, 1]]),
    "nhc": ((2, 5, 3), [2], [[1, 2]]),
}


@pytest.mark.parametrize("case", B2S)
def test_batch_to_space_nd(case):
    import tensorflow as tf

    shape, block, crops = B2S[case]
    fn = lambda x: tf.compat.v1.batch_to_space_nd(x, block, crops)  # noqa: E731
    check_bit_exact(tf_int8(f"b2s-{block}-{crops}", fn, shape), "BATCH_TO_SPACE_ND")


# ---- TILE (no TFLM kernel: TFLite's reference) ----

@pytest.mark.parametrize("multiples", [[1, 2, 1, 3], [1, 1, 3, 1], [1, 2, 2, 2], [2, 1, 1, 1], [1, 3, 1, 1]])
def test_tile(multiples):
    """TFLM has no TILE kernel: checked against TFLite's reference kernels (BUILTIN_REF)."""
    import tensorflow as tf

    tflite = tf_int8(f"tile-{multiples}", lambda x: tf.tile(x, multiples), (1, 3, 4, 5))
    check_bit_exact(tflite, "TILE", tflm=False)


def test_tile_many_axes():
    """A 5-D tile whose axes do not merge: more than 6 view axes, split into several views."""
    import tensorflow as tf

    tflite = tf_int8("tile-5d", lambda x: tf.tile(x, [1, 2, 3, 2, 2]), (1, 2, 3, 2, 3))
    check_bit_exact(tflite, "TILE", tflm=False)


# ---- MIRROR_PAD, PADV2 ----

@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
@pytest.mark.parametrize("pads", [[[0, 0], [1, 2], [2, 0], [0, 0]], [[0, 0], [3, 3], [1, 1], [1, 2]],
                                  [[0, 0], [0, 0], [0, 4], [0, 0]]])
def test_mirror_pad(mode, pads):
    import tensorflow as tf

    fn = lambda x: tf.pad(x, pads, mode=mode)  # noqa: E731
    check_bit_exact(tf_int8(f"mirror-{mode}-{pads}", fn, (1, 4, 5, 3)), "MIRROR_PAD")


@pytest.mark.parametrize("value", [0.5, -0.9, 3.0])
def test_padv2(value):
    import tensorflow as tf

    fn = lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 0], [0, 1]], constant_values=value)  # noqa: E731
    tflite = tf_int8(f"padv2-{value}", fn, (1, 4, 5, 3), hi=max(1.0, value))
    check_bit_exact(tflite, "PADV2")


# ---- CONCATENATION ----

@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2])
def test_concatenation(axis):
    import tensorflow as tf

    fn = lambda x: tf.concat([x, x[:, ::-1], x[:, :, ::-1]], axis=axis)  # noqa: E731
    check_bit_exact(tf_int8(f"concat-{axis}", fn, (1, 3, 4, 5)), "CONCATENATION")


@pytest.mark.parametrize("axis", [1, 2, 3])
def test_keras_concatenate(axis):
    def make(k):
        inp = k.Input((4, 6, 8))
        a = k.layers.Cropping2D(((1, 0), (0, 2)))(inp)
        b = k.layers.Cropping2D(((0, 1), (2, 0)))(inp)
        return k.Model(inp, k.layers.Concatenate(axis=axis)([a, b, a]))

    check_bit_exact(keras_int8(f"concatenate-{axis}", make, (4, 6, 8)), "CONCATENATION")


# ---- EXPAND_DIMS, SQUEEZE (the converter writes RESHAPE: the graph is edited) ----

def _reshape_to(opname: str, tflite: bytes, axis: int | None) -> bytes:
    def edit(m, schema):
        code = getattr(schema.BuiltinOperator, opname)
        oc = schema.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = code
        oc.version = 1
        m.operatorCodes.append(oc)
        sg = m.subgraphs[0]
        (op,) = [o for o in sg.operators if m.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.RESHAPE]
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.builtinOptionsType, op.builtinOptions = 0, None
        if axis is None:  # SQUEEZE: one input, the squeezed axes in its options
            op.inputs = op.inputs[:1]
            op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
            op.builtinOptions = schema.SqueezeOptionsT()
            op.builtinOptions.squeezeDims = [1]
        else:  # EXPAND_DIMS: the shape operand becomes the axis
            t = sg.tensors[op.inputs[1]]
            t.shape = [1]
            m.buffers[t.buffer].data = np.array([axis], np.int32).tobytes()

    return edit_tflite(tflite, edit)


@pytest.mark.parametrize("axis", [2, -1])
def test_expand_dims(axis):
    import tensorflow as tf

    base = tf_int8(f"expand-{axis}", lambda x: tf.expand_dims(x, axis) + 0.0, (1, 4, 5))
    tflite = _reshape_to("EXPAND_DIMS", base, axis)
    check_bit_exact(tflite, "EXPAND_DIMS")
    call = _lowered(tflite, "EXPAND_DIMS")
    assert call.alias and call.function == "tq_copy_s8"


def test_squeeze():
    import tensorflow as tf

    tflite = _reshape_to("SQUEEZE", tf_int8("squeeze", lambda x: tf.squeeze(x, 1), (1, 1, 4, 5)), None)
    check_bit_exact(tflite, "SQUEEZE")
    assert _lowered(tflite, "SQUEEZE").alias


def _lowered(tflite: bytes, opcode: str):
    from tinyq.compile.ops import lower
    from tinyq.compile.ops.kernel import check_call

    g = parse_tflite(tflite)
    op = next(op for op in g.operators if op.opcode == opcode)
    call = lower(g, op)
    check_call(call)
    return call


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


def test_keras_permute_reshape():
    def make(k):
        return k.Sequential([k.Input((4, 6, 8)), k.layers.Permute((3, 1, 2)), k.layers.Reshape((8, 24)),
                             k.layers.Permute((2, 1))])

    tflite = keras_int8("permute-reshape", make, (4, 6, 8))
    check_bit_exact(tflite, "TRANSPOSE")
    check_bit_exact(tflite, "RESHAPE")


def test_keras_upsampling2d_is_tile():
    """Keras 3's UpSampling2D (nearest) converts to RESHAPE + TILE, which TFLM cannot run: checked against
    TFLite's reference kernels."""
    tflite = keras_int8("upsampling2d", lambda k: k.Sequential([k.Input((4, 5, 3)), k.layers.UpSampling2D((2, 3))]),
                        (4, 5, 3))
    check_bit_exact(tflite, "TILE", tflm=False)


def test_keras_zero_padding2d():
    tflite = keras_int8("zeropad2d", lambda k: k.Sequential([k.Input((4, 5, 3)),
                                                             k.layers.ZeroPadding2D(((1, 2), (0, 1)))]), (4, 5, 3))
    check_bit_exact(tflite, "PAD")


def test_keras_ops_take():
    """keras.ops.take gives GATHER int64 indices, which TFLM's gather refuses ("Positions of type 'INT64' are not
    supported"): checked against TFLite's reference kernels."""
    def make(k):
        inp = k.Input((5, 6, 4))
        return k.Model(inp, k.ops.take(inp, np.array([4, 0, 2, 2]), axis=2))

    tflite = keras_int8("take", make, (5, 6, 4))
    g = parse_tflite(tflite)
    assert {g.tensors[op.inputs[1]].dtype for op in g.operators if op.opcode == "GATHER"} == {"INT64"}
    check_bit_exact(tflite, "GATHER", tflm=False)


# ---- on the device ----

def _chain(x):
    import tensorflow as tf

    a, b = tf.split(x, 2, axis=3)
    y = tf.concat([b, a], axis=3)
    y = tf.transpose(y, [0, 2, 1, 3])
    y = y[:, 1:7, ::-1, :]
    y = tf.pad(y, [[0, 0], [1, 1], [2, 1], [0, 0]], mode="REFLECT")
    y = tf.nn.depth_to_space(y, 2)
    y = tf.gather(y, [3, 0, 5, 5, 1, 2, 3, 4], axis=2)
    y = tf.slice(y, [0, 2, 0, 0], [1, 12, 8, 2])
    parts = tf.unstack(y, axis=1)
    y = tf.stack(parts[::-1], axis=2)
    return tf.pad(y, [[0, 0], [1, 0], [0, 2], [0, 0]], constant_values=0.3)


def test_move_chain_in_qemu(tmp_path):
    """A chain of data-movement ops on the Cortex-M4 (QEMU), bit-exact with TFLM: runs of words at unaligned
    addresses, 8-word blocks, reversed and repeated strides, several outputs."""
    from tinyq.pipeline import run_model_on

    tflite = tf_int8("qemu-chain", _chain, (1, 8, 8, 8))
    codes = {op.opcode for op in parse_tflite(tflite).operators}
    assert {"SPLIT", "TRANSPOSE", "STRIDED_SLICE", "MIRROR_PAD", "DEPTH_TO_SPACE", "GATHER", "UNPACK", "PACK",
            "PADV2"} <= codes, codes
    x = np.random.default_rng(4).integers(-128, 128, (3, 1, 8, 8, 8)).astype(np.int8)
    m, plan, _ = run_model_on(tflite, "qemu", x, tmp_path)
    assert m.outputs_match, f"inputs {m.mismatched_inputs} differ from TFLM"
    assert {"tq_move_s8", "tq_move_n_s8"} <= {c.function for c in plan.calls}


# ---- refusals ----

def _op_of(m, schema, name: str):
    code = getattr(schema.BuiltinOperator, name)
    return next(o for o in m.subgraphs[0].operators if m.operatorCodes[o.opcodeIndex].builtinCode == code)


def _refusal(tflite: bytes, opcode: str, edit):
    """The lowering of ``opcode`` in ``tflite`` edited by ``edit(model, schema, op)``: the error it raises."""
    from tinyq.compile.ops import lower
    from tinyq.errors import TinyqError

    g = parse_tflite(edit_tflite(tflite, lambda m, schema: edit(m, schema, _op_of(m, schema, opcode))))
    with pytest.raises(TinyqError) as e:
        lower(g, next(op for op in g.operators if op.opcode == opcode))
    return e.value


def test_refuses_an_output_quantized_otherwise():
    """A data-movement op whose output is quantized otherwise than its input would need requantizing."""
    from tinyq.errors import UnsupportedModelError

    def edit(m, schema, op):
        m.subgraphs[0].tensors[op.outputs[0]].quantization.scale = [0.5]

    tflite = tf_int8("strided-begin-end", STRIDED["begin-end"][1], (1, 4, 5, 6))
    e = _refusal(tflite, "STRIDED_SLICE", edit)
    assert isinstance(e, UnsupportedModelError) and "quantized" in str(e)


def test_concatenation_refuses_inputs_quantized_otherwise():
    """TFLM's CONCATENATION refuses int8 inputs not quantized as its output (no requantization): so does tinyq."""
    import tensorflow as tf

    def edit(m, schema, op):
        m.subgraphs[0].tensors[op.outputs[0]].quantization.zeroPoint = [7]

    tflite = tf_int8("concat-1", lambda x: tf.concat([x, x[:, ::-1], x[:, :, ::-1]], axis=1), (1, 3, 4, 5))
    e = _refusal(tflite, "CONCATENATION", edit)
    assert "CONCATENATION" in str(e) and "quantized" in str(e)


@pytest.mark.parametrize("field", ["ellipsisMask", "newAxisMask", "offset"])
def test_strided_slice_refuses_masks_tflm_ignores(field):
    """TFLM reads the ellipsis and new-axis masks as 0 and ignores offset, where TFLite honours them (its
    converter never writes them): no answer could be checked, so tinyq refuses them."""
    def edit(m, schema, op):
        setattr(op.builtinOptions, field, True if field == "offset" else 1)

    tflite = tf_int8("strided-begin-end", STRIDED["begin-end"][1], (1, 4, 5, 6))
    assert "STRIDED_SLICE" in str(_refusal(tflite, "STRIDED_SLICE", edit))


def test_strided_slice_refuses_a_shrunk_axis_left_empty():
    """A shrunk axis walked with a negative stride gives no element: TFLM writes nothing to the output."""
    def edit(m, schema, op):
        t = m.subgraphs[0].tensors[op.inputs[3]]
        m.buffers[t.buffer].data = np.array([1, -1, 1, 1], np.int32).tobytes()

    tflite = tf_int8("strided-shrink", STRIDED["shrink"][1], (1, 4, 5, 6))
    assert "to no element" in str(_refusal(tflite, "STRIDED_SLICE", edit))


def test_gather_refuses_indices_outside_the_axis():
    import tensorflow as tf

    def edit(m, schema, op):
        t = m.subgraphs[0].tensors[op.inputs[1]]
        m.buffers[t.buffer].data = np.array([2, 0, 1, 1, 9], np.int32).tobytes()

    tflite = tf_int8("gather-[2, 0, 1, 1, 3]-1-0", lambda x: tf.gather(x, [2, 0, 1, 1, 3], axis=1), (1, 4, 5, 6))
    assert "indices outside" in str(_refusal(tflite, "GATHER", edit))


def test_mirror_pad_refuses_pads_past_the_edge():
    """REFLECT mirrors at most size - 1 elements (SYMMETRIC size): TensorFlow refuses more, and TFLM would read
    past them."""
    import tensorflow as tf

    def edit(m, schema, op):
        sg = m.subgraphs[0]
        t = sg.tensors[op.inputs[1]]
        m.buffers[t.buffer].data = np.array([0, 0, 4, 0, 0, 0, 0, 0], np.int32).tobytes()
        sg.tensors[op.outputs[0]].shape = [1, 8, 5, 3]

    pads = [[0, 0], [1, 2], [2, 0], [0, 0]]
    tflite = tf_int8(f"mirror-REFLECT-{pads}", lambda x: tf.pad(x, pads, mode="REFLECT"), (1, 4, 5, 3))
    assert "mirrors at most 3" in str(_refusal(tflite, "MIRROR_PAD", edit))


def test_gate_checks_every_output_of_a_split():
    """The gate compares each output of a multi-output op with what it computes (the planner sizes buffers so)."""
    from tinyq.compile.analyze import check_compatibility

    def edit(m, schema):
        op = _op_of(m, schema, "SPLIT")
        m.subgraphs[0].tensors[op.outputs[2]].shape = [1, 6, 9, 5]

    issues = check_compatibility(parse_tflite(edit_tflite(split_tflite(3), edit)))
    assert any(i.opcode == "SPLIT" and "[1, 6, 9, 5]" in i.problem for i in issues), issues


# ---- the lowering ----

def test_ops_are_supported_and_lowerings_match_descriptors():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call

    for code in ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK", "PACK", "TRANSPOSE", "GATHER", "EXPAND_DIMS",
                 "SQUEEZE", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE",
                 "MIRROR_PAD", "PADV2", "CONCATENATION"):
        assert code in SUPPORTED_OPS

    for tflite in (tf_int8("strided-negative-strides", STRIDED["negative-strides"][1], (1, 4, 5, 6)), split_tflite(1),
                   tf_int8("qemu-chain", _chain, (1, 8, 8, 8))):
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
