"""Models users bring: common Keras architectures with seeded random weights, as a board user trains them.

Each entry builds a Keras 3 model (keras.applications at 96x96, and the layer mixes board users write:
autoencoders with Conv2DTranspose, recurrent gesture models on IMU windows, attention, two heads, two
inputs, front ends with Resizing or Rescaling, ...) and its calibration data. tests/test_zoo.py builds and
runs every one bit-exact in QEMU (the large ones marked slow); ``python -m benchmarks.zoo`` measures them
and writes benchmarks/zoo.md, the README's "Models you bring" table.

Weights are random: these models check what tinyq runs and measure speed and memory, not accuracy. Where
random weights would leave a classifier's logits all but equal (a softmax whose input scale int8 cannot
take, which a trained model never has), the classifier outputs its logits (``softmax=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SEED = 2026


@dataclass(frozen=True)
class Entry:
    """One architecture of the zoo."""

    name: str
    build: Callable
    what: str                 # what it is, for the table
    slow: bool = False        # large: its test is marked slow
    calib: str = "normal"     # calibration data: "normal" (standard normal) or "pixels" (0..255)


def _k():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras, keras.layers


def _cnn_head(L, x, classes=4, softmax=True):
    x = L.GlobalAveragePooling2D()(x)
    return L.Dense(classes, activation="softmax" if softmax else None)(x)


def mobilenet_v2():
    keras, _ = _k()
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=2,
                                          classifier_activation=None)


def _v3_with_head(minimalistic: bool):
    """MobileNetV3Small as board users fine-tune it: the backbone (include_top=False; Keras' own top adds a
    1,024-channel 1x1 conv, 0.44 MB of int8 weights on its own, past the Nano 33's flash with the rest) and a
    2-class head."""
    keras, L = _k()
    base = keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), alpha=0.75, minimalistic=minimalistic,
                                               include_top=False, weights=None, include_preprocessing=False)
    x = L.GlobalAveragePooling2D()(base.output)
    return keras.Model(base.input, L.Dense(2)(x), name="mobilenet_v3_small_min" if minimalistic else "mobilenet_v3_small")


def mobilenet_v3_small():
    return _v3_with_head(False)


def mobilenet_v3_small_minimalistic():
    return _v3_with_head(True)


def efficientnet_b0():
    keras, _ = _k()
    return keras.applications.EfficientNetB0(input_shape=(96, 96, 3), weights=None, classes=2,
                                             classifier_activation=None)


def unet():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 1))
    c1 = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    p1 = L.MaxPooling2D()(c1)
    c2 = L.Conv2D(16, 3, padding="same", activation="relu")(p1)
    p2 = L.MaxPooling2D()(c2)
    b = L.Conv2D(32, 3, padding="same", activation="relu")(p2)
    u2 = L.Conv2DTranspose(16, 2, strides=2, padding="same")(b)
    c3 = L.Conv2D(16, 3, padding="same", activation="relu")(L.Concatenate()([u2, c2]))
    u1 = L.UpSampling2D()(c3)
    c4 = L.Conv2D(8, 3, padding="same", activation="relu")(L.Concatenate()([u1, c1]))
    return keras.Model(inp, L.Conv2D(1, 1, activation="sigmoid")(c4), name="unet")


def conv_autoencoder():
    keras, L = _k()
    x = inp = keras.Input((28, 28, 1))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inp, L.Conv2D(1, 3, padding="same", activation="sigmoid")(x), name="conv_autoencoder")


def lstm_gesture():
    keras, L = _k()
    x = inp = keras.Input((50, 6), name="imu")
    x = L.LSTM(32)(x)
    return keras.Model(inp, L.Dense(5, activation="softmax")(x), name="lstm_gesture")


def gru_gesture():
    keras, L = _k()
    x = inp = keras.Input((50, 6), name="imu")
    x = L.GRU(24, return_sequences=True)(x)
    x = L.GRU(16)(x)
    return keras.Model(inp, L.Dense(5, activation="softmax")(x), name="gru_gesture")


def simple_rnn():
    keras, L = _k()
    x = inp = keras.Input((20, 3))
    return keras.Model(inp, L.Dense(3, activation="softmax")(L.SimpleRNN(16)(x)), name="simple_rnn")


def attention_block():
    keras, L = _k()
    x = inp = keras.Input((16, 24))
    a = L.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = L.Add()([x, a])
    x = L.Dense(32, activation="relu")(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name="attention_block")


def layernorm_mlp():
    keras, L = _k()
    x = inp = keras.Input((32,))
    x = L.Dense(64, activation="relu")(x)
    x = L.LayerNormalization()(x)
    x = L.Dense(32, activation="relu")(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name="layernorm_mlp")


def leaky_prelu_cnn():
    keras, L = _k()
    x = inp = keras.Input((24, 24, 3))
    x = L.LeakyReLU(0.1)(L.Conv2D(16, 3, strides=2)(x))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(24, 3)(x))
    return keras.Model(inp, _cnn_head(L, x), name="leaky_prelu_cnn")


def resizing_front_end():
    keras, L = _k()
    x = inp = keras.Input((48, 64, 3))
    x = L.Resizing(24, 24)(x)
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.MaxPooling2D()(x)
    return keras.Model(inp, _cnn_head(L, L.Conv2D(24, 3, activation="relu")(x)), name="resizing_front_end")


def rescaling_front_end():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(x)
    x = L.Conv2D(16, 3, strides=2, activation="relu")(x)
    return keras.Model(inp, _cnn_head(L, L.Conv2D(24, 3, activation="relu")(x)), name="rescaling_front_end")


def two_heads():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = L.Conv2D(32, 3, strides=2, activation="relu")(x)
    h = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, [L.Dense(3, activation="softmax", name="cls")(h), L.Dense(4, name="box")(h)],
                       name="two_heads")


def two_inputs():
    keras, L = _k()
    a, b = keras.Input((50, 6), name="imu"), keras.Input((4,), name="meta")
    x = L.Conv1D(16, 5, strides=2, activation="relu")(a)
    x = L.GlobalAveragePooling1D()(x)
    x = L.Concatenate()([x, L.Dense(8, activation="relu")(b)])
    return keras.Model([a, b], L.Dense(5, activation="softmax")(x), name="two_inputs")


def conv1d_kws():
    keras, L = _k()
    x = inp = keras.Input((49, 10))
    for f in (32, 32, 64):
        x = L.Conv1D(f, 3, padding="same", activation="relu")(x)
        x = L.MaxPooling1D()(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(12, activation="softmax")(x), name="conv1d_kws")


def separable_cnn():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = L.SeparableConv2D(32, 3, padding="same", activation="relu")(x)
    x = L.SeparableConv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inp, _cnn_head(L, x), name="separable_cnn")


def global_max_cnn():
    keras, L = _k()
    x = inp = keras.Input((28, 28, 1))
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = L.GlobalMaxPooling2D()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="global_max_cnn")


def upsampling_bilinear():
    keras, L = _k()
    x = inp = keras.Input((16, 16, 4))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = L.UpSampling2D(interpolation="bilinear")(x)
    return keras.Model(inp, L.Conv2D(2, 3, padding="same")(x), name="upsampling_bilinear")


def activations_mlp():
    keras, L = _k()
    x = inp = keras.Input((20,))
    x = L.Dense(32, activation="elu")(x)
    x = L.Dense(32, activation="hard_swish")(x)
    x = L.Dense(32, activation="gelu")(x)
    x = L.Dense(16, activation="swish")(x)
    return keras.Model(inp, L.Dense(3, activation="softmax")(x), name="activations_mlp")


def dilated_cnn():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 1))
    x = L.Conv2D(8, 3, dilation_rate=2, activation="relu")(x)
    x = L.Conv2D(16, 3, dilation_rate=2, padding="same", activation="relu")(x)
    return keras.Model(inp, _cnn_head(L, x), name="dilated_cnn")


def reshape_mix():
    keras, L = _k()
    x = inp = keras.Input((20, 20, 2))
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    x = L.Conv2D(8, 3, activation="relu")(x)
    x = L.Cropping2D(((2, 1), (1, 2)))(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Reshape((-1, 8))(x)
    x = L.Conv1D(12, 3, strides=2, activation="relu")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name="reshape_mix")


def batchnorm_swish_cnn():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    for f, s in ((16, 2), (32, 2), (32, 1)):
        x = L.Conv2D(f, 3, strides=s, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("swish")(x)
        x = L.Dropout(0.2)(x)
    return keras.Model(inp, _cnn_head(L, x), name="batchnorm_swish_cnn")


def residual_cnn():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    for _ in range(2):
        y = L.Conv2D(16, 3, padding="same", activation="relu")(x)
        y = L.Conv2D(16, 3, padding="same")(y)
        x = L.ReLU()(L.Add()([x, y]))
    return keras.Model(inp, _cnn_head(L, L.MaxPooling2D()(x)), name="residual_cnn")


def squeeze_excite_cnn():
    keras, L = _k()
    x = inp = keras.Input((32, 32, 3))
    x = L.Conv2D(24, 3, strides=2, padding="same", activation="relu")(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(6, 1, activation="relu")(s)
    s = L.Conv2D(24, 1, activation="hard_sigmoid")(s)
    x = L.Multiply()([x, s])
    return keras.Model(inp, _cnn_head(L, x), name="squeeze_excite_cnn")


def bidirectional_lstm():
    keras, L = _k()
    x = inp = keras.Input((20, 6), name="imu")
    x = L.Bidirectional(L.LSTM(12))(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name="bidirectional_lstm")


def tiny_vit_mixer():
    keras, L = _k()
    x = inp = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 4, strides=4)(x)             # patches: 4x4 of 16
    x = L.Reshape((16, 16))(x)
    t = L.Permute((2, 1))(x)                       # token mixing
    t = L.Dense(16, activation="gelu")(t)
    x = L.Add()([x, L.Permute((2, 1))(t)])
    x = L.Dense(16, activation="gelu")(x)         # channel mixing
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(4, activation="softmax")(x), name="tiny_vit_mixer")


ZOO: tuple[Entry, ...] = (
    Entry("mobilenet_v2_035_96", mobilenet_v2, "keras.applications MobileNetV2 alpha 0.35, 96x96x3", slow=True),
    Entry("mobilenet_v3_small_075_96", mobilenet_v3_small,
          "keras.applications MobileNetV3Small alpha 0.75, 96x96x3, backbone + 2-class head", slow=True),
    Entry("mobilenet_v3_small_min_96", mobilenet_v3_small_minimalistic,
          "MobileNetV3Small(minimalistic=True) alpha 0.75, 96x96x3, backbone + 2-class head", slow=True),
    Entry("efficientnet_b0_96", efficientnet_b0, "keras.applications EfficientNetB0, 96x96x3", slow=True),
    Entry("unet", unet, "small UNet: Conv2DTranspose, UpSampling2D, skip Concatenates"),
    Entry("conv_autoencoder", conv_autoencoder, "convolutional autoencoder: stride-2 Conv2D, Conv2DTranspose"),
    Entry("lstm_gesture", lstm_gesture, "LSTM(32) on 50x6 IMU windows, 5 gestures"),
    Entry("gru_gesture", gru_gesture, "two GRUs (return_sequences) on 50x6 IMU windows"),
    Entry("simple_rnn", simple_rnn, "SimpleRNN(16)"),
    Entry("bidirectional_lstm", bidirectional_lstm, "Bidirectional(LSTM(12))"),
    Entry("attention_block", attention_block, "MultiHeadAttention (2 heads) + residual + MLP"),
    Entry("tiny_vit_mixer", tiny_vit_mixer, "patch embedding, token and channel mixing (Permute, Dense, gelu)"),
    Entry("layernorm_mlp", layernorm_mlp, "MLP with LayerNormalization"),
    Entry("leaky_prelu_cnn", leaky_prelu_cnn, "CNN with LeakyReLU and PReLU"),
    Entry("resizing_front_end", resizing_front_end, "Resizing(24, 24) front end + CNN"),
    Entry("rescaling_front_end", rescaling_front_end, "Rescaling(1/127.5, -1) front end + CNN", calib="pixels"),
    Entry("two_heads", two_heads, "two-headed CNN: class softmax and box regression"),
    Entry("two_inputs", two_inputs, "two inputs: Conv1D on IMU + Dense on metadata"),
    Entry("conv1d_kws", conv1d_kws, "Conv1D keyword spotter on 49x10 MFCC"),
    Entry("separable_cnn", separable_cnn, "SeparableConv2D CNN"),
    Entry("global_max_cnn", global_max_cnn, "CNN with GlobalMaxPooling2D"),
    Entry("upsampling_bilinear", upsampling_bilinear, "UpSampling2D(bilinear) decoder"),
    Entry("activations_mlp", activations_mlp, "MLP with elu, hard_swish, gelu, swish"),
    Entry("dilated_cnn", dilated_cnn, "dilated Conv2D"),
    Entry("reshape_mix", reshape_mix, "ZeroPadding2D, Cropping2D, Permute, Reshape, Conv1D"),
    Entry("batchnorm_swish_cnn", batchnorm_swish_cnn, "Conv + BatchNorm + swish + Dropout"),
    Entry("residual_cnn", residual_cnn, "residual blocks (Add)"),
    Entry("squeeze_excite_cnn", squeeze_excite_cnn, "squeeze-and-excitation (hard_sigmoid, Multiply)"),
)
ENTRIES = {e.name: e for e in ZOO}


def build(name: str):
    """The seeded Keras model ``name``, with BatchNorm statistics as a trained model has them."""
    from benchmarks.models import randomize_batchnorm

    model = ENTRIES[name].build()
    randomize_batchnorm(model)
    return model


def calibration(name: str, model, n: int = 64):
    """Seeded calibration samples for ``model``: an array, or a dict by input name for several inputs."""
    rng = np.random.default_rng(SEED)
    pixels = ENTRIES[name].calib == "pixels"

    def one(shape):
        x = rng.uniform(0, 255, size=(n, *shape)) if pixels else rng.normal(size=(n, *shape))
        return x.astype(np.float32)

    if len(model.inputs) == 1:
        return one(tuple(model.inputs[0].shape[1:]))
    return {t.name.split(":")[0]: one(tuple(t.shape[1:])) for t in model.inputs}


def measure_entry(name: str, cycles: bool = False) -> dict:
    """``name`` saved as a user saves it (.keras and its calibration file) and taken through `tinyq build` and
    `tinyq flash --emulator qemu` (benchmarks.run.measure); a refusal is its one line."""
    import tempfile
    from pathlib import Path

    from benchmarks.run import measure
    from tinyq.errors import TinyqError
    from tinyq.model.tfenv import quiet

    e = ENTRIES[name]
    with tempfile.TemporaryDirectory() as tmp:
        with quiet():
            model = build(name)
            path = Path(tmp) / f"{name}.keras"
            model.save(path)
        calib = calibration(name, model)
        cpath = Path(tmp) / ("calib.npz" if isinstance(calib, dict) else "calib.npy")
        np.savez(cpath, **calib) if isinstance(calib, dict) else np.save(cpath, calib)
        try:
            r = measure(path, cpath, Path(tmp) / "b", cycles)
        except TinyqError as err:
            return {"model": name, "what": e.what, "runs": False, "refused": str(err)}
    r.pop("layers", None)
    return {"model": name, "what": e.what, "runs": bool(r["outputs_bit_exact"]), **r}


#: What zoo.json keeps of a measurement.
ROW_KEYS = ("model", "what", "runs", "refused", "instructions", "flash_bytes", "arena_bytes")

HEADER = """# Models you bring (seeded random weights, nano33 QEMU twin)

Written by `python -m benchmarks.zoo` (each model saved as a .keras file with its calibration data, then
`tinyq build --board nano33` and `tinyq flash --emulator qemu`, as a user runs them). Instructions are QEMU's
exact counts of one inference; arena is the model's RAM (activations and scratch); flash is the whole
firmware.

"""


def table(rows: list[dict]) -> str:
    """The README's "Models you bring" table."""
    out = ["| architecture | runs | instructions | arena | flash |", "|---|---|---|---|---|"]
    for r in rows:
        if r.get("refused"):
            out.append(f"| {r['what']} | refused: {r['refused']} | | | |")
        else:
            out.append(f"| {r['what']} | {'yes, bit-exact' if r['runs'] else 'NO: outputs differ'} | "
                       f"{r['instructions']:,} | {r['arena_bytes']:,} B | {r['flash_bytes']:,} B |")
    n = sum(bool(r["runs"]) for r in rows)
    return "\n".join(out) + f"\n\n{n} of {len(rows)} run bit-exact on the Nano 33 BLE's QEMU twin.\n"


def main(argv: list[str]) -> int:
    """``python -m benchmarks.zoo [NAME...]``: measure the zoo, or some of it (their rows replace theirs in the
    recorded table), and write benchmarks/zoo.md and .json."""
    import json
    from pathlib import Path

    here = Path(__file__).resolve().parent
    names = [a for a in argv if not a.startswith("-")] or [e.name for e in ZOO]
    rows = []
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name}", flush=True)
        r = measure_entry(name)
        rows.append({k: r[k] for k in ROW_KEYS if k in r})
        print("   ", {k: v for k, v in rows[-1].items() if k in ("runs", "instructions", "arena_bytes", "flash_bytes",
                                                               "refused")}, flush=True)
    if len(names) < len(ZOO) and (here / "zoo.json").is_file():
        # Some of the zoo measured again: their rows replace theirs in the recorded table, the others stay.
        fresh = {r["model"]: r for r in rows}
        old = json.loads((here / "zoo.json").read_text())
        if {r["model"] for r in old} == {e.name for e in ZOO}:
            rows = [fresh.get(r["model"], r) for r in old]
    if len(rows) == len(ZOO):
        (here / "zoo.json").write_text(json.dumps(rows, indent=2) + "\n")
        (here / "zoo.md").write_text(HEADER + table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
