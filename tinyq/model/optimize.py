"""Fine-tuning before int8 conversion, part of the quantize stage: quantization-aware training (QAT)
and channel pruning.

TensorFlow's model-optimization toolkit (tfmot) trains tf-keras models only, so a Keras 3 model is
first carried over to tf-keras layer by layer (:func:`to_tf_keras`) and the copy is checked layer by
layer against the original before any training.

Pruning here removes whole filters (output channels of Conv2D and Dense layers, with the matching
input channels of the layers that read them), not scattered weights: the pruned model is a smaller
dense model, so it needs fewer flash bytes and fewer instructions with the same kernels, and stays
bit-exact with TFLM by construction. Zeros scattered through a weight tensor would still be stored
and multiplied by every int8 kernel tinyq (or CMSIS-NN) has.

Like :mod:`tinyq.model.quantize`, this module imports TensorFlow only inside its functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyq.errors import FineTuneError

#: Activations that keep a zero a zero: a removed channel must be exactly 0 all the way to its readers.
_ZERO_KEEPING = {"linear", "relu", "relu6", "tanh", "elu", "selu", "swish", "silu", "gelu", "softsign",
                 "leaky_relu", "hard_swish", "hard_silu", "mish"}
#: Layers a channel passes through on its own (no mixing with other channels).
_CHANNELWISE = {"BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Dropout",
                "SpatialDropout2D", "GaussianNoise", "MaxPooling2D", "AveragePooling2D", "MaxPooling1D",
                "AveragePooling1D", "ZeroPadding2D", "ZeroPadding1D", "Cropping2D", "UpSampling2D",
                "GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
                "DepthwiseConv2D"}
_PRUNABLE = {"Conv2D", "Conv1D", "Dense"}


#: The largest --seed: NumPy's and TensorFlow's global seeds are 32-bit.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class FineTune:
    """What the user asked of fine-tuning before conversion: QAT, pruning, or both."""

    qat: bool = False
    prune: float | None = None   # fraction of the filters removed from each prunable layer
    epochs: int = 3
    lr: float = 1e-3             # Adam, cosine-decayed to 0 over the fine-tuning
    batch_size: int = 32
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.qat or self.prune is not None

    def describe(self) -> str:
        parts = [f"pruning {self.prune:.0%} of the filters"] if self.prune is not None else []
        return " + ".join(parts + (["QAT"] if self.qat else []))

    def check(self) -> None:
        """Refuse settings that cannot work, before any data is read."""
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise FineTuneError(f"--prune {self.prune}: the fraction of filters to remove must be between 0 and 1",
                                    hint="e.g. --prune 0.5 removes half of the filters of each prunable layer")
        if self.epochs < 1:
            raise FineTuneError(f"--epochs {self.epochs}: fine-tuning needs at least one epoch")
        if not 0.0 < self.lr < 1.0:
            raise FineTuneError(f"--lr {self.lr}: the learning rate must be between 0 and 1",
                                    hint="1e-3 (the default) suits fine-tuning with Adam")
        if not 0 <= self.seed <= MAX_SEED:
            raise FineTuneError(f"--seed {self.seed}: the seed must be between 0 and {MAX_SEED:,}",
                                hint="NumPy and TensorFlow seed with 32-bit values; e.g. --seed 0")

    def data_warnings(self, samples: int) -> list[str]:
        """What to say of a training set of ``samples`` samples (it is allowed, but may teach little)."""
        if samples < self.batch_size:
            return [f"only {samples} training sample{'s' if samples != 1 else ''}, fewer than one batch "
                    f"({self.batch_size}): each epoch is one step, and fine-tuning on so few samples can over-fit them"]
        return []


@dataclass(frozen=True)
class PrunedLayer:
    """One layer's share of the pruning: its filters and weights before and after."""

    layer: str
    kind: str
    filters: int
    kept: int
    weights: int        # kernel elements before
    weights_after: int  # after (own filters and, where its input was pruned, its input channels removed)

    @property
    def sparsity(self) -> float:
        """Fraction of the layer's weights removed."""
        return 1.0 - self.weights_after / self.weights if self.weights else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "sparsity": round(self.sparsity, 4)}


def _tfk():
    from tinyq.model.tfenv import tf

    tf()
    import tf_keras

    return tf_keras


def _seed(seed: int) -> None:
    from tinyq.model.tfenv import tf

    _tfk().utils.set_random_seed(seed)
    tf().config.experimental.enable_op_determinism()


# --- Keras 3 -> tf-keras ---------------------------------------------------------------------------

def _layer_config(layer) -> dict:
    cfg = dict(layer.get_config())
    if isinstance(cfg.get("dtype"), dict):  # Keras 3 writes a DTypePolicy object; tf-keras takes a name
        cfg["dtype"] = cfg["dtype"].get("config", {}).get("name", "float32")
    # Initializers do not matter (the weights are copied) and Keras 3 writes arguments tf-keras lacks.
    return {k: v for k, v in cfg.items() if not k.endswith("_initializer")}


def _tf_keras_layer(layer, tfk):
    kind = type(layer).__name__
    cls = getattr(tfk.layers, kind, None)
    if cls is None:
        raise FineTuneError(
            f"layer '{layer.name}' ({kind}) has no tf-keras counterpart; QAT and pruning train tf-keras models",
            hint="replace the layer with a standard one, or save the model with tf-keras (Keras 2)")
    cfg = _layer_config(layer)
    for _ in range(len(cfg) + 1):
        try:
            return cls.from_config(cfg)
        except (TypeError, ValueError) as e:
            # A Keras 3 argument tf-keras does not know: drop it; the layer-by-layer check below
            # catches it if it mattered.
            bad = [k for k in re.findall(r"(?:unexpected keyword argument|Keyword argument not understood:)'?,? '(\w+)'",
                                         str(e)) if k in cfg]
            if not bad:
                raise FineTuneError(f"layer '{layer.name}' ({kind}) cannot be rebuilt in tf-keras: {e}",
                                        hint="save the model with tf-keras (Keras 2), or replace the layer") from e
            cfg.pop(bad[0])
    raise FineTuneError(f"layer '{layer.name}' ({kind}) cannot be rebuilt in tf-keras")


def to_tf_keras(model, x_check: np.ndarray):
    """The same model as a tf-keras model, weights copied; checked layer by layer on ``x_check``.

    A tf-keras model is returned as it is. Stops, naming the layer, where the copy is not faithful.
    """
    tfk = _tfk()
    if isinstance(model, tfk.Model):
        # A fresh copy: one call (node) per layer, which the pruning's graph walk relies on; conversions
        # of the loaded model have called its layers again.
        copy = tfk.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy
    tensors: dict[str, Any] = {}
    for t in model.inputs:
        layer = t._keras_history[0]
        tensors[layer.name] = tfk.Input(tuple(t.shape)[1:], name=layer.name, dtype="float32")
    pairs = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers"):
            raise FineTuneError(f"layer '{layer.name}' is a nested model; QAT and pruning need a flat model",
                                    hint="rebuild the model without models inside it")
        # Node 0 is the model's own call of the layer (later calls come from conversions and tracing).
        parents = [t._keras_history[0].name for t in layer._inbound_nodes[0].input_tensors]
        new = _tf_keras_layer(layer, tfk)
        args = [tensors[p] for p in parents]
        tensors[layer.name] = new(args if len(args) > 1 else args[0])
        pairs.append((layer, new))
    out = model.outputs[0]._keras_history[0].name
    copy = tfk.Model(tensors[model.inputs[0]._keras_history[0].name], tensors[out], name=model.name)
    for old, new in pairs:
        try:
            new.set_weights([np.asarray(w) for w in old.get_weights()])
        except ValueError as e:
            raise FineTuneError(f"layer '{old.name}' ({type(old).__name__}): its weights do not fit the "
                                    f"tf-keras layer: {e}", hint="save the model with tf-keras (Keras 2)") from e
    _check_copy(model, copy, pairs, x_check, tfk)
    return copy


def _check_copy(model, copy, pairs, x, tfk) -> None:
    import keras

    x = x[:16].astype(np.float32)
    ref = keras.Model(model.inputs, [old.output for old, _ in pairs])(x, training=False)
    got = tfk.Model(copy.inputs, [new.output for _, new in pairs])(x, training=False)
    ref, got = (ref if isinstance(ref, (list, tuple)) else [ref]), (got if isinstance(got, (list, tuple)) else [got])
    for (old, _), a, b in zip(pairs, ref, got):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-4 * (1 + float(np.abs(a).max()))):
            raise FineTuneError(
                f"the tf-keras copy of layer '{old.name}' ({type(old).__name__}) computes something else than "
                f"the Keras 3 layer (max difference {float(np.abs(a - b).max()) if a.shape == b.shape else 'shape'})",
                hint="QAT and pruning need tf-keras; save the model with tf-keras (Keras 2) or replace that layer")


# --- training --------------------------------------------------------------------------------------

def _loss(model, x: np.ndarray):
    """Sparse categorical cross-entropy, on logits unless the model already ends in a softmax."""
    tfk = _tfk()
    p = np.asarray(model(x[:32].astype(np.float32), training=False)).reshape(min(len(x), 32), -1)
    probs = bool(np.all(p >= 0) and np.allclose(p.sum(1), 1.0, atol=1e-3))
    return tfk.losses.SparseCategoricalCrossentropy(from_logits=not probs)


def _epoch_callback(what: str, epochs: int, history: list):
    """A Keras callback (tf-keras is imported only here) that records and reports each epoch."""
    from tinyq.infra.isolate import progress

    class Epochs(_tfk().callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            history.append({"epoch": epoch + 1, "loss": round(float(logs.get("loss", 0.0)), 5),
                            "accuracy": round(float(logs.get("accuracy", 0.0)), 5)})
            done = round(20 * (epoch + 1) / epochs)
            progress(f"{what} [{'#' * done}{'.' * (20 - done)}] epoch {epoch + 1}/{epochs}, "
                     f"loss {logs.get('loss', 0.0):.4f}, train accuracy {logs.get('accuracy', 0.0):.2%}")

    return Epochs()


def _fit(model, train, opts: FineTune, what: str, extra_callbacks=()) -> list:
    """Fine-tune ``model`` on ``train`` (its labels were checked against the model by the caller)."""
    tfk = _tfk()
    x = train.x.astype(np.float32)
    steps = opts.epochs * int(np.ceil(len(x) / opts.batch_size))
    model.compile(tfk.optimizers.Adam(tfk.optimizers.schedules.CosineDecay(opts.lr, steps)),
                  _loss(model, x), metrics=["accuracy"])
    history: list = []
    model.fit(x, train.y.astype(np.int64), epochs=opts.epochs, batch_size=opts.batch_size, shuffle=True,
              verbose=0, callbacks=[*extra_callbacks, _epoch_callback(what, opts.epochs, history)])
    return history


def qat(model, train, opts: FineTune):
    """Quantization-aware fine-tuning (tfmot's default 8-bit scheme). Returns (QAT model, history)."""
    from tinyq.infra.isolate import note

    _tfk()
    import tensorflow_model_optimization as tfmot

    note("wrapping the model for quantization-aware training")
    _seed(opts.seed)
    try:
        qmodel = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError, TypeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FineTuneError(f"quantization-aware training cannot wrap this model: {msg}",
                                hint="tfmot supports Conv, Dense, DepthwiseConv, BatchNormalization, pooling and "
                                     "common activations; replace the layer it names") from e
    note("quantization-aware training")
    history = _fit(qmodel, train, opts, "QAT")
    return qmodel, history


def float_twin(qmodel, model):
    """``model``'s architecture with the weights QAT trained, without fake quantization: the float model
    the QAT int8 model is the quantization of (its per-layer SQNR is measured against it)."""
    tfk = _tfk()
    twin = tfk.models.clone_model(model)
    for layer in twin.layers:
        if not layer.weights:
            continue
        try:
            src = qmodel.get_layer(f"quant_{layer.name}")
        except ValueError:
            src = qmodel.get_layer(layer.name)
        # A QuantizeWrapper holds the float variables (named after the inner layer) beside its quantizers'.
        by_name = {w.name.split(":")[0]: w for w in src.weights}
        values = []
        for w in layer.weights:
            want = w.name.split(":")[0]
            hit = [v for n, v in by_name.items() if n == want or n.endswith("/" + want)]
            if len(hit) != 1:
                raise FineTuneError(f"cannot find the QAT weight '{want}' of layer '{layer.name}'",
                                    hint="please report this with the model attached")
            values.append(np.asarray(hit[0]))
        layer.set_weights(values)
    return twin


# --- channel pruning -------------------------------------------------------------------------------

@dataclass
class _Group:
    """A prunable layer, the channel-wise layers its output passes, and the layers that read it."""

    producer: Any
    path: list
    readers: list          # (layer, flatten spatial size or 0)
    mask: np.ndarray | None = None


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    return getattr(act, "__name__", str(act))


def _readers(layer) -> list:
    return [n.outbound_layer for n in layer._outbound_nodes]


def _group(model, producer) -> _Group | None:
    """How ``producer``'s channels reach other layers, or None when they cannot be removed."""
    outputs = {t._keras_history[0].name for t in model.outputs}
    if producer.name in outputs or len(producer._inbound_nodes) != 1:
        return None
    if type(producer).__name__ == "Conv2D" and producer.groups != 1:
        return None
    if _activation_name(producer) not in _ZERO_KEEPING:
        return None
    g = _Group(producer, [], [])
    todo = [(r, 0) for r in _readers(producer)]
    seen = set()
    while todo:
        layer, flat = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        kind = type(layer).__name__
        if len(layer._inbound_nodes) != 1:
            return None
        if kind in _PRUNABLE and not (kind == "Conv2D" and layer.groups != 1):
            g.readers.append((layer, flat))
            continue
        if layer.name in outputs:
            return None
        if kind == "Flatten" and not flat:
            shape = layer.input_shape[1:]
            flat = int(np.prod(shape[:-1]))
        elif kind in _CHANNELWISE:
            if flat and kind not in ("Dropout", "Activation", "ReLU"):
                return None
            if kind == "BatchNormalization" and layer.axis not in ([-1], [len(layer.input_shape) - 1], -1):
                return None
            if kind == "DepthwiseConv2D" and layer.depth_multiplier != 1:
                return None
            if kind in ("Activation", "DepthwiseConv2D") and _activation_name(layer) not in _ZERO_KEEPING:
                return None
        else:
            return None  # Add, Concatenate, Reshape, Softmax...: channels mix or the layout changes
        g.path.append(layer)
        todo.extend((r, flat) for r in _readers(layer))
    return g if g.readers else None


def _importance(g: _Group) -> np.ndarray:
    """Each filter's L2 norm, times the scale a following BatchNormalization gives it."""
    k = np.asarray(g.producer.kernel)
    norm = np.sqrt((k.reshape(-1, k.shape[-1]) ** 2).sum(0))
    for layer in g.path:
        if type(layer).__name__ == "BatchNormalization":
            gamma = np.asarray(layer.gamma) if layer.scale else 1.0
            norm = norm * np.abs(gamma) / np.sqrt(np.asarray(layer.moving_variance) + layer.epsilon)
            break
    return norm


def _choose(g: _Group, sparsity: float) -> np.ndarray:
    n = g.producer.kernel.shape[-1]
    drop = min(int(round(sparsity * n)), n - 1)
    mask = np.ones(n, bool)
    if drop:
        # Ties broken by channel index (stable sort) so a seed gives one result.
        mask[np.argsort(_importance(g), kind="stable")[:drop]] = False
    return mask


def _apply(g: _Group) -> None:
    """Zero what makes each removed channel exactly 0 after the producer and every layer on its path."""
    off = ~g.mask
    if not off.any():
        return
    k = g.producer.kernel
    k.assign(np.where(off, 0.0, np.asarray(k)).astype(np.float32))
    if g.producer.use_bias:
        b = g.producer.bias
        b.assign(np.where(off, 0.0, np.asarray(b)).astype(np.float32))
    for layer in g.path:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            for v in (layer.gamma if layer.scale else None, layer.beta if layer.center else None):
                if v is not None:
                    v.assign(np.where(off, 0.0, np.asarray(v)).astype(np.float32))
        elif kind == "DepthwiseConv2D" and layer.use_bias:
            layer.bias.assign(np.where(off, 0.0, np.asarray(layer.bias)).astype(np.float32))


def prune(model, train, opts: FineTune):
    """Channel pruning during fine-tuning; returns (smaller model, per-layer report, history).

    Filters are ranked by L2 norm (scaled by a following BatchNormalization) and masked on
    tfmot's polynomial schedule, from none to ``opts.prune`` over the first two thirds of the
    fine-tuning; the last third trains with the final masks. The masked channels are then
    removed for real, and the smaller model is checked to compute what the masked one did.
    """
    from tinyq.infra.isolate import note

    tfk = _tfk()
    import tensorflow_model_optimization as tfmot

    note("finding the layers whose filters can be removed")
    groups = [g for g in (_group(model, l) for l in model.layers if type(l).__name__ in _PRUNABLE) if g]
    if not groups:
        raise FineTuneError("no layer of this model can lose filters: every Conv2D/Dense output feeds an "
                                "Add, a Concatenate, a reshape or the model's output",
                                hint="pruning removes whole filters; leave out --prune for this model")
    _seed(opts.seed)
    steps_per_epoch = int(np.ceil(len(train.x) / opts.batch_size))
    total = opts.epochs * steps_per_epoch
    end = max(0, (2 * total) // 3 - 1)
    sched = tfmot.sparsity.keras.PolynomialDecay(0.0, opts.prune, begin_step=0, end_step=max(end, 1), power=3,
                                                 frequency=max(1, end // 10))
    for g in groups:
        g.mask = np.ones(g.producer.kernel.shape[-1], bool)

    class Masks(tfk.callbacks.Callback):
        step = 0

        def on_train_batch_begin(self, batch, logs=None):
            # New masks on the schedule's steps; between them the weights are still masked from the
            # end of the last step.
            s = self.step
            if s <= end:
                due, sparsity = sched(s)
                if bool(due) or s == end:
                    for g in groups:
                        g.mask = _choose(g, opts.prune if s == end else float(sparsity))
                        _apply(g)

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            for g in groups:  # the optimizer moved the masked weights: back to 0
                _apply(g)

    note("pruning filters while fine-tuning")
    history = _fit(model, train, opts, "pruning", [Masks()])
    for g in groups:
        if g.mask.sum() > len(g.mask) - round(opts.prune * len(g.mask)):  # too few steps to reach it
            g.mask = _choose(g, opts.prune)
        _apply(g)
    note("removing the pruned filters")
    small, report = _remove(model, groups, tfk)
    x = train.x[:32].astype(np.float32)
    a, b = np.asarray(model(x, training=False)), np.asarray(small(x, training=False))
    if not np.allclose(a, b, rtol=1e-4, atol=1e-4 * (1 + float(np.abs(a).max()))):
        raise FineTuneError("the model without its pruned filters computes something else than the masked model "
                                f"(max difference {float(np.abs(a - b).max()):.3g})",
                                hint="please report this with the model attached")
    return small, tuple(report), history


def _remove(model, groups: list[_Group], tfk):
    """A new model without the masked channels, the other weights copied."""
    out_mask = {g.producer.name: g.mask for g in groups}
    in_mask: dict[str, np.ndarray] = {}
    chan_mask: dict[str, np.ndarray] = {}
    for g in groups:
        for layer in g.path:
            chan_mask[layer.name] = g.mask
        for layer, flat in g.readers:
            in_mask[layer.name] = np.tile(g.mask, flat) if flat else g.mask
    cfg = model.get_config()
    for entry in cfg["layers"]:
        name = entry["config"]["name"]
        if name in out_mask:
            key = "filters" if "filters" in entry["config"] else "units"
            entry["config"][key] = int(out_mask[name].sum())
    small = type(model).from_config(cfg) if isinstance(model, tfk.Sequential) else tfk.Model.from_config(cfg)
    report = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        new = small.get_layer(layer.name)
        ws = [np.asarray(w) for w in layer.get_weights()]
        kind = type(layer).__name__
        if kind in _PRUNABLE and (layer.name in out_mask or layer.name in in_mask):
            k = ws[0]
            if layer.name in in_mask:
                k = np.compress(in_mask[layer.name], k, axis=-2)
            if layer.name in out_mask:
                k = np.compress(out_mask[layer.name], k, axis=-1)
                ws[1:] = [np.compress(out_mask[layer.name], w, axis=-1) for w in ws[1:]]
            report.append(PrunedLayer(layer.name, kind, int(ws[0].shape[-1]), int(k.shape[-1]), int(ws[0].size),
                                      int(k.size)))
            ws[0] = k
        elif layer.name in chan_mask:
            m = chan_mask[layer.name]
            if kind == "DepthwiseConv2D":
                ws = [np.compress(m, ws[0], axis=-2), *[np.compress(m, w, axis=-1) for w in ws[1:]]]
            else:
                ws = [np.compress(m, w, axis=-1) for w in ws]
        new.set_weights(ws)
    return small, report


def save_keras(model, path) -> None:
    """Save a fine-tuned tf-keras model as HDF5 (a QAT model loads inside tfmot's quantize_scope)."""
    model.save(str(path))
