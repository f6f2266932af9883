"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with an int16 cell state: TFLM's EvalLstm<int8_t, int8_t, int16_t, int32_t>.

The fused LSTM of users' own int8 .tflite files (a tf-keras LSTM converted through a concrete function;
Keras 3 models never reach this op: tinyq.model.recurrent unrolls them). Every multiplier is computed here as
TFLM's Prepare does (lstm_eval_common.cc: PrepareGateParametersInteger, CreateInterGateMulParams,
CreateLstmCellStateInfo); the C (firmware/kernels/tq_lstm.c) follows lstm_eval.cc's step: each gate an
int8 -> int16 FULLY_CONNECTED of the input and one of the hidden state (gate inputs in Q3.12), their
saturating sum through the int16 sigmoid / tanh of reference_integer_ops (a 256-entry sigmoid table,
interpolated), the cell state updated in int16 and the hidden state requantized to int8.

State: TFLM keeps the hidden and cell state in variable tensors across invocations unless the application
resets them; tinyq starts every inference from the reset state (hidden state at its zero point, cell
state 0), as a stateless Keras LSTM means, and its host reference resets TFLM before each run to match.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import per_tensor_fc_multiplier, quantize_multiplier
from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator

PARAMS = struct(Struct("tq_lstm_params_t", (
    F("uint16_t", "steps, in_dim, units"),
    F("uint8_t", "cell_tanh", "the cell gate's activation: 1 tanh, 0 sigmoid"),
    F("int32_t", "in_zp, h_zp", "zero points of the input and of the hidden state (= output)"),
    F("const int8_t", "*w_in", "input weights, gates i, f, c, o, each units x in_dim in 4-row blocks (row_blocks)"),
    F("const int8_t", "*w_rec", "recurrent weights, gates i, f, c, o, each units x units in 4-row blocks"),
    F("const int32_t", "*bias", "gates i, f, c, o, each units"),
    F("int32_t", "in_mult[4], in_shift[4]", "input FC of each gate -> Q3.12"),
    F("int32_t", "rec_mult[4], rec_shift[4]", "recurrent FC of each gate -> Q3.12"),
    F("int32_t", "fc_mult, fc_shift", "forget gate x cell state -> cell state"),
    F("int32_t", "ig_mult, ig_shift", "input gate x cell gate -> cell state"),
    F("int32_t", "out_mult, out_shift", "tanh(cell) x output gate -> hidden state (int8)"),
    F("int32_t", "cell_tanh_mult, cell_tanh_shift", "tanh of the cell state: (c * mult + round) >> shift"),
    F("int16_t", "cell_clip", "0: no clipping"),
    F("const uint16_t", "*sigmoid", "sigmoid(i / 24) in 0.16, 256 entries (the int16 sigmoid's and tanh's table)"),
    F("void", "*scratch", "cell state and 4 gate buffers (int16; the hidden state is the previous step's output)"),
), doc="UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state): TFLM's integer LSTM step, every step from the reset state."))

KERNEL = kernel(Kernel("tq_lstm_s8", "lstm", PARAMS.name, "const int8_t *in, int8_t *out",
                       opcodes=("UNIDIRECTIONAL_SEQUENCE_LSTM",),
                       doc="UNIDIRECTIONAL_SEQUENCE_LSTM, int8 with int16 cell state: the whole output sequence."))

#: TFLite's operand positions (lstm_shared.h).
_INPUT, _W_IN, _W_REC, _PEEPHOLE, _BIAS, _PROJECTION, _H, _C, _NORM = (
    0, (1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11), (12, 13, 14, 15), (16, 17), 18, 19, (20, 21, 22, 23))
#: The Q3.12 gate inputs and Q0.15 gate outputs of TFLM's integer LSTM (lstm_eval_common.cc).
_GATE_IN_SCALE = float(np.float32(0.000244140625))
_GATE_OUT_SCALE = float(np.float32(0.000030517578125))


@functools.lru_cache(maxsize=1)
def sigmoid_table() -> tuple[int, ...]:
    """The 256-entry table reference_integer_ops' int16 logistic and tanh interpolate: sigmoid(i / 24) in
    unsigned 0.16 fixed point, as the reference (the tflite_micro runtime tinyq checks every build against)
    holds it.

    Its entries are not the rounded formula (43 of them lie one above it: tuned for the interpolation), so
    they are read from the reference's own binary, where the compiler stored the array, and checked against
    the formula (within 2) before use.
    """
    import importlib.util
    import struct as _struct
    from pathlib import Path

    spec = importlib.util.find_spec("tflite_micro")
    found = None
    if spec is not None and spec.submodule_search_locations:
        for lib in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("_runtime*.so")):
            blob = lib.read_bytes()
            at = blob.find(_struct.pack("<4H", 32768, 33451, 34133, 34813))
            if at >= 0:
                found = _struct.unpack_from("<256H", blob, at)
                break
    near = [65536.0 / (1.0 + math.exp(-i / 24.0)) for i in range(256)]
    if (found is None or found[-1] != 65535 or any(b < a for a, b in zip(found, found[1:]))
            or any(abs(v - min(65535.0, f)) > 2 for v, f in zip(found, near))):
        raise UnsupportedModelError("UNIDIRECTIONAL_SEQUENCE_LSTM needs TFLM's int16 sigmoid table, and the installed "
                                    "tflite_micro runtime does not hold one tinyq can read",
                                    hint="reinstall tinyq's pinned tflite_micro (pip install -r requirements.lock)")
    return found


def row_blocks(w: np.ndarray) -> np.ndarray:
    """A gate's weights (units x cols) as the kernel reads them: each block of four rows as its columns four at
    a time (the four rows' words one after the other), then the last cols % 4 columns a word each (the four
    rows' bytes); rows past the last whole block as they are. A block takes 4 x cols bytes, as four rows do, so
    it starts where its first row did; the kernel walks it with one pointer."""
    n, d = w.shape
    d4, n4 = d - d % 4, n - n % 4
    parts = []
    for j in range(0, n4, 4):
        blk = w[j:j + 4]
        parts += [blk[:, k:k + 4].reshape(-1) for k in range(0, d4, 4)]
        parts += [blk[:, k] for k in range(d4, d)]
    parts.append(w[n4:].reshape(-1))
    return np.concatenate(parts).astype(np.int8)


def scratch_bytes(units: int) -> int:
    """The cell state and four gate buffers (int16). The hidden state needs none: it is the previous step's
    output, which the kernel reads where it wrote it."""
    return 5 * 2 * units


def _refuse(op: Operator, what: str, hint: str = "re-convert the LSTM to full int8 (int8 weights and "
                                                  "activations, int16 cell state)") -> UnsupportedModelError:
    return UnsupportedModelError(f"op {op.index} UNIDIRECTIONAL_SEQUENCE_LSTM: {what}", hint=hint)


def _mul(s1: float, s2: float, out: float) -> tuple[int, int]:
    """CreateInterGateMulParams: double(s1) * double(s2) / double(out), quantized."""
    return quantize_multiplier(float(s1) * float(s2) / float(out))


# TFLite's 24 operands: input, 8 gate weights (input and recurrent), 3 peepholes (refused), 4 gate biases (int32),
# the projection's weight and bias (refused), the hidden and cell state variables (int16 cell), 4 layer norms.
@lowering("UNIDIRECTIONAL_SEQUENCE_LSTM", operands=Operands(
    inputs=(15, 24), constant=(1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15),
    typed=((12, "INT32"), (13, "INT32"), (14, "INT32"), (15, "INT32"), (19, "INT16"))))
def lower_lstm(graph: Graph, op: Operator) -> KernelCall:
    t = graph.tensors
    ins = tuple(op.inputs) + (-1,) * (24 - len(op.inputs))
    for pos, what in ((_PEEPHOLE, "peephole weights"), (_PROJECTION, "a projection"), (_NORM, "layer normalization")):
        if any(ins[p] >= 0 for p in pos):
            raise _refuse(op, f"it has {what}, which TFLM's LSTM kernel does not take either",
                          "convert a plain LSTM (no peephole, projection or layer norm)")
    if any(ins[p] < 0 for p in (*_W_IN, *_W_REC, *_BIAS)):
        raise _refuse(op, "a gate's weights or bias are missing (CIFG, coupled input and forget gates)",
                      "convert an LSTM with all four gates")
    x, y, h, c = t[ins[_INPUT]], t[op.outputs[0]], t[ins[_H]], t[ins[_C]]
    w_in, w_rec, bias = [t[ins[p]] for p in _W_IN], [t[ins[p]] for p in _W_REC], [t[ins[p]] for p in _BIAS]
    if (x.dtype, h.dtype, c.dtype, y.dtype) != ("INT8", "INT8", "INT16", "INT8"):
        raise _refuse(op, f"input {x.dtype}, hidden state {h.dtype}, cell state {c.dtype}, output {y.dtype}; tinyq "
                          "runs int8 activations with an int16 cell state")
    if any(w.dtype != "INT8" or w.data is None for w in w_in + w_rec) or any(b.dtype != "INT32" or b.data is None
                                                                            for b in bias):
        raise _refuse(op, "its weights are not constant int8 with int32 biases")
    if any(len(w.quant.scale) != 1 or w.quant.zero_point[0] != 0 for w in w_in + w_rec):
        raise _refuse(op, "per-channel or asymmetric weights (TFLM's LSTM takes one symmetric scale a matrix)")
    opts = op.options
    if opts.get("time_major") and x.shape[1] != 1 or not opts.get("time_major") and x.shape[0] != 1:
        raise _refuse(op, f"batch of more than 1 (input {list(x.shape)})", "convert with a batch of 1")
    act = opts.get("fused_activation_function", "TANH")
    if act not in ("TANH", "SIGMOID"):
        raise _refuse(op, f"cell activation {act} (TFLM's integer LSTM takes TANH or SIGMOID)")
    steps = x.shape[0] if opts.get("time_major") else x.shape[1]
    in_dim, units = x.shape[2], w_rec[0].shape[0]
    xs, hs, cs = x.quant.scale[0], h.quant.scale[0], c.quant.scale[0]
    in_m = [per_tensor_fc_multiplier(xs, w.quant.scale[0], _GATE_IN_SCALE) for w in w_in]
    rec_m = [per_tensor_fc_multiplier(hs, w.quant.scale[0], _GATE_IN_SCALE) for w in w_rec]
    # CreateLstmCellStateInfo: the power of two of the cell scale (CheckedLog2, in float), the clip in cell units.
    f32 = np.float32
    power = int(round(float(f32(np.log(f32(cs))) * (f32(1.0) / f32(np.log(f32(2.0)))))))
    left = 15 + power - 3
    cell_tanh = (3, -left) if left < 0 else (3 << left, 0)
    clip = float(f32(opts.get("cell_clip", 0.0)))
    q_clip = int(min(max(clip / float(cs), -32768.0), 32767.0)) if clip > 0 else 0
    fc, ig, out = _mul(_GATE_OUT_SCALE, cs, cs), _mul(_GATE_OUT_SCALE, _GATE_OUT_SCALE, cs), \
        _mul(_GATE_OUT_SCALE, _GATE_OUT_SCALE, hs)
    w_in_all = np.concatenate([row_blocks(w.data.reshape(units, in_dim)) for w in w_in])
    w_rec_all = np.concatenate([row_blocks(w.data.reshape(units, units)) for w in w_rec])
    b_all = np.concatenate([b.data.reshape(-1) for b in bias]).astype(np.int32)
    arr = lambda v: "{" + ", ".join(str(int(a)) for a in v) + "}"  # noqa: E731
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=(("steps", steps), ("in_dim", in_dim), ("units", units), ("cell_tanh", int(act == "TANH")),
                ("in_zp", x.quant.zero_point[0]), ("h_zp", h.quant.zero_point[0]),
                ("w_in", "@w_in"), ("w_rec", "@w_rec"), ("bias", "@bias"),
                ("in_mult", arr(m for m, _ in in_m)), ("in_shift", arr(s for _, s in in_m)),
                ("rec_mult", arr(m for m, _ in rec_m)), ("rec_shift", arr(s for _, s in rec_m)),
                ("fc_mult", fc[0]), ("fc_shift", fc[1]), ("ig_mult", ig[0]), ("ig_shift", ig[1]),
                ("out_mult", out[0]), ("out_shift", out[1]),
                ("cell_tanh_mult", cell_tanh[0]), ("cell_tanh_shift", cell_tanh[1]), ("cell_clip", q_clip),
                ("sigmoid", "@sigmoid"), ("scratch", "$scratch")),
        args=(x.index, y.index),
        arrays=(ConstArray("w_in", "int8_t", tuple(int(v) for v in w_in_all)),
                ConstArray("w_rec", "int8_t", tuple(int(v) for v in w_rec_all)),
                ConstArray("bias", "int32_t", tuple(int(v) for v in b_all)),
                ConstArray("sigmoid", "uint16_t", sigmoid_table())),
        macs=steps * 4 * units * (in_dim + units),
        scratch_bytes=scratch_bytes(units),
        consumes=tuple(ins[p] for p in (*_W_IN, *_W_REC, *_BIAS)),
    )
