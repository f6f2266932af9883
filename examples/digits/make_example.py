"""Make the bundled digits example: a small int8-friendly CNN on scikit-learn's digits.

scikit-learn ships the 1,797 8x8 handwritten digits offline, so this runs on a machine
with no dataset downloads. Writes, next to this file:

- ``model.keras``: the trained float model
- ``calib.npy``: 200 training images, (200, 8, 8, 1) float32 in [0, 1], for calibration
- ``test.npz``: held-out ``x`` (N, 8, 8, 1) and labels ``y``, for evaluation
- ``train.npz``: the training images and labels, for fine-tuning (``--qat``, ``--prune``)

Run: ``.venv/bin/python examples/digits/make_example.py`` (about 20 s on 2 cores).
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 1234


def main() -> None:
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(SEED)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    n_test = 360
    x_train, y_train, x_test, y_test = x[n_test:], y[n_test:], x[:n_test], y[:n_test]

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), batch_size=1, name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 1, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ],
        name="digits_cnn",
    )
    # Train with a free batch, then save: tinyq fixes the batch to 1 itself.
    train = keras.Sequential(model.layers, name="digits_cnn")
    train.build((None, 8, 8, 1))
    train.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train.fit(x_train, y_train, epochs=25, batch_size=64, verbose=0, validation_split=0.1)
    loss, acc = train.evaluate(x_test, y_test, verbose=0)
    print(f"float test accuracy: {acc:.4f}")
    train.save(HERE / "model.keras")
    np.save(HERE / "calib.npy", x_train[:200])
    np.savez(HERE / "test.npz", x=x_test, y=y_test)
    np.savez_compressed(HERE / "train.npz", x=x_train, y=y_train)


if __name__ == "__main__":
    main()
