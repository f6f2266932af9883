"""Writes the fused-LSTM int8 models of this folder (tests/test_lstm_fused.py): run once, by hand, with tf-keras.

    pip install --target /tmp/tfk --no-deps tf-keras==2.21.0
    PYTHONPATH=/tmp/tfk python tests/data/lstm/make.py

A tf-keras LSTM converted through a batch-1 concrete function is what gives TFLite's fused
UNIDIRECTIONAL_SEQUENCE_LSTM (int8 weights, int16 cell state); Keras 3, which tinyq itself uses, does not
(its layers are unrolled instead: tinyq.model.recurrent). Random weights, seeded.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

HERE = Path(__file__).parent
#: name -> (timesteps, features, units, return_sequences, dense head classes or 0)
MODELS = {"seq": (5, 3, 4, True, 0), "last_dense": (6, 4, 8, False, 3), "gesture": (50, 6, 32, False, 5),
          "odd": (7, 5, 7, True, 0)}  # odd: rows and columns that are no multiple of four


def make(name, steps, feats, units, seq, head, seed=0):
    tf_keras.utils.set_random_seed(seed)
    layers = [tf_keras.Input((steps, feats)), tf_keras.layers.LSTM(units, return_sequences=seq)]
    if head:
        layers.append(tf_keras.layers.Dense(head, activation="softmax"))
    m = tf_keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    m.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in m.get_weights()])
    cf = tf.function(lambda x: m(x)).get_concrete_function(tf.TensorSpec([1, steps, feats], tf.float32))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    x = rng.normal(size=(64, steps, feats)).astype(np.float32)
    conv.representative_dataset = lambda: ([s[None]] for s in x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (HERE / f"{name}.tflite").write_bytes(conv.convert())


if __name__ == "__main__":
    for name, spec in MODELS.items():
        make(name, *spec)
