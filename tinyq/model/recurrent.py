"""Recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional) rebuilt as graphs TFLite's int8 converter takes.

TensorFlow's int8 converter cannot take a Keras 3 recurrent layer to a microcontroller: it crashes in
calibration or fails to lower the loop's tensor-list ops. The quantize stage therefore replaces each
recurrent layer, before converting, with a twin of the same weights (checked against it in float first):

- an LSTM with Keras's standard activations (tanh, sigmoid), whose final cell state the model does not
  use, becomes TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (int8 weights and activations, int16 cell state;
  tinyq.compile.ops.kernels.lstm): its computation is wrapped in a function carrying the attribute by which
  the converter recognises tf-keras's LSTM (``api_implements = "lstm_..."``), so no tf-keras is needed.
  go_backwards reverses the timesteps around it with UNPACK and PACK;
- any other layer (GRU, SimpleRNN, an LSTM with other activations or return_state) is unrolled over its
  fixed timesteps in plain TensorFlow ops: the input projection of every timestep at once (one
  FULLY_CONNECTED over T rows, the bias folded in), UNPACK into one row a step, then per step a
  FULLY_CONNECTED of the previous state (none at the first step: the initial state is zero), ADD, SPLIT
  into the gates, LOGISTIC / TANH (RELU, identity), MUL and ADD. The first step, which needs only some
  gates, takes them with a STRIDED_SLICE (the converter leaves a SPLIT with an unused output in float).
  GRU's ``(1 - z)`` is ``sigmoid(-a)`` (equal to ``1 - sigmoid(a)``) from gate columns with negated
  weights, so the graph needs no SUB;
- a sequence (``return_sequences``) is a PACK of the per-step states; Bidirectional merges its two
  directions with CONCATENATION, ADD or MUL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyq.errors import QuantizationError, UnsupportedModelError

#: Layer classes the rebuild takes (a generic RNN only with one of the three cells).
REBUILT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")
_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}
#: Activation functions the unrolled graph has an int8 builtin for (LOGISTIC, TANH, RELU, none).
_ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
#: Largest difference (relative to the output's magnitude, at least 1) between a rebuilt layer and the
#: layer it replaces on random inputs: float32 rounding of the same sums in another order is ~1e-6.
TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class Core:
    """One direction of a recurrent layer: its kind, float weights and options."""

    kind: str                     # "LSTM", "GRU" or "SimpleRNN"
    units: int
    kernel: np.ndarray            # (features, gates * units)
    recurrent: np.ndarray         # (units, gates * units)
    bias: np.ndarray | None       # (gates * units,), or (2, 3 * units) for a GRU with reset_after
    activation: str
    recurrent_activation: str     # LSTM and GRU gates
    reset_after: bool             # GRU only
    go_backwards: bool


@dataclass(frozen=True, eq=False)
class Plan:
    """A recurrent layer as the rebuild computes it: one or two cores and what the layer returns."""

    name: str
    cls: str                      # the layer's class name, for messages
    cores: tuple[Core, ...]       # forward (, backward) for a Bidirectional
    return_sequences: bool
    return_state: bool
    merge_mode: str | None = None  # Bidirectional only

    def describe(self, steps: int | None = None) -> str:
        """The layer and how it is rebuilt, e.g. "LSTM 'lstm' (50 steps, fused)"."""
        inner = "/".join(sorted({c.kind for c in self.cores}))
        what = f"{self.cls}({inner})" if self.cls in ("Bidirectional", "RNN") else self.cls
        how = "fused" if all(fused(c, self) for c in self.cores) else "unrolled"
        return f"{what} '{self.name}' ({f'{steps} steps, ' if steps else ''}{how})"


def is_recurrent(layer) -> bool:
    """Whether a layer is one the rebuild replaces."""
    return type(layer).__name__ in REBUILT


def _refuse(layer, what: str, hint: str, owner=None) -> UnsupportedModelError:
    """The refusal of ``layer`` (inside the Bidirectional ``owner``, if given) for ``what``."""
    name = f"{type(layer).__name__} layer '{layer.name}'"
    if owner is not None:
        name = f"{type(owner).__name__} layer '{owner.name}' (its {type(layer).__name__})"
    return UnsupportedModelError(f"{name}: {what}; tinyq cannot run it on a microcontroller", hint=hint)


def _activation_name(fn) -> str:
    name = getattr(fn, "__name__", None) or str(fn)
    return {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "linear": "linear"}.get(name, name)


def _core(layer, owner=None) -> Core:
    """The weights and options of a Keras LSTM, GRU or SimpleRNN layer (Keras 3 or tf-keras); ``owner``:
    the Bidirectional it is a direction of."""
    def no(what: str, hint: str) -> UnsupportedModelError:
        return _refuse(layer, what, hint, owner)

    cell = getattr(layer, "cell", None)
    kind = _CELLS.get(type(cell).__name__)
    if kind is None:
        raise no(f"its cell is a {type(cell).__name__}, not an LSTMCell, GRUCell or SimpleRNNCell",
                 "use keras.layers.LSTM, GRU or SimpleRNN (stacked cells: one layer each)")
    if getattr(layer, "stateful", False):
        raise no("stateful=True keeps the state between calls",
                 "use stateful=False and give the model the whole window at once")
    if getattr(layer, "time_major", False):
        raise no("time_major=True", "use time_major=False (inputs shaped (batch, time, features))")
    act = _activation_name(cell.activation)
    rec = _activation_name(getattr(cell, "recurrent_activation", None)) if kind != "SimpleRNN" else "sigmoid"
    for option, value in (("activation", act), ("recurrent_activation", rec)):
        if value not in _ACTIVATIONS:
            raise no(f"{option}='{value}' has no int8 builtin in TFLite",
                     f"use {option}={'sigmoid' if option == 'recurrent_activation' else 'tanh'} "
                     f"(tinyq takes {', '.join(_ACTIVATIONS)})")
    if kind == "GRU" and rec != "sigmoid":
        raise no(f"recurrent_activation='{rec}' (tinyq computes the update gate's 1 - z as "
                 "sigmoid(-a), which needs sigmoid)", "use recurrent_activation='sigmoid' (the default)")
    bias = np.asarray(cell.bias, np.float32) if getattr(cell, "use_bias", True) and cell.bias is not None else None
    return Core(kind, int(cell.units), np.asarray(cell.kernel, np.float32), np.asarray(cell.recurrent_kernel, np.float32),
                bias, act, rec, bool(getattr(cell, "reset_after", False)), bool(layer.go_backwards))


def plan(layer) -> Plan:
    """How the rebuild computes ``layer`` (an LSTM, GRU, SimpleRNN, RNN of one of their cells, or a
    Bidirectional of those); UnsupportedModelError naming the layer and option it cannot take."""
    cls = type(layer).__name__
    if cls == "Bidirectional":
        mode = layer.merge_mode
        if mode not in ("concat", "sum", "mul", "ave", None):
            raise _refuse(layer, f"merge_mode='{mode}'", "use merge_mode='concat', 'sum', 'mul', 'ave' or None")
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if not (type(fwd).__name__ in REBUILT[:4] and type(bwd).__name__ in REBUILT[:4]):
            raise _refuse(layer, f"it wraps {type(fwd).__name__} / {type(bwd).__name__}",
                          "wrap an LSTM, GRU or SimpleRNN")
        return Plan(layer.name, cls, (_core(fwd, layer), _core(bwd, layer)), bool(fwd.return_sequences), bool(fwd.return_state),
                    mode)
    return Plan(layer.name, cls, (_core(layer),), bool(layer.return_sequences), bool(layer.return_state))


# ---------------------------------------------------------------------------------------------
# The unrolled computation, in TensorFlow ops (batch-generic; converted with a batch of 1).


def _act(tf, name: str):
    return {"sigmoid": tf.sigmoid, "tanh": tf.tanh, "relu": tf.nn.relu, "linear": lambda v: v}[name]


def _gate_weights(core: Core) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(input kernel, input bias, recurrent kernel, recurrent bias) of the unrolled graph.

    SimpleRNN: Keras's own. LSTM: Keras's gates reordered i, c, o, f. GRU (gates z, r, h): a fourth gate of
    negated z columns is appended (sigmoid(-a) = 1 - sigmoid(a)); the recurrent biases of z and r
    are folded into the input bias (they are added to the same sums); with reset_after the h gate's
    recurrent bias stays with the recurrent projection (the reset gate multiplies it). Without
    reset_after the recurrent kernel holds the z, r and -z columns only: h's is applied to r * h.
    """
    u, f = core.units, core.kernel.shape[0]
    b = core.bias if core.bias is not None else np.zeros(core.kernel.shape[1], np.float32)
    if core.kind == "SimpleRNN":
        return core.kernel, b, core.recurrent, None
    if core.kind == "LSTM":
        # Keras's gates i, f, c, o reordered to i, c, o, f: the first step (no cell state to forget)
        # slices the first three instead of leaving a SPLIT output unused.
        order = np.concatenate([np.arange(k * u, (k + 1) * u) for k in (0, 2, 3, 1)])
        return core.kernel[:, order], b[order], core.recurrent[:, order], None
    b = core.bias
    w, r = core.kernel, core.recurrent
    if b is None:
        bx, bh = np.zeros(3 * u, np.float32), np.zeros(3 * u, np.float32)
    elif core.reset_after:
        bx, bh = b[0], b[1]
    else:
        bx, bh = b, np.zeros(3 * u, np.float32)
    z, rr, h = slice(0, u), slice(u, 2 * u), slice(2 * u, 3 * u)
    bz, br = bx[z] + bh[z], bx[rr] + bh[rr]
    w_in = np.concatenate([w[:, z], w[:, rr], w[:, h], -w[:, z]], axis=1)
    b_in = np.concatenate([bz, br, bx[h], -bz])
    if core.reset_after:
        w_rec = np.concatenate([r[:, z], r[:, rr], r[:, h], -r[:, z]], axis=1)
        b_rec = np.concatenate([np.zeros(2 * u, np.float32), bh[h], np.zeros(u, np.float32)])
    else:
        w_rec = np.concatenate([r[:, z], r[:, rr], -r[:, z]], axis=1)
        b_rec = None
    assert w_in.shape == (f, 4 * u)
    return w_in, b_in.astype(np.float32), w_rec, (b_rec.astype(np.float32) if b_rec is not None else None)


def run_core(tf, core: Core, x):
    """The unrolled layer on ``x`` (batch, time, features): (the per-step outputs in processing order,
    the final states)."""
    steps, feats = int(x.shape[1]), int(x.shape[2])
    w_in, b_in, w_rec, b_rec = _gate_weights(core)
    act, rec = _act(tf, core.activation), _act(tf, core.recurrent_activation)
    u = core.units
    # One projection for every timestep (FULLY_CONNECTED over the rows), then one row a step.
    proj = tf.matmul(tf.reshape(x, (-1, feats)), tf.constant(w_in)) + tf.constant(b_in)
    rows = tf.unstack(tf.reshape(proj, (-1, steps, w_in.shape[1])), axis=1)
    # Made once: every step's FULLY_CONNECTED reads the same constant tensors.
    r_all = tf.constant(w_rec)
    r_bias = tf.constant(b_rec) if b_rec is not None else None
    r_h = tf.constant(core.recurrent[:, 2 * u:]) if core.kind == "GRU" and not core.reset_after else None
    h = c = None
    outs = []
    for t in (range(steps - 1, -1, -1) if core.go_backwards else range(steps)):
        xt = rows[t]
        if core.kind == "SimpleRNN":
            h = act(xt if h is None else xt + tf.matmul(h, r_all))
        elif core.kind == "LSTM":
            if h is None:  # zero state: the forget gate has nothing to forget
                i, g, o = tf.split(xt[:, :3 * u], 3, axis=-1)
                c = rec(i) * act(g)
            else:
                i, g, o, f = tf.split(xt + tf.matmul(h, r_all), 4, axis=-1)
                c = rec(f) * c + rec(i) * act(g)
            h = rec(o) * act(c)
        else:
            if h is None:  # zero state: z * h vanishes; r only meets the h gate's recurrent bias
                # (a slice of the gates it needs: the converter leaves a SPLIT with unused outputs in float)
                if core.reset_after and b_rec is not None and np.any(b_rec):
                    xr, xh, xn = tf.split(xt[:, u:], 3, axis=-1)
                    xh = xh + rec(xr) * tf.constant(b_rec[2 * u:3 * u])
                else:
                    xh, xn = tf.split(xt[:, 2 * u:], 2, axis=-1)
                h = rec(xn) * act(xh)
            else:
                xz, xr, xh, xn = tf.split(xt, 4, axis=-1)
                hp = tf.matmul(h, r_all)
                if core.reset_after:
                    if r_bias is not None:
                        hp = hp + r_bias
                    hz, hr, hh, hn = tf.split(hp, 4, axis=-1)
                else:
                    hz, hr, hn = tf.split(hp, 3, axis=-1)
                z, r, n = rec(xz + hz), rec(xr + hr), rec(xn + hn)
                cand = act(xh + r * hh) if core.reset_after else act(xh + tf.matmul(r * h, r_h))
                h = z * h + n * cand
        outs.append(h)
    states = (h, c) if core.kind == "LSTM" else (h,)
    return outs, states


def fused(core: Core, p: Plan) -> bool:
    """Whether an LSTM takes TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state): Keras's
    standard activations, and no final cell state asked for (the fused op keeps it to itself)."""
    return core.kind == "LSTM" and (core.activation, core.recurrent_activation) == ("tanh", "sigmoid") \
        and not p.return_state


def _reverse_time(tf, x):
    """``x`` (batch, time, ...) with its timesteps in reverse order: UNPACK and PACK (no REVERSE_V2 on tinyq)."""
    return tf.stack(tf.unstack(x, axis=1)[::-1], axis=1)


def run_fused(tf, core: Core, x):
    """The LSTM as TFLite's converter fuses it: the output sequence (batch, time, units), in processing order.

    The converter replaces a function whose ``api_implements`` attribute starts with ``lstm_`` (tf-keras's
    contract for its LSTM layer) by one UNIDIRECTIONAL_SEQUENCE_LSTM built from the function's arguments:
    input, initial hidden and cell state, kernel, recurrent kernel, bias (Keras's layouts, gates i, f, c, o),
    returning (last output, sequence, hidden state, cell state, a float). The body, which float TensorFlow runs,
    is the layer's own computation.
    """
    import uuid

    steps, u = int(x.shape[1]), core.units

    def lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        h, c, outs = init_h, init_c, []
        for t in range(steps):
            z = tf.matmul(inputs[:, t], kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outs.append(h)
        return h, tf.stack(outs, axis=1), h, c, tf.constant(1.0)

    fn = tf.function(lstm, autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4()}", "time_major": False, "go_backwards": False})
    if core.go_backwards:
        x = _reverse_time(tf, x)
    zeros = tf.zeros((tf.shape(x)[0], u))
    bias = core.bias if core.bias is not None else np.zeros(4 * u, np.float32)
    _, seq, _, _, _ = fn(x, zeros, zeros, tf.constant(core.kernel), tf.constant(core.recurrent), tf.constant(bias))
    return seq


def run_plan(tf, p: Plan, x):
    """What the Keras layer returns, computed by the rebuilt graph."""
    results = []
    for k, core in enumerate(p.cores):
        # A Bidirectional puts its backward sequence back in input order; a lone go_backwards layer
        # returns it in processing order, as Keras does.
        back = p.cls == "Bidirectional" and k == 1
        if fused(core, p):
            seq = run_fused(tf, core, x)
            y = (_reverse_time(tf, seq) if back else seq) if p.return_sequences else seq[:, -1]
            results.append((y, ()))
            continue
        outs, states = run_core(tf, core, x)
        y = tf.stack(outs[::-1] if back else outs, axis=1) if p.return_sequences else outs[-1]
        results.append((y, states))
    if len(results) == 1:
        y, states = results[0]
        return [y, *states] if p.return_state else y
    (yf, sf), (yb, sb) = results
    if p.merge_mode == "concat":
        y = tf.concat([yf, yb], axis=-1)
    elif p.merge_mode == "sum":
        y = yf + yb
    elif p.merge_mode == "mul":
        y = yf * yb
    elif p.merge_mode == "ave":
        y = (yf + yb) / 2
    else:
        y = [yf, yb]
    ys = y if isinstance(y, list) else [y]
    return [*ys, *sf, *sb] if p.return_state else (y if not isinstance(y, list) else ys)


_CLASSES: dict = {}


def _layer_class(kmod):
    """The rebuilt layer's class for one Keras (Keras 3 or tf-keras): a layer without weights of its
    own (the original's are constants of its graph)."""
    if kmod.__name__ in _CLASSES:
        return _CLASSES[kmod.__name__]
    from tinyq.model.tfenv import tf as _tf

    class RebuiltLayer(kmod.layers.Layer):
        """A recurrent layer rebuilt for the int8 converter: fused LSTM or unrolled (tinyq.model.recurrent)."""

        def __init__(self, rplan: Plan, **kwargs):
            super().__init__(name=rplan.name + "_rebuilt", **kwargs)
            self._rplan = rplan
            self.in_shape = None

        def build(self, input_shape):
            self.in_shape = tuple(input_shape)
            super().build(input_shape)

        @property
        def steps(self):
            return self.in_shape[1] if self.in_shape else None

        def call(self, x, mask=None, training=None, initial_state=None):
            # The original layer's calls in the model's graph pass these; masks are refused before the
            # rebuild (_check_masking), dropout is off at inference.
            if initial_state is not None:
                raise UnsupportedModelError(f"{self._rplan.describe()}: its initial state is given by another "
                                            "tensor; tinyq starts recurrent layers from a zero state",
                                            hint="leave out initial_state")
            if x.shape[1] is None:
                raise UnsupportedModelError(f"{self._rplan.describe()}: its input has no fixed number of timesteps",
                                            hint="give the model's Input a fixed shape (time, features)")
            return run_plan(_tf(), self._rplan, x)

    _CLASSES[kmod.__name__] = RebuiltLayer
    return RebuiltLayer


# ---------------------------------------------------------------------------------------------
# The model rebuild.


def _all_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def has_recurrent(model) -> bool:
    """Whether a Keras model holds a layer the rebuild replaces."""
    return any(is_recurrent(l) for l in _all_layers(model))


def _check_masking(model) -> None:
    for layer in _all_layers(model):
        cls = type(layer).__name__
        if cls == "Masking" or (cls == "Embedding" and getattr(layer, "mask_zero", False)):
            raise _refuse(layer, "it masks timesteps for the recurrent layers",
                          "remove the mask (Masking layer, Embedding(mask_zero=True)): tinyq runs every timestep")


@dataclass(frozen=True, eq=False)
class Rebuilt:
    """A model whose recurrent layers are unrolled; ``layers`` pairs each original with its rebuild."""

    model: object
    layers: tuple[tuple[object, object], ...]

    def describe(self) -> str:
        return ", ".join(new._rplan.describe(new.steps) for _, new in self.layers)


def rebuild(model, kmod, check: bool = True) -> Rebuilt:
    """``model`` with every recurrent layer replaced by its rebuilt twin (fused LSTM or unrolled, same weights),
    other layers shared. With ``check``, each twin is compared with its original on random inputs (float):
    QuantizationError when they differ by more than :data:`TOLERANCE`."""
    _check_masking(model)
    pairs: list[tuple[object, object]] = []
    cls = _layer_class(kmod)

    def swap(layer):
        if is_recurrent(layer):
            new = cls(plan(layer))
            pairs.append((layer, new))
            return new
        return layer

    kwargs = {"recursive": True} if "recursive" in _clone_params(kmod) else {}
    try:
        rebuilt = kmod.models.clone_model(model, clone_function=swap, **kwargs)
    except UnsupportedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - Keras raises several types for a model it cannot clone
        from tinyq.errors import last_line

        names = ", ".join(f"{type(l).__name__} '{l.name}'" for l in _all_layers(model) if is_recurrent(l))
        raise UnsupportedModelError(f"tinyq rebuilds recurrent layers ({names}) by cloning the model, and Keras "
                                    f"cannot clone this one: {last_line(e) or type(e).__name__}",
                                    hint="build the model with the functional API or Sequential "
                                         "(a subclassed model cannot be cloned)") from e
    if not pairs:
        raise UnsupportedModelError("the model's recurrent layers sit where Keras's clone_model does not reach "
                                    "(inside a wrapper layer)", hint="use them directly, or in a Bidirectional")
    out = Rebuilt(rebuilt, tuple(pairs))
    if check:
        check_layers(out)
    return out


def _clone_params(kmod) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(kmod.models.clone_model).parameters)


def layer_differences(rebuilt: Rebuilt, samples: int = 2, seed: int = 0) -> list[tuple[str, float]]:
    """For each rebuilt layer, the largest difference of its outputs from the original layer's on random
    inputs of its input shape (relative to the outputs' magnitude where that exceeds 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for old, new in rebuilt.layers:
        shape = tuple(int(d) for d in new.in_shape[1:])
        x = rng.normal(0.0, 1.5, size=(samples, *shape)).astype(np.float32)
        a, b = old(x), new(x)
        a = a if isinstance(a, (list, tuple)) else [a]
        b = b if isinstance(b, (list, tuple)) else [b]
        if len(a) != len(b):
            out.append((new._rplan.describe(), float("inf")))
            continue
        worst = 0.0
        for u, v in zip(a, b):
            u, v = np.asarray(u), np.asarray(v)
            if u.shape != v.shape:
                worst = float("inf")
                break
            worst = max(worst, float(np.max(np.abs(u - v))) / max(1.0, float(np.max(np.abs(u)))))
        out.append((new._rplan.describe(new.steps), worst))
    return out


def check_layers(rebuilt: Rebuilt) -> None:
    """QuantizationError if a rebuilt layer is not the layer it replaces (in float)."""
    for name, diff in layer_differences(rebuilt):
        if not diff <= TOLERANCE:
            raise QuantizationError(f"tinyq's unrolled rebuild of {name} differs from the layer by {diff:.3g} "
                                    f"(more than {TOLERANCE:g}); it is not converted",
                                    hint="this is a tinyq bug: please report it with the model")
