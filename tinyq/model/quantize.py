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
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyq.errors import CalibrationError, FineTuneError, InputFileError, QuantizationError, last_line
from tinyq.model import recurrent
from tinyq.model.load import Dataset, LoadedInputs, check_labels, check_model_file, check_shape
from tinyq.model.tfenv import quiet as _quiet
from tinyq.model.tfenv import tf as _tf

if TYPE_CHECKING:
    from tinyq.model.optimize import FineTune

MODES = ("int8", "int16x8", "float16", "dynamic")
#: Only this mode runs on tinyq's int8 runtime; the others are for host comparison.
DEPLOYABLE_MODES = ("int8",)
#: An int8 top-1 more than this many points below float is warned about.
ACCURACY_DROP_POINTS = 2.0


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
    agreement: float | None  # fraction of samples whose arg-max matches (None: no float model)
    mean_abs_error: float | None
    max_abs_error: float | None
    layers: tuple[LayerError, ...] = field(default=())

    @property
    def size_ratio(self) -> float | None:
        return self.float_bytes / self.quant_bytes if self.float_bytes else None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "layers"}
        d["size_ratio"] = round(self.size_ratio, 3) if self.size_ratio else None
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
    loader: str = ""                      # which loader read the model (said in the report)
    warnings: tuple[str, ...] = ()        # data and accuracy warnings, one line each
    finetune: dict | None = None          # QAT / pruning: the float | PTQ | fine-tuned table (see finetune_table)
    keras_model: bytes = b""              # the fine-tuned Keras model (tf-keras HDF5), when fine-tuned
    baseline_tflite: bytes = b""          # post-training int8 of the model as given, when fine-tuned

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()


#: Keras layer classes TFLite's int8 path cannot take to a microcontroller (its calibrator crashes
#: on some); named in the crash report when the converter dies on such a model.
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


@dataclass(frozen=True, eq=False)
class _Source:
    """A loaded model, ready to convert: how it was read, its input shape, how to make a converter."""

    loader: str                         # said in the report: which loader read the file
    shape: tuple[int, ...]              # input shape without the batch
    make_converter: Any                 # () -> tf.lite.TFLiteConverter, batch fixed to 1
    layers: tuple[tuple[str, str], ...] = ()   # (class name, layer name), first to last
    first_layer: Any = None             # the first computing layer (for the input-range checks)
    model: Any = None                   # the Keras model object (None for a SavedModel signature)
    #: Every input's (name, shape without the batch), in the model's order; ``shape`` is the first one's.
    inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def calibration(self, data: Dataset, what: str = "calibration") -> list[np.ndarray]:
        """``data``'s samples for each input (:meth:`Dataset.for_inputs`)."""
        return data.for_inputs(list(self.inputs) or [("x", self.shape)], what)


def _cause(e: BaseException) -> str:
    """What a load or conversion error says: its last line, or its type when it says nothing."""
    return last_line(e) or type(e).__name__


def _flat_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_flat_layers(layer))
    return out


def _keras_source(model, kmod, loader: str) -> _Source:
    """A Keras 3 or tf-keras model, converted behind a batch-1 Input of the same Keras."""
    tf = _tf()
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise QuantizationError("the model has no defined input",
                                hint="build it with keras.Input (or call it once on data so its input is defined)")
    # Several inputs and outputs (a two-headed model) are fine: the device takes and gives them one after the other.
    specs: list[tuple[str, tuple[int, ...]]] = []
    for k, t in enumerate(inputs):
        shape = tuple(t.shape)[1:]
        name = str(getattr(t, "name", "") or f"input_{k}").split(":")[0]
        if any(s is None for s in shape):
            raise QuantizationError(f"the model's input {name} has free dimensions {shape}",
                                    hint="give the Input layer a fixed shape")
        specs.append((name, tuple(int(s) for s in shape)))

    layers = [l for l in _flat_layers(model) if type(l).__name__ != "InputLayer"]
    converted, unrolled = model, ()
    if recurrent.has_recurrent(model):
        # TFLite's int8 converter cannot take Keras 3 recurrent layers to a microcontroller: convert the model
        # with each one rebuilt (fused LSTM op, or unrolled over its timesteps; checked in float first).
        from tinyq.infra.isolate import note

        note("rebuilding the recurrent layers")
        with _quiet():
            rebuilt = recurrent.rebuild(model, kmod)
        converted, unrolled = rebuilt.model, tuple(id(old) for old, _ in rebuilt.layers)
        loader = f"{loader}; recurrent layers rebuilt: {rebuilt.describe()}"

    def make():
        # A free batch makes the converter emit SHAPE/PACK ops a microcontroller does not need. The inputs keep
        # their names: they are the converted model's signature names, which calibration data are keyed by.
        ins = [kmod.Input(s, batch_size=1, dtype="float32", name=n) for n, s in specs]
        out = converted(ins if len(ins) > 1 else ins[0], training=False)
        return tf.lite.TFLiteConverter.from_keras_model(kmod.Model(ins if len(ins) > 1 else ins[0], out))

    return _Source(loader, specs[0][1], make, tuple((type(l).__name__, l.name) for l in layers if id(l) not in unrolled),
                   layers[0] if layers else None, model, tuple(specs) if len(specs) > 1 else ())


def _signature_source(path: Path, signature: str | None) -> _Source:
    """Any SavedModel, from one serving signature: one float input, one output, batch fixed to 1."""
    tf = _tf()
    try:
        with _quiet():
            loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - TensorFlow raises many types for a bad SavedModel
        raise InputFileError(f"{path}: TensorFlow could not load the SavedModel: {_cause(e)}",
                             hint="check that the folder is a complete SavedModel (saved_model.pb and variables/)") from e
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if not sigs:
        raise InputFileError(f"{path}: the SavedModel has no signatures to convert from",
                             hint="save it with model.export(...) or tf.saved_model.save(obj, path, signatures=...)")
    if signature is not None:
        if signature not in sigs:
            raise InputFileError(f"{path}: no signature '{signature}' (it has: {', '.join(sorted(sigs))})",
                                 hint="pick one of those with --signature")
        name = signature
    elif len(sigs) == 1:
        name = next(iter(sigs))
    elif "serving_default" in sigs:
        name = "serving_default"
    else:
        raise InputFileError(f"{path}: several signatures and none is serving_default: {', '.join(sorted(sigs))}",
                             hint="pick one with --signature NAME")
    fn = sigs[name]
    ins = fn.structured_input_signature[1]
    outs = fn.structured_outputs
    listing = lambda d: ", ".join(f"{k} {tuple(v.shape)}" for k, v in d.items())  # noqa: E731
    if len(ins) != 1:
        raise QuantizationError(f"signature '{name}' has {len(ins)} inputs ({listing(ins)}); tinyq runs one",
                                hint="export a signature that takes one tensor, or pick one with --signature")
    if not isinstance(outs, dict) or len(outs) != 1:
        n = len(outs) if isinstance(outs, dict) else "several"
        raise QuantizationError(f"signature '{name}' has {n} outputs"
                                f"{f' ({listing(outs)})' if isinstance(outs, dict) else ''}; tinyq runs one",
                                hint="export a signature that returns one tensor, or pick one with --signature")
    (in_name, spec), = ins.items()
    (out_name, _), = outs.items()
    if spec.dtype != tf.float32:
        raise QuantizationError(f"signature '{name}' takes {spec.dtype.name} input '{in_name}'; tinyq quantizes float32 models",
                                hint="export a signature with a float32 input")
    dims = tuple(spec.shape)[1:]
    if spec.shape.rank is None or any(d is None for d in dims):
        raise QuantizationError(f"signature '{name}' input '{in_name}' has free dimensions {tuple(spec.shape)}",
                                hint="export the model with a fixed input shape (only the batch may be free)")
    shape = tuple(int(d) for d in dims)

    def make():
        @tf.function(input_signature=[tf.TensorSpec((1, *shape), tf.float32, name=in_name)])
        def serve(x):
            return fn(**{in_name: x})[out_name]

        return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], loaded)

    return _Source(f"SavedModel signature '{name}' (tf.saved_model.load)", shape, make)


def _load_source(model, signature: str | None = None) -> _Source:
    """Read a model (a path or an in-memory Keras model) with the loader that can read it.

    ``.keras`` and ``.h5`` files go to Keras 3 first, then to tf-keras (Keras 2: most models
    trained before 2024 were saved by it, and Keras 3 rejects some of their configs).
    A SavedModel is converted from its serving signature, whatever wrote it.
    """
    _tf()
    import keras

    if not isinstance(model, (str, os.PathLike)):
        mod = keras if isinstance(model, keras.Model) else _tf_keras()
        return _keras_source(model, mod, _loader_name(mod))
    mf = check_model_file(Path(model))
    if mf.format == "savedmodel":
        return _signature_source(mf.path, signature)
    if signature is not None:
        raise InputFileError(f"{mf.path}: --signature applies to SavedModel folders only",
                             hint="leave out --signature for .keras and .h5 files")
    if mf.format not in ("keras", "h5"):
        raise InputFileError(f"{mf.path}: not a Keras model", hint="pass a .keras, .h5 or SavedModel")
    causes = []
    for mod in (keras, _tf_keras()):
        if mod is None:
            continue
        try:
            with _quiet(), _custom_scope(mod):
                km = mod.models.load_model(str(mf.path), compile=False)
        except Exception as e:  # noqa: BLE001 - Keras raises many types for a file it cannot read
            cause = _cause(e)
            # Keras 3 quotes a whole model config in some errors: keep the message readable.
            causes.append(f"{_loader_name(mod)}: {cause if len(cause) <= 300 else cause[:297] + '...'}")
            continue
        return _keras_source(km, mod, _loader_name(mod) + (" (fallback: Keras 3 could not read it)" if causes else ""))
    raise InputFileError(f"{mf.path}: no Keras could load the model ({'; '.join(causes)})",
                         hint=_load_hint(" ".join(causes)))


def _custom_scope(mod):
    """tfmot's custom objects for tf-keras, so a QAT model saved by `tinyq quantize --qat` loads again."""
    if mod.__name__ != "tf_keras":
        return contextlib.nullcontext()
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        return contextlib.nullcontext()
    return tfmot.quantization.keras.quantize_scope()


def _tf_keras():
    try:
        import tf_keras
    except ImportError:
        return None
    return tf_keras


def _loader_name(mod) -> str:
    name = "tf-keras" if mod.__name__ == "tf_keras" else "Keras"
    return f"{name} {mod.__version__}"


def _load_hint(text: str) -> str:
    """A hint that fits what the loaders said."""
    low = text.lower()
    if "unknown layer" in low or "could not locate class" in low or "custom" in low:
        return "the model uses a custom layer or object: save it without, or as a SavedModel (model.export(path))"
    if "unable to synchronously open" in low or "truncated" in low or "signature" in low or "bad zip" in low:
        return "the file is damaged or incomplete: save or download it again"
    if "unrecognized keyword" in low or "version" in low:
        return "the file was saved by another Keras version: re-save it with that version as a SavedModel (model.export(path))"
    return "check that the file is a complete Keras model; re-save it with model.save('model.keras')"


def _convert(src: _Source, calib: np.ndarray | None, mode: str) -> bytes:
    tf = _tf()
    from tinyq.infra.isolate import note

    note(f"converting the model ({mode})" + (" with calibration" if calib is not None else ""),
         suspect_layers=[f"{c} layer '{n}'" for c, n in src.layers if c in _RECURRENT])
    conv = src.make_converter()
    if mode != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode in ("int8", "int16x8"):
        def rep():  # calib: one array of samples per input; several inputs are fed by signature name
            for k in range(len(calib[0])):
                if src.inputs:
                    yield {name: a[k][None].astype(np.float32) for (name, _), a in zip(src.inputs, calib)}
                else:
                    yield [calib[0][k][None].astype(np.float32)]

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
        reason = "have no TFLite builtin kernel" if ops else (detail[0].strip() if detail else _cause(e))
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
    src = _load_source(model)
    if isinstance(calib, dict):  # several inputs: samples by input name
        named = tuple((k, np.asarray(v, np.float32)) for k, v in calib.items())
        data = Dataset(named[0][1], source="calibration data", named=named)
    else:
        data = Dataset(np.asarray(calib, np.float32), source="calibration data")
    x = src.calibration(data)
    if max_samples:
        x = [a[:max_samples] for a in x]
    return _convert(src, x, mode)


def _range_warnings(src: _Source, calib: np.ndarray) -> list[str]:
    """Warnings when the calibration data are not on the scale the model was trained on, where
    the model itself says what that scale was (its first layer) or the data say it plainly."""
    layer = src.first_layer
    kind = type(layer).__name__ if layer is not None else ""
    x = calib.reshape(len(calib), -1, calib.shape[-1]) if calib.ndim > 2 else calib[:, None, :]
    if kind in ("BatchNormalization", "Normalization"):
        try:
            if kind == "BatchNormalization":
                mean, var = (np.asarray(layer.moving_mean).ravel(), np.asarray(layer.moving_variance).ravel())
            else:
                mean, var = np.asarray(layer.mean).ravel(), np.asarray(layer.variance).ravel()
        except (AttributeError, ValueError, TypeError):
            return []
        if mean.size != x.shape[-1]:
            return []
        got = x.mean(axis=(0, 1))
        std = np.sqrt(np.maximum(var, 1e-12))
        far = np.abs(got - mean) > 4 * std + 1e-6
        if far.any():
            c = int(np.argmax(np.abs(got - mean) / std))
            return [f"calibration data are off the scale the model was trained on: channel {c} has mean "
                    f"{got[c]:.4g}, its first layer ({kind} '{layer.name}') saw {mean[c]:.4g} +/- {std[c]:.4g}"]
        return []
    if kind == "Rescaling":
        return []  # the model scales raw values itself: 0..255 data are what it expects
    if np.all(calib == np.round(calib)) and 1.5 < float(calib.max()) <= 255.0 and float(calib.min()) >= 0.0:
        return ["calibration data look like raw 8-bit values (0..255) and the model has no Rescaling layer; "
                "if it was trained on 0..1 inputs, divide the data by 255 (int8 accuracy collapses otherwise)"]
    return []


def _short(tensor: str) -> str:
    """A converter tensor name ("model/block/conv2d/BiasAdd;..."), shortened to its layer's part."""
    parts = [p for p in tensor.split(";")[0].split("/") if p]
    return "/".join(parts[-2:]) if len(parts) > 2 else "/".join(parts)


def _accuracy_warnings(report: "QuantReport") -> list[str]:
    if report.float_accuracy is None or report.quant_accuracy is None:
        return []
    drop = (report.float_accuracy - report.quant_accuracy) * 100
    if drop <= ACCURACY_DROP_POINTS:
        return []
    worst = sorted(report.layers, key=lambda l: l.sqnr_db)[:3]
    names = ", ".join(f"{l.op} '{_short(l.tensor)}' ({l.sqnr_db:.1f} dB)" for l in worst) or "not known"
    return [f"int8 top-1 is {drop:.1f} points below float ({report.quant_accuracy:.2%} vs {report.float_accuracy:.2%}); "
            f"worst layers: {names}"]


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
        # A fused LSTM's state lives in variable tensors, which TFLite carries from one run into the next:
        # every sample starts from the reset state, as on the device (tinyq.compile.ops.kernels.lstm).
        from tinyq.graph import parse_tflite

        self.stateful = any(t.is_variable for t in parse_tflite(tflite).tensors)

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.stateful:
            self.it.reset_all_variables()
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
             per_layer_samples: int = 32) -> QuantReport:
    """Compare the quantized model with the float model on ``data`` (host, TFLite reference kernels)."""
    fr, qr = _Runner(float_tflite), _Runner(quant_tflite)
    x = data.x[:max_samples]
    yf = np.stack([fr.run(s) for s in x])
    yq = np.stack([qr.run(s) for s in x])
    err = np.abs(yf - yq)
    acc_f = acc_q = None
    if data.y is not None and yf.ndim >= 2:
        labels = data.y[: len(x)]
        acc_f, acc_q = _top1(yf, labels), _top1(yq, labels)
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


def quantize(inputs: LoadedInputs, mode: str = "int8", eval_samples: int = 1000,
             signature: str | None = None, finetune: "FineTune | None" = None) -> QuantizedModel:
    """The quantize stage: convert with calibration, then (if evaluation data is given) compare with float.

    With ``finetune`` (QAT and/or pruning, trained on ``inputs.train``) the deployed model is the
    fine-tuned one; the post-training int8 model of the model as given is still made, as the
    baseline of the comparison table.
    """
    if mode not in MODES:
        raise QuantizationError(f"unknown mode '{mode}'", hint=f"choose one of {', '.join(MODES)}")
    from tinyq.infra.isolate import note

    note("loading the model")
    src = _load_source(inputs.model.path, signature)
    calibs = src.calibration(inputs.calib)
    calib = calibs[0]
    warnings = [*inputs.calib.warnings, *_range_warnings(src, calib)]
    qbytes = _convert(src, calibs, mode)
    fbytes = _convert(src, None, "float")
    report = data = None
    if src.inputs and (inputs.eval is not None or finetune is not None and finetune.active):
        raise QuantizationError(f"--eval, --qat and --prune take models with one input; this one has {len(src.inputs)}",
                                hint="leave them out: the build still checks the device against TFLM on the "
                                     "calibration samples")
    if inputs.eval is not None:
        ex = check_shape(inputs.eval, src.shape, "evaluation")
        check_labels(inputs.eval, ex, _output_size(qbytes))
        data = Dataset(ex, inputs.eval.y, inputs.eval.source)
        note("comparing float and int8 on the evaluation data")
        report = evaluate(fbytes, qbytes, data, mode, eval_samples)
    if finetune is not None and finetune.active:
        if mode != "int8":
            raise FineTuneError(f"QAT and pruning make full-int8 models; --mode {mode} does not apply",
                                    hint="leave out --mode (int8 is the default)")
        warnings += finetune.data_warnings(len(inputs.train.x)) if inputs.train is not None else []
        return _finetuned(src, inputs, calib, finetune, fbytes, qbytes, data, report, eval_samples, warnings)
    if report is not None:
        warnings += _accuracy_warnings(report)
    return QuantizedModel(qbytes, fbytes, mode, (1, *src.shape), report, src.loader, tuple(warnings))


def _finetuned(src: _Source, inputs: LoadedInputs, calib: np.ndarray, ft: "FineTune", fbytes: bytes, qbytes: bytes,
               data: Dataset | None, ptq: QuantReport | None, eval_samples: int, warnings: list) -> QuantizedModel:
    """Fine-tune (prune, then QAT), convert, and put the result beside the post-training baseline."""
    import tempfile

    from tinyq.model import optimize
    if src.model is None:
        raise FineTuneError(f"QAT and pruning train Keras models; this one was read as a {src.loader}",
                                hint="give the .keras or .h5 file the SavedModel was made from")
    if inputs.train is None:
        raise CalibrationError("QAT and pruning need labelled training data",
                               hint="give --train DATA (.npz with x and y)")
    tx = check_shape(inputs.train, src.shape, "training")
    check_labels(inputs.train, tx, _output_size(qbytes))
    train = Dataset(tx, inputs.train.y, inputs.train.source)
    tfk = _tf_keras()
    model = optimize.to_tf_keras(src.model, calib)
    history: dict[str, list] = {}
    pruned: tuple = ()
    ref_float = fbytes
    pruned_float = b""
    if ft.prune is not None:
        model, pruned, history["pruning"] = optimize.prune(model, train, ft)
        pruned_float = ref_float = _convert(_keras_source(model, tfk, src.loader), None, "float")
    if ft.qat:
        base = model
        model, history["qat"] = optimize.qat(model, train, ft)
        # The float model the QAT int8 model quantizes: its SQNR reference and `flash --eval`'s float.
        ref_float = _convert(_keras_source(optimize.float_twin(model, base), tfk, src.loader), None, "float")
    final = _convert(_keras_source(model, tfk, src.loader), [calib], "int8")
    with tempfile.TemporaryDirectory(prefix="tinyq-keras-") as tmp:
        path = Path(tmp) / "model.h5"  # tf-keras's .keras format cannot reload tfmot's QAT layers; HDF5 can
        with _quiet():
            optimize.save_keras(model, path)
        keras_bytes = path.read_bytes()
    report = pruned_acc = None
    if data is not None:
        from tinyq.infra.isolate import note

        note("comparing the fine-tuned int8 model with float")
        report = evaluate(ref_float, final, data, "int8", eval_samples)
        if pruned_float and data.y is not None:
            # Without QAT the comparison above already ran the pruned float model.
            pruned_acc = (report.float_accuracy if ref_float is pruned_float
                          else _top1(np.stack([_Runner(pruned_float).run(s) for s in data.x[:eval_samples]]),
                                     data.y))
    sample = data.x if data is not None else calib
    ptq_layers = ptq.layers if ptq is not None else per_layer_error(fbytes, qbytes, sample[:32])
    final_layers = report.layers if report is not None else per_layer_error(ref_float, final, sample[:32])
    table = finetune_table(ft, len(tx), ptq, report, ptq_layers, final_layers, pruned, history, pruned_acc)
    if report is not None and ptq is not None and report.quant_accuracy is not None:
        drop = (ptq.float_accuracy - report.quant_accuracy) * 100
        if drop > ACCURACY_DROP_POINTS:
            warnings.append(f"the fine-tuned int8 model's top-1 is {drop:.1f} points below the float model as given "
                            f"({report.quant_accuracy:.2%} vs {ptq.float_accuracy:.2%}); try more --epochs"
                            + (" or a smaller --prune" if ft.prune is not None else ""))
    return QuantizedModel(final, ref_float, "int8", (1, *src.shape), report, src.loader, tuple(warnings),
                          table, keras_bytes, qbytes)


def _top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of model outputs (one row a sample) against the labels of those samples."""
    return float(np.mean(outputs.reshape(len(outputs), -1).argmax(1) == labels[: len(outputs)]))


def final_name(ft: "FineTune") -> str:
    """What the fine-tuned int8 model is called in the table."""
    return ("pruned " if ft.prune is not None else "") + ("QAT int8" if ft.qat else "int8")


def finetune_table(ft: "FineTune", train_samples: int, ptq: QuantReport | None, final: QuantReport | None,
                   ptq_layers, final_layers, pruned, history, pruned_accuracy: float | None = None) -> dict:
    """The course's table on the user's data: float | post-training int8 | fine-tuned int8, with deltas."""
    acc = {"float": None, "ptq_int8": None, "pruned_float": pruned_accuracy, "final_int8": None}
    if ptq is not None:
        acc["float"], acc["ptq_int8"] = ptq.float_accuracy, ptq.quant_accuracy
    if final is not None:
        acc["final_int8"] = final.quant_accuracy
    pts = lambda a: None if a is None or acc["float"] is None else round((a - acc["float"]) * 100, 2)  # noqa: E731
    sq = lambda ls: [{"op": l.op, "tensor": l.tensor, "sqnr_db": l.sqnr_db} for l in ls]  # noqa: E731
    out = {
        "method": ft.describe(),
        "final_name": final_name(ft),
        "epochs": ft.epochs, "lr": ft.lr, "batch_size": ft.batch_size, "seed": ft.seed,
        "train_samples": train_samples,
        "eval_samples": ptq.samples if ptq is not None else 0,
        "accuracy": acc,
        "delta_points": {k: pts(v) for k, v in acc.items() if k != "float"},
        "sqnr_db": {"ptq_int8": sq(ptq_layers), "final_int8": sq(final_layers)},
        # Each SQNR is measured against its own float model, and those differ: say which.
        "sqnr_against": {"ptq_int8": "the model as given",
                         "final_int8": ("its own QAT float twin (fake-quantization removed)" if ft.qat
                                        else "the pruned float model" if ft.prune is not None
                                        else "the model as given")},
        "history": history,
    }
    if ft.prune is not None:
        before = sum(p.weights for p in pruned)
        after = sum(p.weights_after for p in pruned)
        out["pruning"] = {"fraction": ft.prune, "layers": [p.to_dict() for p in pruned],
                          "weights": before, "weights_after": after,
                          "sparsity": round(1 - after / before, 4) if before else 0.0}
    return out


def _output_size(tflite: bytes) -> int:
    from tinyq.graph import parse_tflite

    g = parse_tflite(tflite)
    return g.output_tensors[0].size


def from_int8_tflite(inputs: LoadedInputs, verify_inputs: int = 8, seed: int = 0,
                     eval_samples: int = 1000, board=None) -> tuple[QuantizedModel, np.ndarray]:
    """The quantize stage for a pre-quantized int8 .tflite: use it as it is (no TensorFlow).

    Returns the model and the int8 inputs the device will be verified on: the calibration
    samples when given (quantized with the model's input scale; int8 samples as they are),
    else seeded random int8 inputs. With labelled evaluation data the report holds the
    int8 model's top-1 on the host (the TFLM interpreter). Float, float16, hybrid and
    weight-only files are refused: a .tflite cannot be re-calibrated. With ``board``, a tensor larger
    than its RAM is refused before any input is made.
    """
    from tinyq.compile.analyze import TFLITE_KINDS, check_tensor_sizes, tflite_kind, unsupported_ops
    from tinyq.errors import UnsupportedModelError
    from tinyq.graph import parse_tflite

    path = inputs.model.path
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from e
    graph = parse_tflite(data, str(path))
    if board is not None:
        check_tensor_sizes(graph, board.memory.ram_bytes, board.id)
    kind = tflite_kind(graph)
    # The ops first: what blocks a model is what it runs, not a guess at its kind from its tensors' types.
    # (DEQUANTIZE is no blocker of its own: it is how float16, weight-only and float-I/O files are made, and
    # their kind is the message.)
    missing = [op for op in unsupported_ops(graph) if op != "DEQUANTIZE"]
    if missing:
        also = f"; it is also {TFLITE_KINDS[kind]}" if kind != "int8" else ""
        raise UnsupportedModelError(f"{path}: uses ops tinyq's int8 runtime cannot run: {', '.join(missing[:6])}"
                                    f"{f' (+{len(missing) - 6} more)' if len(missing) > 6 else ''}{also}",
                                    hint="`tinyq inspect` lists every op and what tinyq runs; replace those layers")
    if kind not in ("int8", "int8-float-io"):
        raise UnsupportedModelError(f"{path}: {TFLITE_KINDS[kind]}; tinyq deploys full-int8 models only",
                                    hint="a .tflite cannot be re-calibrated: give tinyq the Keras model or SavedModel "
                                         "it came from, with --calib, and it quantizes it to full int8")
    shape = tuple(int(d) for d in graph.input_tensors[0].shape[1:])
    warnings: list[str] = []
    if inputs.calib is not None:
        x = device_inputs(graph, inputs.calib, verify_inputs, "calibration", warnings)
    else:
        x = random_inputs(graph, verify_inputs, seed)
    report = None
    if inputs.eval is not None:
        ex = device_inputs(graph, inputs.eval, eval_samples, "evaluation")
        check_labels(inputs.eval, ex, graph.output_tensors[0].size)
        report = _int8_report(data, ex, inputs.eval.y)
    q = QuantizedModel(data, b"", "int8", (1, *shape), report, "int8 .tflite (used as it is)",
                       (*(inputs.calib.warnings if inputs.calib else ()), *warnings))
    return q, x[:verify_inputs]


def random_inputs(graph, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded inputs to verify a model on, as the device's input buffers (Graph.pack_inputs): every
    int8 value equally likely; a float input end gets those values as the QUANTIZE that reads it maps them
    back to float (so the model sees its whole range)."""
    from tinyq.compile.analyze import float_ends

    rng = np.random.default_rng(seed)
    ends = float_ends(graph)
    arrays = []
    for t in graph.input_tensors:
        shape = tuple(int(d) for d in t.shape[1:])
        q = rng.integers(-128, 128, size=(n, *shape), dtype=np.int8)
        if t.index in ends:
            qt = next(graph.tensors[op.outputs[0]] for op in graph.operators if t.index in op.inputs)
            q = (np.float32(qt.quant.scale[0]) * (q.astype(np.int32) - qt.quant.zero_point[0])).astype(np.float32)
        arrays.append(q)
    return graph.pack_inputs(arrays)


def device_inputs(graph, data: Dataset, n: int | None = None, what: str = "calibration",
                  warnings: list[str] | None = None) -> np.ndarray:
    """The first ``n`` samples of ``data`` as the device takes them: for a model with one int8 input and one
    int8 output (N, *input shape) int8, else its input buffers (Graph.pack_inputs), the samples of each input
    found by its signature name (an .npz keyed by input name)."""
    specs = [(graph.input_name(t.index), tuple(int(d) for d in t.shape[1:])) for t in graph.input_tensors]
    arrays = [device_input(a[:n], t, data.stored_dtype == "int8", data.source, warnings)
              for a, t in zip(data.for_inputs(specs, what), graph.input_tensors)]
    return arrays[0] if graph.single_int8_io else graph.pack_inputs(arrays)


def device_input(x: np.ndarray, tensor, already_int8: bool = False, source: str = "the data",
                 warnings: list[str] | None = None) -> np.ndarray:
    """Samples as the device takes them for input ``tensor``: float32 as they are for a float input end,
    else quantized (:func:`quantize_input`)."""
    if tensor.dtype == "FLOAT32":
        return x.astype(np.float32)
    return quantize_input(x, tensor, already_int8, source, warnings)


def quantize_input(x: np.ndarray, tensor, already_int8: bool = False, source: str = "the data",
                   warnings: list[str] | None = None) -> np.ndarray:
    """Samples as the model's int8 input: ``already_int8`` data as they are, anything else scaled by the
    input's quantization (a warning naming ``source`` when many values fall outside what int8 holds there)."""
    if already_int8:
        return x.astype(np.int8)
    s, z = tensor.quant.scale[0], tensor.quant.zero_point[0]
    q = np.round(x / s) + z
    clipped = float(np.mean((q < -128) | (q > 127)))
    if warnings is not None and clipped > 0.01:
        lo, hi = (-128 - z) * s, (127 - z) * s
        warnings.append(f"{source}: {clipped:.0%} of the values lie outside the model's input range "
                        f"[{lo:.4g}, {hi:.4g}] and are clipped; the data may be on another scale than the model's")
    return np.clip(q, -128, 127).astype(np.int8)


def _int8_report(tflite: bytes, x: np.ndarray, y: np.ndarray | None) -> QuantReport:
    """The int8 model alone on the host (TFLM): its top-1 where labels are given."""
    from tinyq.infra import isolate
    acc = None
    if y is not None:  # TFLM in a worker, as for the build's reference outputs (it can abort on hostile models)
        acc = _top1(isolate.call("tinyq.model.reference:run_reference", tflite, x, what="TFLM (the host reference)",
                                 crash_hint="TFLM cannot run this model either; check it with `tinyq inspect`"), y)
    return QuantReport(mode="int8", float_bytes=0, quant_bytes=len(tflite), samples=len(x), float_accuracy=None,
                       quant_accuracy=acc, agreement=None, mean_abs_error=None, max_abs_error=None)
