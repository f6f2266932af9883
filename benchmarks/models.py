"""Keras versions of the four MLPerf Tiny v1.x reference models, with seeded weights.

Architectures follow the MLPerf Tiny training scripts (keyword spotting DS-CNN,
visual wake words MobileNetV1 alpha 0.25, image classification ResNet-8, anomaly
detection FC autoencoder). Weights are random (seeded): these models measure speed
and memory, not accuracy, and the real datasets cannot be downloaded here.
"""

from __future__ import annotations

import numpy as np

SEED = 2026


def _keras():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def ds_cnn_kws():
    """KWS DS-CNN (49x10x1 MFCC -> 12 classes): conv 10x4/2 + 4 depthwise-separable blocks."""
    keras = _keras()
    L = keras.layers
    x = inp = keras.Input((49, 10, 1), name="mfcc")
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for _ in range(4):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        x = L.Conv2D(64, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    x = L.AveragePooling2D(pool_size=(25, 5))(x)
    x = L.Flatten()(x)
    x = L.Dense(12)(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out, name="ds_cnn_kws")


def mobilenet_v1_025_vww():
    """VWW MobileNetV1 alpha 0.25 (96x96x3 -> 2 classes)."""
    keras = _keras()
    L = keras.layers
    x = inp = keras.Input((96, 96, 3), name="image")

    def block(x, filters, stride):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU(6.0)(x)

    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    for filters, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]:
        x = block(x, filters, stride)
    x = L.AveragePooling2D(pool_size=3)(x)
    x = L.Flatten()(x)
    x = L.Dense(2)(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out, name="mobilenet_v1_025_vww")


def resnet8_ic():
    """IC ResNet-8 (32x32x3 -> 10 classes): three residual stacks of 16, 32, 64 filters."""
    keras = _keras()
    L = keras.layers
    x = inp = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(16, 3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for filters, stride in [(16, 1), (32, 2), (64, 2)]:
        y = L.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = L.BatchNormalization()(y)
        y = L.ReLU()(y)
        y = L.Conv2D(filters, 3, padding="same")(y)
        y = L.BatchNormalization()(y)
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = L.Add()([x, y])
        x = L.ReLU()(x)
    x = L.AveragePooling2D(pool_size=8)(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out, name="resnet8_ic")


def fc_autoencoder_ad():
    """AD FC autoencoder (640 -> 128x4 -> 8 -> 128x4 -> 640)."""
    keras = _keras()
    L = keras.layers
    x = inp = keras.Input((640,), name="features")
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = L.Dense(units)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    out = L.Dense(640)(x)
    return keras.Model(inp, out, name="fc_autoencoder_ad")


def randomize_batchnorm(model) -> None:
    """Give BatchNorm layers non-trivial statistics, so folding them changes the weights as in a trained model."""
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, var.shape).astype(np.float32)])


def calibration_data(model, n: int = 64) -> np.ndarray:
    """Seeded representative inputs of the model's input shape (standard normal)."""
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(SEED).normal(size=(n, *shape)).astype(np.float32)


#: name -> builder, in the order of the MLPerf Tiny table.
MODELS = {
    "kws_ds_cnn": ds_cnn_kws,
    "vww_mobilenet_v1_025": mobilenet_v1_025_vww,
    "ic_resnet8": resnet8_ic,
    "ad_fc_autoencoder": fc_autoencoder_ad,
}


def build(name: str):
    """The seeded Keras model ``name`` with randomized BatchNorm statistics."""
    model = MODELS[name]()
    randomize_batchnorm(model)
    return model
