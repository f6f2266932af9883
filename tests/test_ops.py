"""Every kernel against TFLM, op by op, on randomized shapes, strides, paddings and dilations.

Each case is a one-layer Keras model converted to full int8 by TensorFlow; the
generated C (host gcc) must give the same bytes as tflite_micro on 20 inputs.
Cases come from a seeded generator, so a failure names a reproducible case.
"""

from __future__ import annotations

import inspect
import zlib

import numpy as np
import pytest

from conftest import cached_tflite
from tinyq.pipeline import run_on_host
from tinyq.graph import parse_tflite
from tinyq.compile.plan import PlanOptions, plan_model
from tinyq.model.reference import TflmReference

ACTS = [None, "relu", "relu6"]


def _cases(n_per_kind: int = 6, seed: int = 7):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n_per_kind):
        k = int(rng.integers(1, 6))
        strides = int(rng.integers(1, 3))
        dil = 1 if strides > 1 else int(rng.integers(1, 3))
        size = int(rng.integers(max(k * dil, 3), 12))
        cases.append(("conv", dict(h=size, w=size + int(rng.integers(0, 3)), c=int(rng.integers(1, 9)),
                                   filters=int(rng.integers(1, 17)), k=k, strides=strides, dilation=dil,
                                   padding=["same", "valid"][int(rng.integers(0, 2))], act=ACTS[i % 3],
                                   bias=bool(rng.integers(0, 2)))))
        cases.append(("dw", dict(h=size, w=size, c=int(rng.integers(1, 9)), k=k, strides=strides, dilation=dil,
                                 padding=["same", "valid"][int(rng.integers(0, 2))], act=ACTS[(i + 1) % 3],
                                 mult=int(rng.integers(1, 3)))))
        cases.append(("fc", dict(n=int(rng.integers(1, 64)), units=int(rng.integers(1, 33)), act=ACTS[i % 2],
                                 bias=bool(rng.integers(0, 2)))))
        pool = int(rng.integers(2, 4))
        cases.append(("maxpool" if i % 2 else "avgpool",
                      dict(h=int(rng.integers(pool, 12)), w=int(rng.integers(pool, 12)), c=int(rng.integers(1, 9)),
                           pool=pool, strides=int(rng.integers(1, pool + 1)),
                           padding=["same", "valid"][int(rng.integers(0, 2))])))
        cases.append(("add", dict(h=int(rng.integers(1, 8)), w=int(rng.integers(1, 8)), c=int(rng.integers(1, 9)),
                                  act=ACTS[i % 2])))
        cases.append(("softmax", dict(n=int(rng.integers(2, 40)), rows=int(rng.integers(1, 4)))))
        hw = dict(h=int(rng.integers(1, 8)), w=int(rng.integers(1, 8)), c=int(rng.integers(1, 9)))
        cases.append(("mul", dict(**hw, bcast=["none", "channel", "pixel"][i % 3])))
        cases.append(("add_bcast", dict(**hw, bcast=["channel", "pixel"][i % 2])))
        cases.append(("relu", dict(**hw, six=bool(i % 2))))
        cases.append(("pad", dict(**hw, top=int(rng.integers(0, 3)), left=int(rng.integers(0, 3)),
                                  bottom=int(rng.integers(0, 3)), right=int(rng.integers(0, 3)))))
        cases.append(("concat", dict(**hw, c2=int(rng.integers(1, 9)), axis=[-1, 1, 2][i % 3])))
        cases.append(("sigmoid" if i % 2 else "tanh", dict(n=int(rng.integers(1, 64)), scale=float(rng.uniform(0.5, 4)))))
        cases.append(("mean", dict(h=int(rng.integers(1, 9)), w=int(rng.integers(1, 9)), c=int(rng.integers(1, 17)),
                                   keepdims=bool(i % 2), axes=[(1, 2), (1, 2), (3,), (2,)][i % 4])))
    return cases


def _model(kind: str, p: dict):
    import keras

    # crc32, not hash(): str hashes change from one process to the next (PYTHONHASHSEED).
    keras.utils.set_random_seed(zlib.crc32(repr((kind, sorted(p.items()))).encode()) % 2**31)
    L = keras.layers
    if kind == "conv":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        out = L.Conv2D(p["filters"], p["k"], strides=p["strides"], dilation_rate=p["dilation"],
                       padding=p["padding"], activation=p["act"], use_bias=p["bias"],
                       bias_initializer="random_normal")(inp)
    elif kind == "dw":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        out = L.DepthwiseConv2D(p["k"], strides=p["strides"], dilation_rate=p["dilation"], padding=p["padding"],
                                depth_multiplier=p["mult"], activation=p["act"],
                                bias_initializer="random_normal")(inp)
    elif kind == "fc":
        inp = keras.Input((p["n"],))
        out = L.Dense(p["units"], activation=p["act"], use_bias=p["bias"], bias_initializer="random_normal")(inp)
    elif kind in ("maxpool", "avgpool"):
        inp = keras.Input((p["h"], p["w"], p["c"]))
        layer = L.MaxPooling2D if kind == "maxpool" else L.AveragePooling2D
        out = layer(p["pool"], strides=p["strides"], padding=p["padding"])(inp)
    elif kind == "add":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        a = L.Conv2D(p["c"], 1)(inp)
        b = L.Conv2D(p["c"], 1)(inp)
        out = L.Add()([a, b])
        if p["act"]:
            out = L.Activation(p["act"])(out)
    elif kind == "softmax":
        inp = keras.Input((p["rows"], p["n"]))
        out = L.Softmax()(L.Dense(p["n"])(inp))
    elif kind in ("mul", "add_bcast"):
        inp = keras.Input((p["h"], p["w"], p["c"]))
        a = L.Conv2D(p["c"], 1)(inp)
        if p["bcast"] == "channel":  # squeeze-and-excitation style: [1,H,W,C] * [1,1,1,C]
            b = L.Conv2D(p["c"], 1)(L.AveragePooling2D(pool_size=(p["h"], p["w"]))(inp))
        elif p["bcast"] == "pixel":  # spatial attention: [1,H,W,C] * [1,H,W,1]
            b = L.Conv2D(1, 1)(inp)
        else:
            b = L.Conv2D(p["c"], 1)(inp)
        out = (L.Multiply() if kind == "mul" else L.Add())([a, b])
    elif kind == "relu":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        out = L.ReLU(6.0 if p["six"] else None)(L.Concatenate()([inp, inp]))
    elif kind == "pad":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        out = L.ZeroPadding2D(((p["top"], p["bottom"]), (p["left"], p["right"])))(L.Conv2D(p["c"], 1)(inp))
    elif kind in ("sigmoid", "tanh"):
        inp = keras.Input((p["n"],))
        out = L.Activation(kind)(L.Dense(p["n"], kernel_initializer=keras.initializers.RandomNormal(0, p["scale"]))(inp))
    elif kind == "mean":  # GlobalAveragePooling2D converts to MEAN over axes 1, 2
        inp = keras.Input((p["h"], p["w"], p["c"]))
        x = L.Conv2D(p["c"], 1)(inp)
        out = L.Lambda(lambda t: keras.ops.mean(t, axis=p["axes"], keepdims=p["keepdims"]))(x)
    elif kind == "concat":
        inp = keras.Input((p["h"], p["w"], p["c"]))
        a = L.Conv2D(p["c"], 1)(inp)
        b = L.Conv2D(p["c2"] if p["axis"] == -1 else p["c"], 1)(inp)
        out = L.Concatenate(axis=p["axis"])([a, b])
    return keras.Model(inp, out)


# The 3x3 depthwise and matrix-product fast paths on purpose: channels a multiple of 4,
# dilation (the zero-point row), a clamped activation (sums, then requantization in C),
# stride 2 with valid padding, 1x1 pointwise convs, unaligned channel counts with dilation.
EXTRA = [
    ("dw", dict(h=9, w=7, c=8, k=3, strides=1, dilation=2, padding="same", act="relu6", mult=1)),
    ("dw", dict(h=8, w=9, c=12, k=3, strides=2, dilation=1, padding="valid", act=None, mult=1)),
    ("dw", dict(h=5, w=5, c=4, k=3, strides=1, dilation=1, padding="same", act="relu", mult=1)),
    ("conv", dict(h=6, w=7, c=8, filters=5, k=1, strides=1, dilation=1, padding="valid", act="relu6", bias=True)),
    ("conv", dict(h=9, w=9, c=3, filters=6, k=3, strides=1, dilation=2, padding="same", act=None, bias=True)),
    ("conv", dict(h=7, w=6, c=4, filters=3, k=3, strides=2, dilation=1, padding="same", act="relu", bias=False)),
]
# 3x3 stride-1 convs the Winograd kernel takes (w16 = 3: widths a multiple of 8, input channels of 4):
# one group of pixels a row, two, and a map 2 rows high (both kernel rows outside at once).
WINO = [("conv", dict(h=h, w=w, c=c, filters=f, k=3, strides=1, dilation=1, padding="same", act=None, bias=b))
        for h, w, c, f, b in [(5, 8, 4, 2, True), (6, 16, 8, 6, False), (2, 8, 12, 4, True)]]
# 3x3 depthwise border columns through weight streams of their own (tinyq.compile.ops.layout.depthwise3x3_edge):
# both sides at stride 1 and 2, the right side only (stride 2, even width), a 3-wide input, and maps that
# take none (an input 2 wide, an output 17 wide).
DW_EDGES = [("dw", dict(h=h, w=w, c=c, k=3, strides=s, dilation=1, padding="same", act=a, mult=1))
            for h, w, c, s, a in [(5, 5, 8, 1, None), (7, 7, 4, 2, "relu"), (7, 6, 4, 2, None), (3, 3, 4, 1, "relu"),
                                  (4, 2, 4, 1, None), (4, 17, 4, 1, "relu")]]
# First layers (1-3 input channels): kernel rows of whole words (im2col_words: a KWS-like 5x4 on one channel
# at stride 2, taps clipped at both sides; 3x2 on two; 3x4 on one with its rows 2 apart), and of bytes
# (im2col_bytes: 3x3 on three, stride 2). 21 output pixels leave a lone last one (tq_conv_pixel_w16b), with an
# odd and an even count of channel pairs. Rows of four pixels inside the input copy each pixel's kernel rows into
# its patch (im2col_row4): three words a row unrolled (3x3 on three channels, IC-like at stride 1, VWW-like at
# stride 2 with the padding on the right only), and the word loop (3x3 on two channels: 6 bytes a row).
FIRST = [("conv", dict(h=h, w=w, c=c, filters=f, k=k, strides=s, dilation=d, padding=pad, act=a, bias=True))
         for h, w, c, f, k, s, d, pad, a in [(13, 6, 1, 8, (5, 4), 2, 1, "same", "relu"),
                                             (7, 3, 2, 6, (3, 2), 1, 1, "same", None),
                                             (13, 6, 3, 8, 3, 2, 1, "same", None),
                                             (6, 5, 1, 4, (4, 4), 1, 1, "valid", "relu"),
                                             (9, 6, 1, 4, (3, 4), 1, (2, 1), "same", None),
                                             (9, 12, 3, 8, 3, 1, 1, "same", "relu"),
                                             (10, 20, 3, 4, 3, 2, 1, "same", None),
                                             (8, 10, 2, 4, 3, 1, 1, "same", None)]]
# Channel-planar depthwise rows of two quads or more (tq_dw3x3_plane), with a pair, a pair and a single left
# over, and rows that end in a quint (9 and 13 outputs: its last quad and the single as five).
DW_QUADS = [("dw", dict(h=h, w=w, c=c, k=3, strides=1, dilation=1, padding="same", act=a, mult=1))
            for h, w, c, a in [(3, 10, 4, None), (4, 11, 5, "relu"), (2, 9, 3, None), (3, 13, 4, None)]]
# Global average pools (KWS's 25x5 one, smaller): eight channels at a time, and four left over.
POOLS = [("avgpool", dict(h=h, w=w, c=c, pool=(h, w), strides=1, padding="valid")) for h, w, c in [(5, 3, 24), (4, 4, 12)]]
CASES = _cases() + EXTRA + DW_EDGES + WINO + FIRST + DW_QUADS + POOLS


def op_tflite(kind: str, params: dict) -> bytes:
    """The case's one-layer model converted to full int8 (cached; the builder's source is part of the key, so
    editing a test model reconverts it)."""
    from tinyq.model.quantize import quantize_keras

    def make():
        m = _model(kind, params)
        calib = np.random.default_rng(1).normal(size=(32, *m.inputs[0].shape[1:])).astype(np.float32)
        return quantize_keras(m, calib)

    return cached_tflite(["op", kind, sorted(params.items()), inspect.getsource(_model)], make)


@pytest.mark.parametrize("kind,params", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_op_bit_exact_with_tflm(kind, params):
    tflite = op_tflite(kind, params)
    g = parse_tflite(tflite)
    expected_op = {"conv": "CONV_2D", "dw": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED", "maxpool": "MAX_POOL_2D",
                   "avgpool": "AVERAGE_POOL_2D", "add": "ADD", "softmax": "SOFTMAX", "mul": "MUL", "add_bcast": "ADD",
                   "relu": "RELU6" if params.get("six") else "RELU", "pad": "PAD", "concat": "CONCATENATION",
                   "mean": "MEAN", "sigmoid": "LOGISTIC", "tanh": "TANH"}[kind]
    assert expected_op in {op.opcode for op in g.operators}, [op.opcode for op in g.operators]
    ref = TflmReference(tflite)
    x = np.random.default_rng(2).integers(-128, 128, (20, *g.input_tensors[0].shape)).astype(np.int8)
    want = np.stack([ref.run(s) for s in x])
    # A depthwise case runs each kernel the planner may pick: windowed, then (below) channel-planar.
    windowed = {"dw_planes": False} if kind == "dw" else {}
    got = run_on_host(tflite, x, **windowed)
    np.testing.assert_array_equal(got, want)
    if kind in ("conv", "fc", "dw"):
        # The same in the layout that spends flash on speed: conv and FC weights as int16 pairs (the _w16
        # kernels), 3x3 depthwise border columns with streams of their own.
        plan16 = plan_model(g, PlanOptions(weights="int16", **windowed))
        assert kind == "dw" or any(dict(c.params).get("w16") for c in plan16.calls)
        got16 = run_on_host(tflite, x, plan=plan16)
        np.testing.assert_array_equal(got16, want)
    if kind == "conv" and winograd_applies(tflite):
        # And by Winograd F(2, 3), where the planner may pick it.
        wino = plan_model(g, PlanOptions(weights="int16", wino=True))
        assert any(dict(c.params).get("w16") == 3 for c in wino.calls)
        np.testing.assert_array_equal(run_on_host(tflite, x, plan=wino), want)
    if kind == "dw" and planar_applies(tflite):
        planes = plan_model(g, PlanOptions(dw_planes=True))
        assert any(c.function == "tq_depthwise3x3_plane_s8" for c in planes.calls)
        got_planes = run_on_host(tflite, x, plan=planes)
        np.testing.assert_array_equal(got_planes, want)


def planar_applies(tflite: bytes) -> bool:
    """Whether a case's depthwise layer can run channel-planar (3x3, depth multiplier 1, dilation 1, the
    fast path with the full int8 range): then the planar run must not be skipped."""
    from tinyq.compile.ops.lower_ops import depthwise3x3_plane_call

    g = parse_tflite(tflite)
    return any(depthwise3x3_plane_call(g, op) is not None for op in g.operators)


def winograd_applies(tflite: bytes) -> bool:
    """Whether a case's conv can run by Winograd F(2, 3) (then that run must not be skipped)."""
    from tinyq.compile.ops import lower
    from tinyq.compile.ops.lower_ops import conv_winograd_ok

    g = parse_tflite(tflite)
    return any(conv_winograd_ok(dict(lower(g, op).params)) for op in g.operators if op.opcode == "CONV_2D")


EDGE_SIDES = [("left", "right"), ("left", "right"), ("right",), ("left", "right"), (), ()]


@pytest.mark.parametrize("params,sides", [(p, s) for (_, p), s in zip(DW_EDGES, EDGE_SIDES)])
def test_depthwise_border_streams_where_one_column_is_outside(params, sides):
    """TensorFlow pads an even width at stride 2 on the right only; an input 2 wide cannot hold the moved
    window; an output wider than 16 keeps its flash (border columns are few there)."""
    g = parse_tflite(op_tflite("dw", params))
    (dw,) = [c for c in plan_model(g, PlanOptions(weights="int16", dw_planes=False)).kernel_calls
             if c.function == "tq_depthwise3x3_s8"]
    assert tuple(side for side in ("left", "right") if f"w_{side}" in dict(dw.params)) == sides
