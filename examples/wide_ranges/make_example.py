"""Make the QAT example: a digits CNN whose first activation spans three decades across channels.

Post-training int8 quantizes each activation tensor with one scale. When the channels of a tensor
have very different ranges (Nagel et al., "Data-Free Quantization", 2019, found up to 100x and more
between the channels of MobileNetV2 after batch-norm folding), that one scale is set by the widest
channel and the narrow channels are left with a few int8 steps. Quantization-aware training sees
this during fine-tuning and adapts the weights to it.

This script trains a small depthwise-separable CNN on scikit-learn's digits (offline), then rescales
output channel c of the first convolution by s_c (s from 1 to 1000, log-spaced) and the matching
channel of the depthwise convolution after it by 1/s_c. ReLU(s x) = s ReLU(x), so the float model
computes exactly the same function; only the ranges of the first activation change. Writes, next to
this file:

- ``model.keras``: the float model (Keras 3)
- ``train.npz``: ``x`` (1,200, 8, 8, 1) and ``y``, for fine-tuning (``--train``)
- ``calib.npy``: 300 training images, for calibration
- ``test.npz``: the 597 held-out images and labels, for ``--eval``

Run: ``.venv/bin/python examples/wide_ranges/make_example.py`` (about 20 s on 2 cores).
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
DECADES = 3.0   # the first activation's channel ranges span 10**DECADES


def main() -> None:
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(SEED)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    train, test = order[:1200], order[1200:]
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv"),
        layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise"),
        layers.Conv2D(32, 1, activation="relu", name="pointwise"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, name="logits"),
    ], name="wide_ranges")
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=30, batch_size=32, verbose=0)
    before = model.predict(x[test], verbose=0)
    s = 10 ** np.linspace(0, DECADES, 16)
    np.random.default_rng(SEED).shuffle(s)
    conv, dw = model.get_layer("conv"), model.get_layer("depthwise")
    k, b = conv.get_weights()
    conv.set_weights([k * s, b * s])
    k, b = dw.get_weights()
    dw.set_weights([k / s[None, None, :, None], b])
    after = model.predict(x[test], verbose=0)
    print(f"float test accuracy: {np.mean(after.argmax(1) == y[test]):.4f} "
          f"(max change of the logits by the rescaling: {np.abs(after - before).max():.2g})")
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "train.npz", x=x[train], y=y[train])
    np.save(HERE / "calib.npy", x[train[:300]])
    np.savez_compressed(HERE / "test.npz", x=x[test], y=y[test])


if __name__ == "__main__":
    main()
