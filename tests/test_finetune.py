"""Quantization-aware training and channel pruning: real tfmot training, real conversions, and the
pruned firmware measured on the nano33 QEMU twin against the unpruned one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import DIGITS, ROOT
from tinyq.cli import cli

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("test_finetune")

WIDE = ROOT / "examples" / "wide_ranges"
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")


def run(*argv) -> dict:
    r = CliRunner().invoke(cli, [str(a) for a in argv])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def qat_wide(out: Path) -> dict:
    return run("quantize", WIDE / "model.keras", "--calib", WIDE / "calib.npy", "--eval", WIDE / "test.npz",
               "--qat", "--train", WIDE / "train.npz", "-o", out, "--json")


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat") / "wide.tflite"
    return out, qat_wide(out)


def test_qat_recovers_what_post_training_int8_loses(qat_run):
    """The bundled example: post-training int8 loses more than 2 points, QAT is within 0.5 of float."""
    out, d = qat_run
    t = d["finetune"]
    a = t["accuracy"]
    assert a["float"] - a["ptq_int8"] > 0.02, a
    assert a["float"] - a["final_int8"] <= 0.005, a
    assert t["delta_points"]["ptq_int8"] == pytest.approx((a["ptq_int8"] - a["float"]) * 100, abs=0.01)
    assert t["final_name"] == "QAT int8" and t["eval_samples"] == 597 and t["train_samples"] == 1200
    # Per-layer SQNR of both int8 models; the post-training model is worst at the wide activation's reader.
    ptq, qat = t["sqnr_db"]["ptq_int8"], t["sqnr_db"]["final_int8"]
    assert len(ptq) == len(qat) >= 5
    assert min(ptq, key=lambda l: l["sqnr_db"])["op"] == "DEPTHWISE_CONV_2D"
    assert [h["epoch"] for h in t["history"]["qat"]] == [1, 2, 3]
    # The two SQNR figures have different float references, and the report says which.
    assert t["sqnr_against"] == {"ptq_int8": "the model as given",
                                 "final_int8": "its own QAT float twin (fake-quantization removed)"}
    # The deployed file is the QAT model, full int8, and the Keras model is saved beside it.
    assert d["quant_accuracy"] == a["final_int8"]
    assert Path(t["keras_model"]) == out.with_suffix(".h5") and out.with_suffix(".h5").is_file()
    from tinyq.compile.analyze import tflite_kind
    from tinyq.graph import parse_tflite

    assert tflite_kind(parse_tflite(out.read_bytes())) == "int8"


def test_the_terminal_report_says_the_sqnr_figures_do_not_compare(qat_run, capsys):
    """What `build --qat` / `quantize --qat` print: each worst-layer SQNR with its float reference, and why the
    two are not to be compared (a QAT SQNR below post-training's, with better top-1, looks like a bug)."""
    from tinyq.cli import _echo_finetune

    _echo_finetune(qat_run[1]["finetune"])
    out = capsys.readouterr().out
    assert "worst layer SQNR, post-training int8: " in out and ", against the model as given)" in out
    assert ", against its own QAT float twin (fake-quantization removed))" in out
    assert "do not compare with each other; top-1 on the same data does" in out


def test_qat_is_deterministic_and_its_model_loads_again(qat_run, tmp_path):
    out, d = qat_run
    again = qat_wide(tmp_path / "again.tflite")
    assert (tmp_path / "again.tflite").read_bytes() == out.read_bytes()
    assert again["finetune"]["history"] == d["finetune"]["history"]
    # The saved QAT model (tfmot layers, HDF5) converts again without fine-tuning, to the same top-1.
    reloaded = run("quantize", out.with_suffix(".h5"), "--calib", WIDE / "calib.npy", "--eval", WIDE / "test.npz",
                   "-o", tmp_path / "reloaded.tflite", "--json")
    assert reloaded["loader"].startswith("tf-keras")
    assert reloaded["quant_accuracy"] == pytest.approx(d["quant_accuracy"], abs=0.005)


@pytest.fixture(scope="module")
def pruned_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "digits"
    d = run("build", DIGITS / "model.keras", "--board", "nano33", "--calib", DIGITS / "calib.npy", "--eval",
            DIGITS / "test.npz", "--prune", "0.5", "--train", DIGITS / "train.npz", "-o", out, "--json")
    return out, d


def test_pruning_report_and_accuracy(pruned_build, digits_build):
    out, d = pruned_build
    t = d["finetune"]
    pr = t["pruning"]
    # Half of the filters of every layer whose channels can go; the last Dense feeds the output.
    by_name = {l["layer"]: l for l in pr["layers"]}
    for l in pr["layers"]:
        if l["layer"] != "dense_1":
            assert l["kept"] == l["filters"] // 2, l
    assert by_name["dense_1"]["kept"] == 10
    assert by_name["conv2d_2"]["sparsity"] == pytest.approx(0.75)  # half its inputs and half its filters
    assert pr["sparsity"] > 0.5
    # 50 % of the filters, within 1 point of the unpruned model's int8 top-1.
    unpruned = digits_build[1]["quantization"]["quant_accuracy"]
    assert abs(t["accuracy"]["final_int8"] - unpruned) <= 0.01
    assert t["accuracy"]["ptq_int8"] == pytest.approx(unpruned)
    assert (out / "model_finetuned.h5").is_file()
    # Measured against the model as given, by the build itself.
    base = t["baseline"]
    assert base["macs"] == digits_build[1]["macs"] and base["weights_bytes"] == digits_build[1]["weights_bytes"]
    assert d["macs"] < 0.5 * base["macs"] and d["weights_bytes"] < 0.5 * base["weights_bytes"]
    assert d["arena_bytes"] < base["arena_bytes"]


@needs_qemu
def test_pruning_pays_on_the_board(pruned_build, digits_build):
    """Fewer flash bytes and fewer instructions on the nano33 twin, outputs bit-exact with TFLM."""
    pruned, unpruned = pruned_build[0], digits_build[0]
    m = {}
    for name, build in (("pruned", pruned), ("unpruned", unpruned)):
        m[name] = run("flash", "--build", build, "--emulator", "qemu", "--runs", "1", "--warmup", "0", "--json")
        assert m[name]["outputs_match"] and m[name]["inputs_checked"] == 8
    assert m["pruned"]["flash_bytes"] < 0.6 * m["unpruned"]["flash_bytes"]
    assert m["pruned"]["cycles"] < 0.5 * m["unpruned"]["cycles"]


# --- the pruning's graph surgery, on hand-made models ------------------------------------------------

def _tfk():
    from tinyq.model.tfenv import tf

    tf()
    import tf_keras

    return tf_keras


def test_removing_channels_is_exact_through_bn_depthwise_and_flatten():
    from tinyq.model import optimize
    K = _tfk()
    L = K.layers
    inp = K.Input((6, 6, 2))
    h = L.Conv2D(8, 3, padding="same", name="a")(inp)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU()(h)
    h = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(h)
    h = L.Conv2D(6, 1, activation="relu", name="b")(h)
    h = L.MaxPooling2D(2)(h)
    h = L.Flatten()(h)
    h = L.Dense(5, activation="relu", name="c")(h)
    model = K.Model(inp, L.Dense(3, name="out")(h))
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2, 8)])
    groups = [g for g in (optimize._group(model, model.get_layer(n)) for n in ("a", "b", "c", "out")) if g]
    assert [g.producer.name for g in groups] == ["a", "b", "c"]  # "out" is the model's output
    for g, keep in zip(groups, ([1, 0, 1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 1, 1], [1, 1, 0, 0, 1])):
        g.mask = np.array(keep, bool)
        optimize._apply(g)
    x = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    small, report = optimize._remove(model, groups, K)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert small.get_layer("a").kernel.shape == (3, 3, 2, 4)
    assert small.get_layer("dw").depthwise_kernel.shape == (3, 3, 4, 1)
    assert small.get_layer("c").kernel.shape == (3 * 3 * 4, 3)  # 3x3 pixels of the 4 channels b kept
    assert {r.layer: (r.kept, r.filters) for r in report} == {"a": (4, 8), "b": (4, 6), "c": (3, 5), "out": (3, 3)}


def test_channels_that_meet_in_an_add_are_not_pruned():
    from tinyq.model import optimize
    K = _tfk()
    L = K.layers
    inp = K.Input((6, 6, 4))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    c = L.Conv2D(8, 3, padding="same", activation="relu", name="c")(a)
    b = L.Conv2D(4, 3, padding="same", name="b")(c)
    h = L.Add()([a, b])
    h = L.Conv2D(4, 1, activation="sigmoid", name="sig")(h)
    model = K.Model(inp, L.Dense(2, name="d")(L.GlobalAveragePooling2D()(h)))
    prunable = [n for n in "acb" if optimize._group(model, model.get_layer(n))]
    assert prunable == ["c"]  # a and b feed the Add
    assert optimize._group(model, model.get_layer("sig")) is None  # sigmoid(0) is not 0


def test_a_keras3_layer_tf_keras_lacks_is_named():
    import keras

    from tinyq.model import optimize
    from tinyq.errors import FineTuneError

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="d"),
                              keras.layers.RMSNormalization(name="rms"), keras.layers.Dense(2)])
    with pytest.raises(FineTuneError, match="layer 'rms' \\(RMSNormalization\\) has no tf-keras counterpart"):
        optimize.to_tf_keras(model, np.zeros((2, 8), np.float32))


def test_a_keras3_model_is_carried_over_faithfully():
    from tinyq.model import optimize
    import keras

    model = keras.models.load_model(WIDE / "model.keras")
    x = np.load(WIDE / "calib.npy")[:16]
    copy = optimize.to_tf_keras(model, x)
    assert type(copy).__module__.startswith("tf_keras")
    np.testing.assert_allclose(copy(x).numpy(), np.asarray(model(x)), rtol=1e-5, atol=1e-4)


# --- inspect: the sparsity of a model pruned elsewhere (unstructured, tfmot) --------------------------

@pytest.fixture(scope="module")
def tfmot_pruned(tmp_path_factory) -> Path:
    """A model pruned the usual tfmot way (scattered zeros, 50 %), converted to full int8."""
    import tensorflow_model_optimization as tfmot

    from tinyq.model.tfenv import tf

    K = _tfk()
    K.utils.set_random_seed(0)
    base = K.Sequential([K.Input((8, 8, 1)), K.layers.Conv2D(8, 3, activation="relu"), K.layers.Flatten(),
                         K.layers.Dense(10)])
    sched = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    pm = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=sched)
    pm.compile("adam", K.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.load(DIGITS / "calib.npy")
    pm.fit(x[:64], np.arange(64) % 10, epochs=1, batch_size=32, verbose=0,
           callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    model = tfmot.sparsity.keras.strip_pruning(pm)
    conv = tf().lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf().lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in x[:50])
    conv.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf().int8
    path = tmp_path_factory.mktemp("sparse") / "sparse.tflite"
    path.write_bytes(conv.convert())
    return path


def test_inspect_shows_sparsity_and_the_zero_spike(tfmot_pruned, tmp_path):
    d = run("inspect", tfmot_pruned, "--json", "--plot", tmp_path / "w.png")
    weighted = [l for l in d["layers"] if l["sparsity"] is not None]
    assert [l["op"] for l in weighted] == ["CONV_2D", "FULLY_CONNECTED"]
    for l in weighted:
        assert l["sparsity"] == pytest.approx(0.5, abs=0.03), l
    assert (tmp_path / "w.png").stat().st_size > 1000
    r = CliRunner().invoke(cli, ["inspect", str(tfmot_pruned)])
    assert "zeros are stored and multiplied" in r.output
    # The histogram has a bin of its own for 0, holding every zero weight.
    from tinyq.graph import load_tflite
    from tinyq.report.inspect_plot import int8_histogram

    g = load_tflite(tfmot_pruned)
    w = g.tensors[g.operators[0].inputs[1]].data
    values, counts = int8_histogram(w)
    assert counts[values == 0][0] == int((w == 0).sum()) and counts.max() == counts[values == 0][0]


def test_a_training_set_smaller_than_a_batch_is_said(tmp_path):
    """Issue #25 case 7: one training sample is allowed (a quick trial) but said, in one warning line."""
    from tinyq.model.optimize import FineTune

    assert FineTune(qat=True).data_warnings(32) == []
    with np.load(DIGITS / "train.npz") as z:
        np.savez(tmp_path / "one.npz", x=z["x"][:1], y=z["y"][:1])
    r = CliRunner().invoke(cli, [str(a) for a in ("quantize", DIGITS / "model.keras", "--calib", DIGITS / "calib.npy",
                                                  "--prune", "0.5", "--epochs", "1", "--train", tmp_path / "one.npz",
                                                  "-o", tmp_path / "m.tflite", "--json")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)  # the warning is also said on stderr, one line
    assert "warning: only 1 training sample" in r.stderr
    said = [w for w in d["warnings"] if "training sample" in w]
    assert said == ["only 1 training sample, fewer than one batch (32): each epoch is one step, and fine-tuning on "
                    "so few samples can over-fit them"], d["warnings"]
