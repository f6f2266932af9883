"""Quantize stage: Keras model -> full-int8 TFLite, and what was lost on the way.

The only module of tinyq that imports TensorFlow, and only inside its functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyq.errors import CalibrationError, InputFileError, QuantizationError
from tinyq.load import Dataset, LoadedInputs, check_model_file, check_shape

MODES = ("int8", "int16x8", "float16", "dynamic")
#: Only this mode runs on tinyq's int8 runtime; the others are for host comparison.
DEPLOYABLE_MODES = ("int8",)


@dataclass(frozen=True)
class LayerError:
    """Error of one int8 tensor against the same tensor of the float model."""

    tensor: str
    op: str
    sqnr_db: float
    cosine: float


@dataclass(frozen=True)
class QuantReport:
    """Float vs quantized on the host."""

    mode: str
    float_bytes: int
    quant_bytes: int
    samples: int
    float_accuracy: float | None
    quant_accuracy: float | None
    agreement: float  # fraction of samples whose arg-max matches
    mean_abs_error: float
    max_abs_error: float
    layers: tuple[LayerError, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    @property
    def size_ratio(self) -> float:
        return self.float_bytes / self.quant_bytes

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "layers"}
        d["size_ratio"] = round(self.size_ratio, 3)
        d["warnings"] = list(self.warnings)
        d["layers"] = [vars(l) if not hasattr(l, "__dataclass_fields__") else
                       {k: getattr(l, k) for k in l.__dataclass_fields__} for l in self.layers]
        return d


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """The quantize stage's result."""

    tflite: bytes
    float_tflite: bytes
    mode: str
    input_shape: tuple[int, ...]  # with the batch of 1
    report: QuantReport | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()


@contextlib.contextmanager
def _quiet():
    """Silence what TensorFlow's C++ and Python print to fd 1 and 2 while converting.

    The converter prints artefact paths and MLIR notes that would bury tinyq's own
    report; the exception text still says what failed.
    """
    import sys
    import warnings

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    import io

    with open(os.devnull, "wb") as null, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    if "tensorflow" not in sys.modules:
        with _quiet():  # absl/oneDNN start-up notes go to fd 2 before any log level applies
            import tensorflow  # noqa: F401
    import tensorflow as tf

    return tf


def _load_keras(model):
    """A keras.Model from a path or an in-memory model."""
    tf = _tf()
    import keras

    if not isinstance(model, (str, os.PathLike)):
        return model
    mf = check_model_file(Path(model))
    try:
        if mf.format == "savedmodel":
            return keras.layers.TFSMLayer(str(mf.path), call_endpoint="serving_default")
        return keras.models.load_model(mf.path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise InputFileError(f"{mf.path}: Keras could not load the model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    finally:
        del tf


def _input_spec(model) -> tuple[tuple[int, ...], Any]:
    tf = _tf()
    inputs = getattr(model, "inputs", None)
    if inputs is None or len(inputs) != 1:
        raise QuantizationError("tinyq supports models with exactly one input", hint="wrap the model so it takes one tensor")
    shape = tuple(inputs[0].shape)[1:]
    if any(s is None for s in shape):
        raise QuantizationError(f"the model's input shape {shape} has free dimensions", hint="give the Input layer a fixed shape")
    return tuple(int(s) for s in shape), tf.as_dtype(inputs[0].dtype)


def _batch_one(model, shape):
    """The model behind a batch-1 Input: a free batch makes the converter emit SHAPE/PACK ops MCUs don't need."""
    import keras

    inp = keras.Input(shape, batch_size=1, dtype="float32")
    return keras.Model(inp, model(inp, training=False) if not isinstance(model, keras.layers.TFSMLayer) else model(inp))


def _convert(model, shape, calib: np.ndarray | None, mode: str) -> bytes:
    tf = _tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(_batch_one(model, shape))
    if mode != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode in ("int8", "int16x8"):
        def rep():
            for x in calib:
                yield [x[None].astype(np.float32)]

        conv.representative_dataset = rep
    if mode == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif mode == "int16x8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    elif mode == "float16":
        conv.target_spec.supported_types = [tf.float16]
    try:
        with _quiet():
            return conv.convert()
    except Exception as e:
        text = str(e)
        ops = sorted(set(re.findall(r'fused\["(\w+):', text)) - {"StatefulPartitionedCall", "PartitionedCall"})
        detail = re.findall(r"error: '[^']*' op (.*?)(?:\n|$)", text) or re.findall(r"error: (.*?)(?:\n|$)", text)
        what = f"TF op(s) {', '.join(ops)} " if ops else ""
        reason = ("have no TFLite builtin kernel" if ops else
                  (detail[0] if detail else text.splitlines()[0] if text else type(e).__name__).strip()[:200])
        raise QuantizationError(
            f"TFLite conversion ({mode}) failed: {what}{reason}",
            hint=f"replace {', '.join(ops)} with layers that have TFLite int8 builtins" if ops else None,
        ) from e


def quantize_keras(model, calib: np.ndarray, mode: str = "int8", max_samples: int | None = None) -> bytes:
    """Convert a Keras model (path or keras.Model) to TFLite in ``mode``; batch fixed to 1.

    ``int8`` is full integer: int8 weights (per-channel) and activations, int8 input
    and output, builtin int8 ops only.
    """
    if mode not in MODES:
        raise QuantizationError(f"unknown mode '{mode}'", hint=f"choose one of {', '.join(MODES)}")
    km = _load_keras(model)
    shape, _ = _input_spec(km)
    x = check_shape(Dataset(np.asarray(calib, np.float32), source="calibration data"), shape)
    if max_samples:
        x = x[:max_samples]
    return _convert(km, shape, x, mode)


class _Runner:
    """TFLite interpreter (reference kernels) that quantizes inputs and dequantizes outputs."""

    def __init__(self, tflite: bytes, keep_all: bool = False):
        tf = _tf()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self.it = tf.lite.Interpreter(
            model_content=tflite,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
                experimental_preserve_all_tensors=keep_all,
            )
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        d = self.inp
        if d["dtype"] != np.float32:
            s, z = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / s) + z, info.min, info.max)
        self.it.set_tensor(d["index"], x[None].astype(d["dtype"]))
        self.it.invoke()
        y = self.it.get_tensor(self.out["index"])[0]
        if self.out["dtype"] != np.float32:
            s, z = self.out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y.astype(np.float32)

    def tensors(self) -> dict[str, np.ndarray]:
        """Every op output, dequantized, by tensor name (after a run with keep_all)."""
        out = {}
        for d in self.it.get_tensor_details():
            try:
                v = self.it.get_tensor(d["index"])
            except ValueError:
                continue
            if v is None or v.dtype not in (np.float32, np.int8, np.int16):
                continue
            s, z = d["quantization"]
            out[d["name"]] = (v.astype(np.float32) - z) * s if v.dtype != np.float32 and s else v.astype(np.float32)
        return out


def _compute_ops(tflite: bytes) -> list[tuple[str, str]]:
    """(output tensor name, opcode) of each op, leaving out the I/O (de)quantize steps."""
    from tinyq.graph import parse_tflite

    g = parse_tflite(tflite)
    return [(g.tensors[op.outputs[0]].name, op.opcode) for op in g.operators
            if op.opcode not in ("QUANTIZE", "DEQUANTIZE")]


def evaluate(float_tflite: bytes, quant_tflite: bytes, data: Dataset, mode: str, max_samples: int = 200,
             per_layer_samples: int = 32, warnings: tuple[str, ...] = ()) -> QuantReport:
    """Compare the quantized model with the float model on ``data`` (host, TFLite reference kernels)."""
    fr, qr = _Runner(float_tflite), _Runner(quant_tflite)
    x = data.x[:max_samples]
    yf = np.stack([fr.run(s) for s in x])
    yq = np.stack([qr.run(s) for s in x])
    err = np.abs(yf - yq)
    acc_f = acc_q = None
    if data.y is not None and yf.ndim >= 2:
        labels = data.y[: len(x)]
        acc_f = float(np.mean(yf.reshape(len(x), -1).argmax(1) == labels))
        acc_q = float(np.mean(yq.reshape(len(x), -1).argmax(1) == labels))
    agree = float(np.mean(yf.reshape(len(x), -1).argmax(1) == yq.reshape(len(x), -1).argmax(1)))
    return QuantReport(
        mode=mode,
        float_bytes=len(float_tflite),
        quant_bytes=len(quant_tflite),
        samples=len(x),
        float_accuracy=acc_f,
        quant_accuracy=acc_q,
        agreement=agree,
        mean_abs_error=float(err.mean()),
        max_abs_error=float(err.max()),
        layers=per_layer_error(float_tflite, quant_tflite, x[:per_layer_samples]),
        warnings=warnings,
    )


def per_layer_error(float_tflite: bytes, quant_tflite: bytes, x: np.ndarray) -> tuple[LayerError, ...]:
    """SQNR and cosine similarity of every int8 op output against the float tensor of the same name.

    Both graphs come from the same Keras model by the same converter, so once the
    int8 graph's I/O (de)quantize steps are left out they have the same ops in the
    same order: op i of one is op i of the other (checked by opcode). Tensor names
    are no help, as the converter renames fused tensors differently in each.
    """
    fr, qr = _Runner(float_tflite, keep_all=True), _Runner(quant_tflite, keep_all=True)
    f_ops, q_list = _compute_ops(float_tflite), _compute_ops(quant_tflite)
    if [o for _, o in f_ops] != [o for _, o in q_list]:
        return ()  # the graphs differ (e.g. an op fused in one only): no honest matching
    twin = {q: f for (f, _), (q, _) in zip(f_ops, q_list)}
    q_ops = dict(q_list)
    sig = {}
    noise = {}
    dots = {}
    norms = {}
    for s in x:
        fr.run(s)
        qr.run(s)
        ft, qt = fr.tensors(), qr.tensors()
        for name in q_ops:
            fname = twin[name]
            if fname not in ft or name not in qt or ft[fname].shape != qt[name].shape:
                continue
            a, b = ft[fname].ravel().astype(np.float64), qt[name].ravel().astype(np.float64)
            sig[name] = sig.get(name, 0.0) + float(a @ a)
            noise[name] = noise.get(name, 0.0) + float((a - b) @ (a - b))
            dots[name] = dots.get(name, 0.0) + float(a @ b)
            na, nb = norms.get(name, (0.0, 0.0))
            norms[name] = (na + float(a @ a), nb + float(b @ b))
    layers = []
    for name in q_ops:
        if name not in sig:
            continue
        sqnr = 10 * np.log10(sig[name] / noise[name]) if noise[name] > 0 else float("inf")
        na, nb = norms[name]
        cos = dots[name] / np.sqrt(na * nb) if na > 0 and nb > 0 else 1.0
        layers.append(LayerError(name, q_ops[name], round(float(sqnr), 2), round(float(cos), 5)))
    return tuple(layers)


def quantize(inputs: LoadedInputs, mode: str = "int8", eval_samples: int = 1000) -> QuantizedModel:
    """The quantize stage: convert with calibration, then (if evaluation data is given) compare with float."""
    if mode not in MODES:
        raise QuantizationError(f"unknown mode '{mode}'", hint=f"choose one of {', '.join(MODES)}")
    km = _load_keras(inputs.model.path)
    shape, _ = _input_spec(km)
    calib = check_shape(inputs.calib, shape, "calibration")
    qbytes = _convert(km, shape, calib, mode)
    fbytes = _convert(km, shape, None, "float")
    report = None
    if inputs.eval is not None:
        ex = check_shape(inputs.eval, shape, "evaluation")
        data = Dataset(ex, inputs.eval.y, inputs.eval.source)
        report = evaluate(fbytes, qbytes, data, mode, eval_samples, warnings=inputs.calib.warnings)
    return QuantizedModel(qbytes, fbytes, mode, (1, *shape), report)
