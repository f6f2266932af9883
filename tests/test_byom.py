"""Bring your own model: Keras 2 .h5 and SavedModels written by tf-keras, SavedModels from any
writer, pre-quantized int8 .tflite files, and the official MLPerf Tiny models.

Every model file here is written inside the test by the library that users' files come
from (tf-keras 2.x, Keras 3, tf.saved_model), never edited by hand.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS, ROOT
from tinyq.cli import cli

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("test_byom")

MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
needs_toolchain = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed",
)


def run(*args) -> tuple[int, str, dict | None]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    try:
        data = json.loads(r.output) if "--json" in args else None
    except json.JSONDecodeError:
        data = None
    return r.exit_code, r.output, data


@pytest.fixture(scope="module")
def keras2(tmp_path_factory):
    """A tf-keras 2.x model with the layers Keras 3 trips over, saved as .h5 and as a SavedModel."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras as tk

    d = tmp_path_factory.mktemp("keras2")
    tk.utils.set_random_seed(0)
    L = tk.layers
    inp = L.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same")(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU(6.0)(y)
    x = L.Add()([x, y])
    x = L.Dropout(0.2)(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(4, activation="softmax")(x)
    model = tk.Model(inp, out)
    rng = np.random.default_rng(0)
    xs = rng.random((96, 12, 12, 3), dtype=np.float32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(xs, rng.integers(0, 4, 96), epochs=1, verbose=0)  # moving statistics that are not 0/1
    model.save(d / "k2.h5")
    model.save(d / "k2_savedmodel", save_format="tf")
    np.save(d / "calib.npy", xs[:64])
    np.savez(d / "eval.npz", x=xs[64:], y=rng.integers(0, 4, 32))
    return d


def test_keras3_cannot_read_the_keras2_h5(keras2):
    """The premise: Keras 3 rejects the DepthwiseConv2D config tf-keras 2.x writes."""
    import keras

    with pytest.raises(Exception, match="groups"):
        keras.models.load_model(keras2 / "k2.h5", compile=False)


@needs_toolchain
def test_keras2_h5_builds_with_the_tf_keras_fallback_and_runs_bit_exact(keras2, tmp_path):
    code, out, r = run("build", keras2 / "k2.h5", "--board", "nano33", "--calib", keras2 / "calib.npy",
                       "--eval", keras2 / "eval.npz", "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["loader"].startswith("tf-keras 2.21") and "Keras 3 could not read it" in r["loader"]
    assert {"DEPTHWISE_CONV_2D", "ADD", "MEAN"} <= set(r["ops"])
    assert r["quantization"]["float_accuracy"] is not None
    code, out, m = run("flash", "--build", tmp_path / "b", "--emulator", "qemu", "--runs", "1", "--json")
    assert code == 0, out
    assert m["outputs_match"] and m["inputs_checked"] == 8


def test_keras2_savedmodel_converts_from_its_signature(keras2, tmp_path):
    code, out, r = run("build", keras2 / "k2_savedmodel", "--board", "nano33", "--calib", keras2 / "calib.npy",
                       "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["loader"].startswith("SavedModel signature 'serving_default'")
    assert r["host_bit_exact_inputs"] == 8


@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory):
    """SavedModels as Keras 3 `export` and plain `tf.saved_model.save` write them."""
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("sm")
    keras.utils.set_random_seed(0)
    k3 = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    k3.export(str(d / "export"))
    rng = np.random.default_rng(1)

    class Net(tf.Module):
        def __init__(self):
            self.w = tf.Variable(rng.normal(size=(16, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32)])
        def logits(self, x):
            return {"logits": tf.nn.relu(x @ self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32)])
        def scores(self, x):
            return {"scores": tf.nn.softmax(x @ self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32), tf.TensorSpec([None, 16], tf.float32)])
        def pair(self, a, b):
            return {"sum": (a + b) @ self.w}

    net = Net()
    tf.saved_model.save(net, str(d / "plain"), signatures=net.logits)
    tf.saved_model.save(net, str(d / "many"), signatures={"logits": net.logits, "scores": net.scores, "pair": net.pair})
    np.save(d / "calib.npy", rng.random((64, 16), dtype=np.float32))
    return d


@pytest.mark.parametrize("name", ["export", "plain"])
def test_any_savedmodel_builds(savedmodels, tmp_path, name):
    code, out, r = run("build", savedmodels / name, "--board", "nano33", "--calib", savedmodels / "calib.npy",
                       "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["loader"].startswith("SavedModel signature")
    assert r["ops"].get("FULLY_CONNECTED")


def test_ambiguous_signatures_are_listed_and_one_is_picked(savedmodels, tmp_path):
    code, out, _ = run("build", savedmodels / "many", "--board", "nano33", "--calib", savedmodels / "calib.npy",
                       "-o", tmp_path / "b")
    assert code == 2 and "several signatures and none is serving_default: logits, pair, scores" in out
    assert "--signature" in out
    code, out, _ = run("build", savedmodels / "many", "--board", "nano33", "--calib", savedmodels / "calib.npy",
                       "--signature", "pair", "-o", tmp_path / "b")
    assert code == 2 and "signature 'pair' has 2 inputs" in out
    code, out, r = run("build", savedmodels / "many", "--board", "nano33", "--calib", savedmodels / "calib.npy",
                       "--signature", "scores", "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["loader"].startswith("SavedModel signature 'scores'") and "SOFTMAX" in r["ops"]


def test_a_load_error_gives_the_whole_cause_and_a_fitting_hint(tmp_path):
    import tf_keras as tk

    class Doubler(tk.layers.Layer):
        def call(self, x):
            return 2 * x

    m = tk.Sequential([tk.layers.Input((4,)), Doubler(name="doubler"), tk.layers.Dense(2)])
    m.save(tmp_path / "custom.h5")
    np.save(tmp_path / "c.npy", np.zeros((8, 4), np.float32))
    code, out, _ = run("quantize", tmp_path / "custom.h5", "--calib", tmp_path / "c.npy")
    assert code == 2
    line = out.strip()
    assert "no Keras could load the model" in line
    assert "Unknown layer: 'Doubler'" in line  # the cause, whole
    assert "custom layer" in line.split("(hint:")[1]


@pytest.fixture(scope="module")
def int8_file(digits_tflite, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("t") / "digits_int8.tflite"
    p.write_bytes(digits_tflite)
    return p


@needs_toolchain
def test_int8_tflite_builds_without_calibration_and_runs_bit_exact(int8_file, tmp_path):
    code, out, r = run("build", int8_file, "--board", "nano33", "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["loader"] == "int8 .tflite (used as it is)"
    with np.load(tmp_path / "b" / "verify.npz") as z:
        x = z["inputs"]
    want = np.random.default_rng(0).integers(-128, 128, size=x.shape, dtype=np.int8)
    assert np.array_equal(x, want)  # seeded random inputs, the same every build
    assert (tmp_path / "b" / "model_int8.tflite").read_bytes() == int8_file.read_bytes()
    code, out, m = run("flash", "--build", tmp_path / "b", "--emulator", "qemu", "--runs", "1", "--json")
    assert code == 0, out
    assert m["outputs_match"]


def test_int8_tflite_with_calibration_and_labelled_evaluation(int8_file, tmp_path):
    """--calib samples become the verification inputs; --eval reports the int8 top-1 (host, TFLM)."""
    import tensorflow as tf

    code, out, r = run("build", int8_file, "--board", "nano33", "--calib", DIGITS / "calib.npy",
                       "--eval", DIGITS / "test.npz", "-o", tmp_path / "b", "--json")
    assert code == 0, out
    it = tf.lite.Interpreter(model_content=int8_file.read_bytes(),
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    s, z = d_in["quantization"]
    with np.load(DIGITS / "test.npz") as t:
        xs, ys = t["x"], t["y"]
    q = np.clip(np.round(xs / s) + z, -128, 127).astype(np.int8)
    hits = 0
    for x, y in zip(q, ys):
        it.set_tensor(d_in["index"], x[None])
        it.invoke()
        hits += int(it.get_tensor(d_out["index"])[0].argmax() == y)
    assert r["quantization"]["quant_accuracy"] == pytest.approx(hits / len(ys))
    assert r["quantization"]["float_accuracy"] is None
    calib = np.load(DIGITS / "calib.npy")[:8]
    with np.load(tmp_path / "b" / "verify.npz") as v:
        assert np.array_equal(v["inputs"], np.clip(np.round(calib / s) + z, -128, 127).astype(np.int8))
    assert "accuracy (host): int8" in CliRunner().invoke(
        cli, ["build", str(int8_file), "--board", "nano33", "--eval", str(DIGITS / "test.npz"),
              "-o", str(tmp_path / "b")]).output


MLPERF_MODELS = ["kws_ref_model", "ad01_int8", "pretrainedResnet_quant",
                 pytest.param("vww_96_int8", marks=pytest.mark.slow)]


@needs_toolchain
@pytest.mark.emulator
@pytest.mark.skipif(not MLPERF.is_dir(), reason=f"the MLPerf Tiny models are not at {MLPERF}")
@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_official_mlperf_tiny_models_build_and_run_bit_exact(name, tmp_path):
    code, out, r = run("build", MLPERF / f"{name}.tflite", "--board", "nano33", "-o", tmp_path / "b", "--json")
    assert code == 0, out
    assert r["host_bit_exact_inputs"] == 8
    code, out, m = run("flash", "--build", tmp_path / "b", "--emulator", "qemu", "--runs", "1", "--warmup", "0", "--json")
    assert code == 0, out
    assert m["outputs_match"] and m["inputs_checked"] == 8
