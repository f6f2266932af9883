"""SVDF, int8 with an int16 activation state: TFLM's EvalIntegerSvdfReference<int16_t> (svdf_common.cc).

The keyword-spotting layer (a rank-limited, memory-limited 1-D conv over time): each inference the op shifts its
state (num_filters rows of memory_size int16, a variable tensor) one step left, writes the int8 feature matmul of
the input (num_filters x input_size, requantized to the state's int16 by effective_scale_1) in each row's last
column, and sums each row against its int16 time weights; every unit adds its rank rows and its bias, and the sum
is requantized to int8 by effective_scale_2. Both multipliers are computed here as TFLM's PrepareSvdf does: the
scale ratios in float32, then TFLite's QuantizeMultiplier.

State: unlike the fused LSTM's, an SVDF's state is the point of the op: it carries over from one inference to the
next, as in TFLM (a streaming model runs once a frame). It lives in the planned arena for the whole run (the
planner gives it a region nothing else uses: KernelCall.persistent), zero at start-up as TFLM's
ResetVariableTensors leaves an int16 variable, and the generated tq_model_reset() zeroes it again. The host
reference (tinyq.model.reference.TflmReference) starts from TFLM's reset state and does not reset between runs
for such a model, so a sequence of inputs is compared step by step.

What TFLM does and tinyq copies: the int8 kernel applies no fused activation (a RELU in the options changes
nothing: the output is clamped to int8 only), and it takes no per-channel weights (one scale a tensor). TFLM's
Prepare reads the bias's scale without checking it is there, so an SVDF without a bias crashes TFLM; the same
computation with a zero bias is what TFLM's Eval does without one, and the reference runs that
(tinyq.model.reference.with_svdf_biases).
"""

from __future__ import annotations

import numpy as np

from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering, op_macs
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.quant import quantize_multiplier
from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator

PARAMS = struct(Struct("tq_svdf_params_t", (
    F("uint16_t", "batch, in_dim, filters, units, rank, memory", "filters = units x rank"),
    F("int32_t", "state_zp, out_zp"),
    F("int32_t", "mult1, shift1", "feature matmul -> state: input scale x weights_feature scale / state scale"),
    F("int32_t", "mult2, shift2", "time reduction -> output: state scale x weights_time scale / output scale"),
    F("const int8_t", "*w_feat", "weights_feature, filters x in_dim"),
    F("const int16_t", "*w_time", "weights_time, filters x memory"),
    F("const int32_t", "*feat_bias", "each filter: -(input zero point) x the sum of its feature weights"),
    F("const int32_t", "*bias", "each unit: its bias (0 without one) - state_zp x its filters' time weight sums"),
), doc="SVDF (int8, int16 state): TFLM's EvalIntegerSvdfReference; the state persists from one inference to the next."))

KERNEL = kernel(Kernel("tq_svdf_s8", "svdf", PARAMS.name, "const int8_t *in, void *state, int8_t *out",
                       opcodes=("SVDF",),
                       doc="SVDF, int8 with an int16 activation state (a variable tensor kept across inferences)."))

#: TFLite's operand positions (svdf.h): input, weights_feature, weights_time, bias (optional), activation state.
_INPUT, _W_FEAT, _W_TIME, _BIAS, _STATE = range(5)


def _refuse(op: Operator, what: str, hint: str = "convert the SVDF to TFLM's int8 form (int8 input, output and "
                                                 "weights_feature, int16 weights_time and state, int32 bias)"):
    return UnsupportedModelError(f"op {op.index} SVDF: {what}", hint=hint)


def effective_scales(x_scale: float, wf_scale: float, state_scale: float, wt_scale: float,
                     y_scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """PrepareSvdf: effective_scale_1 = double(float(x * wf) / state), effective_scale_2 = double(float(state * wt) /
    y), each product and quotient in float32 as TfLiteTensor's float scales compute them."""
    f32 = np.float32
    s1 = f32(f32(x_scale) * f32(wf_scale)) / f32(state_scale)
    s2 = f32(f32(state_scale) * f32(wt_scale)) / f32(y_scale)
    return quantize_multiplier(float(s1)), quantize_multiplier(float(s2))


def svdf_form(graph: Graph, op: Operator) -> tuple[str, str] | None:
    """The gate's one line on an SVDF whose types are not TFLM's int8 form with an int16 state (None if they may be)."""
    t = graph.tensors
    dtype = [t[i].dtype if i >= 0 else None for i in op.inputs] + [None] * (5 - len(op.inputs))
    fix = "quantize the model to full int8: int8 input, output and feature weights, int16 time weights and state"
    if dtype[_INPUT] == "FLOAT32":
        kind = "hybrid SVDF (int8 weights, float activations)" if dtype[_W_FEAT] == "INT8" else "float SVDF"
        return f"a {kind}: tinyq runs TFLM's int8 SVDF (int16 time weights and state)", fix
    if dtype[_INPUT] == "INT8" and (dtype[_W_TIME], dtype[_STATE]) == ("INT8", "INT8"):
        return ("an SVDF with int8 time weights and state (TFLM's 8-bit-state form): tinyq runs the one with "
                "int16 time weights and state", fix)
    return None


# TFLite's 5 operands: the int8 input, int8 weights_feature, int16 weights_time, an optional int32 bias and the
# int16 activation state (a variable tensor: computed at run time, not a constant).
@lowering("SVDF", operands=Operands(inputs=(4, 5), constant=(1, 2, 3), max_rank=2, any_batch=True,
                                    typed=((2, "INT16"), (3, "INT32"), (4, "INT16")), form=svdf_form))
def lower_svdf(graph: Graph, op: Operator) -> KernelCall:
    t = graph.tensors
    if len(op.inputs) != 5:
        raise _refuse(op, f"{len(op.inputs)} inputs (TFLM's SVDF takes 5, the bias given as -1 when there is none)")
    if any(o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM" for o in graph.operators):
        raise _refuse(op, "the model also has a fused LSTM, whose state tinyq resets every inference while an SVDF's "
                          "carries over: TFLM resets both or neither, so tinyq cannot check such a model",
                      "keep the SVDF and the LSTM in separate models")
    x, wf, wt, st, y = (t[op.inputs[_INPUT]], t[op.inputs[_W_FEAT]], t[op.inputs[_W_TIME]], t[op.inputs[_STATE]],
                        t[op.outputs[0]])
    b = t[op.inputs[_BIAS]] if op.inputs[_BIAS] >= 0 else None
    types = (x.dtype, wf.dtype, wt.dtype, st.dtype, y.dtype)
    if types != ("INT8", "INT8", "INT16", "INT16", "INT8") or b is not None and b.dtype != "INT32":
        raise _refuse(op, "input {}, weights_feature {}, weights_time {}, state {}, output {}: tinyq runs TFLM's int8 "
                          "SVDF with an int16 state and int16 time weights".format(*types))
    if not st.is_variable:
        raise _refuse(op, "its activation state (operand 4) is not a variable tensor", "re-convert the model")
    if any(w.data is None for w in (wf, wt) + ((b,) if b is not None else ())):
        raise _refuse(op, "its weights or bias are not stored in the model")
    if any(q is None or len(q.scale) != 1 for q in (x.quant, wf.quant, wt.quant, st.quant, y.quant)):
        raise _refuse(op, "per-channel or missing quantization (TFLM's SVDF takes one scale a tensor)")
    if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2 or len(st.shape) != 2 or len(y.shape) != 2:
        raise _refuse(op, "its tensors are not 2-D (batch x features), as TFLM's SVDF needs")
    rank = int(op.options.get("rank", 0))
    batch, in_dim = x.shape
    filters, memory = wf.shape[0], wt.shape[1]
    if rank < 1 or filters % rank:
        raise _refuse(op, f"rank {rank} does not divide its {filters} filters", "re-convert the model")
    units = filters // rank
    if (wf.shape[1] != in_dim or wt.shape[0] != filters or tuple(y.shape) != (batch, units)
            or tuple(st.shape) != (batch, memory * filters) or b is not None and tuple(b.shape) != (units,)):
        raise _refuse(op, f"its shapes do not agree (input {list(x.shape)}, weights_feature {list(wf.shape)}, "
                          f"weights_time {list(wt.shape)}, state {list(st.shape)}, output {list(y.shape)})",
                      "re-convert the model")
    xs, wfs, wts, ss, ys = (q.quant.scale[0] for q in (x, wf, wt, st, y))
    if b is not None and abs(float(b.quant.scale[0]) - float(np.float32(ss) * np.float32(wts))) >= 1e-5:
        raise _refuse(op, "its bias scale is not the state scale x the time weights' scale (TFLM refuses it too)",
                      "re-convert the model")
    (m1, s1), (m2, s2) = effective_scales(xs, wfs, ss, wts, ys)
    in_zp, st_zp = int(x.quant.zero_point[0]), int(st.quant.zero_point[0])
    w_feat = np.asarray(wf.data, np.int8).reshape(filters, in_dim)
    w_time = np.asarray(wt.data, np.int16).reshape(filters, memory)
    # sum w (x - zp) = sum w x - zp sum w, and likewise for the state: exact in int32, as TFLM's sums wrap the same.
    feat_bias = (-in_zp * w_feat.astype(np.int64).sum(axis=1)).astype(np.int64)
    bias = (np.asarray(b.data, np.int64).reshape(units) if b is not None else np.zeros(units, np.int64)) \
        - st_zp * w_time.astype(np.int64).sum(axis=1).reshape(units, rank).sum(axis=1)
    wrap = lambda v: tuple(int(a) for a in ((v + 2**31) % 2**32 - 2**31))  # noqa: E731  (int32, as the C adds them)
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=(("batch", batch), ("in_dim", in_dim), ("filters", filters), ("units", units), ("rank", rank),
                ("memory", memory), ("state_zp", st_zp), ("out_zp", int(y.quant.zero_point[0])),
                ("mult1", m1), ("shift1", s1), ("mult2", m2), ("shift2", s2),
                ("w_feat", "@w_feat"), ("w_time", "@w_time"), ("feat_bias", "@feat_bias"), ("bias", "@bias")),
        args=(x.index, st.index, y.index),
        arrays=(ConstArray("w_feat", "int8_t", tuple(int(v) for v in w_feat.reshape(-1))),
                ConstArray("w_time", "int16_t", tuple(int(v) for v in w_time.reshape(-1))),
                ConstArray("feat_bias", "int32_t", wrap(feat_bias)),
                ConstArray("bias", "int32_t", wrap(bias))),
        macs=op_macs(graph, op),
        consumes=tuple(i for i in op.inputs[1:4] if i >= 0),
        persistent=(st.index,),
    )
