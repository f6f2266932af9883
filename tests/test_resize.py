"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (tinyq/compile/ops/kernels/resize.py, firmware/kernels/tq_resize.c)
bit-exact with TFLM.

Keras's Resizing (bilinear and nearest, crop_to_aspect_ratio off: half-pixel centres) and UpSampling2D
(bilinear), and tf.compat.v1.image.resize_bilinear / resize_nearest_neighbor from a concrete function for
each of TFLite's coordinate modes (align_corners, half_pixel_centers, neither), up and down, by integer and
non-integer ratios, all converted to full int8. The generated C (host gcc) must give tflite_micro's bytes on
random tensors and on edge ones (every value at an end of int8, alternating ends).
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


def keras_tflite(shape, layer: str, args: tuple) -> bytes:
    """A one-layer Keras model (``layer`` of keras.layers with ``args``) converted to full int8."""
    from tinyq.model.quantize import quantize_keras

    def make():
        import keras

        inp = keras.Input(shape)
        kw = dict(args)
        m = keras.Model(inp, getattr(keras.layers, layer)(**kw)(inp))
        calib = np.random.default_rng(1).uniform(-2.0, 3.0, size=(32, *shape)).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["resize-keras", shape, layer, args], make)


def function_tflite(shape, key: tuple, fn) -> bytes:
    """``fn`` (float NHWC in, one tensor out) as a tf.function's concrete function converted to full int8 with a
    representative dataset; ``key`` names what fn computes (the cache key)."""

    def make():
        import tensorflow as tf

        f = tf.function(fn, input_signature=[tf.TensorSpec((1, *shape), tf.float32)])
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        calib = np.random.default_rng(1).uniform(-2.0, 3.0, size=(32, 1, *shape)).astype(np.float32)
        conv.representative_dataset = lambda: ([x] for x in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()

    return cached_tflite(["resize-function", shape, key], make)


def resize_fn(method: str, size, align: bool, half: bool):
    def fn(x):
        import tensorflow as tf

        f = (tf.compat.v1.image.resize_bilinear if method == "bilinear"
             else tf.compat.v1.image.resize_nearest_neighbor)
        return f(x, size, align_corners=align, half_pixel_centers=half)

    return fn


def inputs(shape, n_random: int = 6) -> np.ndarray:
    """Edge tensors (all -128, all 127, alternating ends, a ramp over every value) then random ones."""
    size = int(np.prod(shape))
    edges = [np.full(size, -128), np.full(size, 127), np.resize([-128, 127], size), np.resize([127, -128, 0], size),
             np.resize(np.arange(-128, 128), size)]
    rand = np.random.default_rng(2).integers(-128, 128, (n_random, size))
    return np.concatenate([np.stack(edges), rand]).astype(np.int8).reshape(-1, *shape)


def check_bit_exact(tflite: bytes, opcode: str) -> None:
    g = parse_tflite(tflite)
    assert opcode in [op.opcode for op in g.operators], [op.opcode for op in g.operators]
    x = inputs(g.input_tensors[0].shape[1:])
    ref = TflmReference(tflite)
    np.testing.assert_array_equal(run_on_host(tflite, x), np.stack([ref.run(s) for s in x]))


#: (input shape, output size): up, down, both at once, by non-integer ratios, to a single row / column, unchanged.
SIZES = [((5, 7, 3), (9, 4)), ((8, 8, 4), (3, 5)), ((4, 6, 2), (13, 17)), ((3, 3, 8), (12, 6)),
         ((6, 5, 1), (1, 7)), ((7, 9, 4), (7, 9)), ((2, 2, 5), (5, 3))]
MODES = [dict(align=False, half=False), dict(align=True, half=False), dict(align=False, half=True)]


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("mode", MODES, ids=["asymmetric", "align_corners", "half_pixel"])
@pytest.mark.parametrize("shape,size", SIZES, ids=["x".join(map(str, s)) + "-" + "x".join(map(str, z)) for s, z in SIZES])
def test_resize_modes_bit_exact_with_tflm(method, mode, shape, size):
    tflite = function_tflite(shape, ("v1", method, size, mode["align"], mode["half"]),
                             resize_fn(method, size, mode["align"], mode["half"]))
    g = parse_tflite(tflite)
    op = next(op for op in g.operators if op.opcode.startswith("RESIZE"))
    assert (op.options["align_corners"], op.options["half_pixel_centers"]) == (mode["align"], mode["half"])
    check_bit_exact(tflite, "RESIZE_BILINEAR" if method == "bilinear" else "RESIZE_NEAREST_NEIGHBOR")


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("shape,size", [((5, 7, 3), (9, 4)), ((8, 6, 4), (3, 5)), ((4, 4, 8), (10, 6))])
def test_keras_resizing_bit_exact_with_tflm(interpolation, shape, size):
    tflite = keras_tflite(shape, "Resizing", (("height", size[0]), ("width", size[1]),
                                              ("interpolation", interpolation), ("crop_to_aspect_ratio", False)))
    check_bit_exact(tflite, "RESIZE_BILINEAR" if interpolation == "bilinear" else "RESIZE_NEAREST_NEIGHBOR")


@pytest.mark.parametrize("factor", [2, (3, 2)])
def test_keras_upsampling_bilinear_bit_exact_with_tflm(factor):
    tflite = keras_tflite((5, 4, 6), "UpSampling2D", (("size", factor), ("interpolation", "bilinear")))
    check_bit_exact(tflite, "RESIZE_BILINEAR")


def test_keras_upsampling_nearest_is_no_resize_op():
    """UpSampling2D(interpolation="nearest") converts to RESHAPE and TILE, not RESIZE_NEAREST_NEIGHBOR: nothing of
    this module runs it (TILE is another family's)."""
    ops = [op.opcode for op in parse_tflite(keras_tflite((5, 4, 6), "UpSampling2D", (("size", 2),
                                                                                     ("interpolation", "nearest")))).operators]
    assert "RESIZE_NEAREST_NEIGHBOR" not in ops and "TILE" in ops


def test_nearest_map_is_tflm_float_arithmetic():
    """align_corners rounds half away from zero (TfLiteRound) in float32: 2 -> 5 with align_corners gives a
    scale of 0.25 and positions 0, .25, .5, .75, 1 (rounded 0, 0, 1, 1, 1)."""
    from tinyq.compile.ops.kernels.resize import bilinear_map, nearest_map

    assert nearest_map(2, 5, True, False) == [0, 0, 1, 1, 1]
    assert nearest_map(4, 2, False, True) == [1, 3]
    assert nearest_map(3, 7, False, False) == [0, 0, 0, 1, 1, 2, 2]
    # half-pixel upscaling starts left of the first input: a negative weight on a clamped row
    assert bilinear_map(2, 4, False, True)[0] == (0, 0, -256)


def test_resize_lowerings_are_supported_and_checked():
    from tinyq.compile.ops import SUPPORTED_OPS, lower
    from tinyq.compile.ops.kernel import check_call

    assert {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"} <= SUPPORTED_OPS
    for method, fn in (("bilinear", "tq_resize_bilinear_s8"), ("nearest", "tq_resize_nearest_s8")):
        g = parse_tflite(function_tflite((5, 7, 3), ("v1", method, (9, 4), True, False),
                                         resize_fn(method, (9, 4), True, False)))
        op = next(op for op in g.operators if op.opcode.startswith("RESIZE"))
        call = lower(g, op)
        check_call(call)
        assert call.function == fn and call.consumes == (op.inputs[1],)


def _edited(tflite: bytes, opcode: str, options: dict | None = None, size=None):
    """The graph of ``tflite`` with its ``opcode`` op's options updated (and its size operand replaced)."""
    g = parse_tflite(tflite)
    op = next(op for op in g.operators if op.opcode == opcode)
    ops = tuple(dataclasses.replace(o, options={**o.options, **(options or {})}) if o is op else o
                for o in g.operators)
    tensors = list(g.tensors)
    if size is not None:
        t = tensors[op.inputs[1]]
        tensors[op.inputs[1]] = dataclasses.replace(t, data=np.asarray(size, np.int32))
        y = tensors[op.outputs[0]]
        tensors[op.outputs[0]] = dataclasses.replace(y, shape=(1, size[0], size[1], y.shape[3]))
    return dataclasses.replace(g, operators=ops, tensors=tuple(tensors)), ops[op.index]


def test_align_corners_with_half_pixel_centers_is_refused():
    """TFLM's Prepare refuses a resize with both flags (TFLite's converter never writes it): so does tinyq."""
    from tinyq.compile.ops import lower

    tflite = function_tflite((5, 7, 3), ("v1", "bilinear", (9, 4), True, False), resize_fn("bilinear", (9, 4), True, False))
    g, op = _edited(tflite, "RESIZE_BILINEAR", {"half_pixel_centers": True})
    with pytest.raises(UnsupportedModelError, match="align_corners and half_pixel_centers"):
        lower(g, op)


def test_bilinear_overshooting_the_input_is_refused():
    """From 1 row to 2,048, TFLM's rounded 1/1024 step (1) reaches row 1 of a 1-row input: a read past it."""
    from tinyq.compile.ops import lower

    tflite = function_tflite((1, 2, 1), ("v1", "bilinear", (3, 2), False, False), resize_fn("bilinear", (3, 2), False, False))
    g, op = _edited(tflite, "RESIZE_BILINEAR", size=(2048, 2))
    with pytest.raises(UnsupportedModelError, match="reads past the input"):
        lower(g, op)
