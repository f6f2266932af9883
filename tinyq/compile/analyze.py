"""Analyze stage: what is in an int8 model, and whether tinyq's runtime can run all of it.

The compatibility gate runs before any code is generated and lists every op, dtype
and shape the deploy runtime cannot run, each with what to change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tinyq.errors import BudgetError, UnsupportedModelError
from tinyq.graph import Graph, Operator
from tinyq.compile.shapes import shape_problem

_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
#: Integer outputs some ops make (the others' tensors are int8): indices; RESHAPE moves any of these as bytes.
_INDEX_DTYPES = ("INT32", "INT64")


def _operands(opcode: str):
    """What the gate checks of ``opcode``'s tensors: stated with its lowering (tinyq.compile.ops.Operands)."""
    from tinyq.compile.ops import OPERANDS, Operands

    return OPERANDS.get(opcode, Operands())


@dataclass(frozen=True)
class Issue:
    """One thing the runtime cannot run."""

    op_index: int | None
    opcode: str | None
    tensor: str | None
    problem: str
    fix: str

    @property
    def what(self) -> str:
        """Where and what, without the fix."""
        where = f"op {self.op_index} {self.opcode}" if self.op_index is not None else "model"
        tensor = f" (tensor '{self.tensor}')" if self.tensor else ""
        return f"{where}{tensor}: {self.problem}"

    def __str__(self) -> str:
        return f"{self.what}; {self.fix}"


@dataclass(frozen=True)
class OpInfo:
    index: int
    opcode: str
    output_shape: tuple[int, ...]
    macs: int
    weight_bytes: int
    #: Fraction of the weights that are zero (None: the op has no weight tensor).
    weight_zeros: float | None = None
    #: Output channels whose weights are all zero, of how many (a filter pruning left in place).
    empty_filters: tuple[int, int] = (0, 0)


#: Where each weighted op keeps its output channels in the weight tensor (TFLite layouts).
_FILTER_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3, "TRANSPOSE_CONV": 0}


def weight_sparsity(graph: Graph, op: Operator) -> tuple[float | None, tuple[int, int]]:
    """Zeros in ``op``'s weight tensor: (fraction of zero weights, (all-zero filters, filters)).

    Weights are stored whatever their value: zeros cost flash and multiplications
    unless whole filters go (`tinyq build --prune` removes them).
    """
    axis = _FILTER_AXIS.get(op.opcode)
    if axis is None or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None, (0, 0)
    w = graph.tensors[op.inputs[1]]
    data = getattr(w, "data", None)
    if not w.is_constant or data is None or data.size == 0 or data.ndim <= axis:
        return None, (0, 0)
    zero = data == 0
    per_filter = np.moveaxis(zero, axis, 0).reshape(data.shape[axis], -1).all(axis=1)
    return float(zero.mean()), (int(per_filter.sum()), int(data.shape[axis]))


@dataclass(frozen=True, eq=False)
class Analysis:
    """The analyze stage's result."""

    graph: Graph
    issues: tuple[Issue, ...]
    ops: tuple[OpInfo, ...]

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(o.opcode for o in self.ops))

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.graph.tensors if t.is_constant)


def op_macs(graph: Graph, op: Operator) -> int:
    """Multiply-accumulates of one op (0 for data movement)."""
    t = graph.tensors
    out = t[op.outputs[0]]
    if op.opcode == "CONV_2D":
        w = t[op.inputs[1]]
        return out.size * w.shape[1] * w.shape[2] * w.shape[3]
    if op.opcode == "DEPTHWISE_CONV_2D":
        w = t[op.inputs[1]]
        return out.size * w.shape[1] * w.shape[2]
    if op.opcode == "FULLY_CONNECTED":
        return out.size * t[op.inputs[1]].shape[1]
    if op.opcode == "TRANSPOSE_CONV":  # TFLM's scatter: every input element times the whole kernel
        w = t[op.inputs[1]]
        return t[op.inputs[2]].size * w.shape[0] * w.shape[1] * w.shape[2]
    if op.opcode == "BATCH_MATMUL":  # each output element sums over the LHS rows' depth
        lhs = t[op.inputs[0]].shape
        return out.size * lhs[-2 if op.options.get("adj_x") else -1]
    if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # every step: four gates' input and recurrent FCs
        units, feats = t[op.inputs[4]].shape
        return out.size * 4 * (feats + units)
    if op.opcode == "SVDF":  # every batch: the feature matmul (filters x input size) and the time sums (filters x memory)
        filters, feats = t[op.inputs[1]].shape
        return t[op.inputs[0]].shape[0] * filters * (feats + t[op.inputs[2]].shape[1])
    return 0


def model_macs(graph: Graph) -> int:
    """The model's multiply-accumulates: the one figure `inspect`, `build`, build.json and the generated C all give."""
    return sum(_safe_macs(graph, op) for op in graph.operators)


def _safe_macs(graph: Graph, op: Operator) -> int:
    """op_macs for any model tinyq can read, 0 where an op's operands are not shaped as TFLite's builtins."""
    try:
        return op_macs(graph, op)
    except (IndexError, KeyError):
        return 0


def _safe_sparsity(graph: Graph, op: Operator) -> tuple[float | None, tuple[int, int]]:
    try:
        return weight_sparsity(graph, op)
    except (IndexError, KeyError, ValueError):
        return None, (0, 0)


def _model_level(graph: Graph) -> list[Issue]:
    issues = []
    if graph.num_subgraphs > 1:
        issues.append(Issue(None, None, None, f"{graph.num_subgraphs} subgraphs (control flow)",
                            "remove tf.cond / tf.while_loop from the model"))
    if not graph.inputs or not graph.outputs:
        issues.append(Issue(None, None, None, f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs",
                            "convert the model again: a model needs an input and an output"))
    float_weights = any(x.is_constant and x.dtype in ("FLOAT32", "FLOAT16") for x in graph.tensors)
    int8_weights = any(x.is_constant and x.dtype == "INT8" for x in graph.tensors)
    ends = float_ends(graph)
    for x in graph.input_tensors + graph.output_tensors:
        if x.dtype != "INT8" and x.index not in ends and not _index_output(graph, x.index):
            kind = ("a hybrid model (int8 weights, float activations)" if int8_weights and x.dtype == "FLOAT32"
                    else "a float16 model" if any(t.dtype == "FLOAT16" for t in graph.tensors)
                    else f"{x.dtype} model input/output")
            issues.append(Issue(None, None, x.name, f"{kind}: input/output '{x.name}' is {x.dtype}, not INT8",
                                "quantize with `tinyq quantize --mode int8` and a calibration set (full integer)"))
    if float_weights and not int8_weights:
        issues.append(Issue(None, None, None, "a float model (float weights)",
                            "quantize with `tinyq quantize --mode int8` and a calibration set"))
    return issues


def float_ends(graph: Graph) -> set[int]:
    """The float32 model inputs that only QUANTIZE ops read and the float32 model outputs a DEQUANTIZE writes:
    the float ends of an int8 model (TensorFlow's default without inference_input_type), which the device
    takes and gives as they are, converting them as TFLM's QUANTIZE and DEQUANTIZE do."""
    readers: dict[int, set[str]] = {}
    writer: dict[int, Operator] = {}
    for op in graph.operators:
        for i in op.inputs:
            readers.setdefault(i, set()).add(op.opcode)
        for o in op.outputs:
            writer[o] = op
    t = graph.tensors
    ins = {i for i in graph.inputs if t[i].dtype == "FLOAT32" and readers.get(i) == {"QUANTIZE"}}
    outs = {o for o in graph.outputs if t[o].dtype == "FLOAT32" and o in writer and writer[o].opcode == "DEQUANTIZE"
            and t[writer[o].inputs[0]].dtype == "INT8" and not t[writer[o].inputs[0]].is_constant}
    return ins | outs


def float_islands(graph: Graph) -> set[int]:
    """The float32 activations inside an int8 model that tinyq runs as they are: each written by a DEQUANTIZE of
    an int8 activation or by a float op (tinyq.compile.ops.kernels.float_ends.FLOAT_OPS) of one of them, and read
    only by float ops and QUANTIZE (back to int8)."""
    from tinyq.compile.ops.kernels.float_ends import FLOAT_OPS

    t = graph.tensors
    readers: dict[int, set[str]] = {}
    for op in graph.operators:
        for i in op.inputs:
            readers.setdefault(i, set()).add(op.opcode)
    out: set[int] = set()
    for op in graph.operators:  # in execution order: an island grows from its DEQUANTIZE
        if not op.inputs or len(op.outputs) != 1 or op.inputs[0] < 0:
            continue
        x, y = t[op.inputs[0]], t[op.outputs[0]]
        if y.dtype != "FLOAT32" or y.is_constant or y.index in graph.outputs:
            continue
        starts = op.opcode == "DEQUANTIZE" and x.dtype == "INT8" and not x.is_constant
        grows = op.opcode in FLOAT_OPS and x.index in out
        if (starts or grows) and readers.get(y.index) and readers[y.index] <= {"QUANTIZE", *FLOAT_OPS}:
            out.add(y.index)
    return out


def _index_output(graph: Graph, tensor: int) -> bool:
    """Whether ``tensor`` is a model output of indices (int32 / int64 from ARG_MAX or ARG_MIN, maybe reshaped):
    tinyq writes those as they are, and its runtime's output is then that many bytes of them."""
    if tensor not in graph.outputs or graph.tensors[tensor].dtype not in _INDEX_DTYPES:
        return False
    producer = next((op for op in graph.operators if tensor in op.outputs), None)
    return producer is not None and (producer.opcode == "RESHAPE" or _operands(producer.opcode).index_output)


def _wanted_dtype(graph: Graph, op: Operator, i: int) -> str:
    """The type tensor ``i`` of ``op`` must have: INT8, but a bias is INT32, ARG_MAX / ARG_MIN write int32 or
    int64 indices, and RESHAPE moves a tensor of indices as its bytes (its output has its input's type)."""
    t = graph.tensors
    spec = _operands(op.opcode)
    if spec.bias is not None and len(op.inputs) > spec.bias and i == op.inputs[spec.bias]:
        return "INT32"
    if spec.index_output and i in op.outputs and t[i].dtype in _INDEX_DTYPES:
        return t[i].dtype
    if op.opcode == "RESHAPE" and t[op.inputs[0]].dtype in _INDEX_DTYPES and t[op.outputs[0]].dtype == t[op.inputs[0]].dtype:
        return t[i].dtype
    from tinyq.compile.ops.kernels.float_ends import FLOAT_OPS

    if (op.opcode == "QUANTIZE" and i == op.inputs[0] or op.opcode == "DEQUANTIZE" and i == op.outputs[0]
            or op.opcode in FLOAT_OPS) and (i in float_ends(graph) or i in float_islands(graph)):
        return "FLOAT32"  # a float end of the model, or an op the converter left in float
    return "INT8"


def _op_level(graph: Graph, op: Operator, supported: frozenset[str]) -> list[Issue]:
    t = graph.tensors
    issues = []

    def bad(tensor, problem, fix):
        issues.append(Issue(op.index, op.opcode, tensor.name if tensor is not None else None, problem, fix))

    if op.opcode not in supported:
        bad(None, f"op {describe_op(op.opcode)} is not supported by tinyq's int8 runtime",
            f"replace the layer (supported: {', '.join(sorted(supported))})")
        return issues
    spec = _operands(op.opcode)
    lo, hi = spec.inputs
    present = [i for i in op.inputs if i >= 0]
    out_lo, out_hi = spec.outputs
    if not lo <= len(op.inputs) <= hi or len(present) < lo or not out_lo <= len(op.outputs) <= out_hi:
        bad(None, f"{len(op.inputs)} inputs and {len(op.outputs)} outputs, where TFLite's {op.opcode} has "
            f"{lo}{f'-{hi}' if hi != lo else ''} and {out_lo}{'+' if out_hi != out_lo else ''}",
            "re-convert the model with TensorFlow's converter")
        return issues
    form = spec.form(graph, op) if spec.form is not None else None
    if form is not None:
        bad(None, *form)
        return issues
    for i in list(op.inputs) + list(op.outputs):
        if i < 0:
            continue
        x = t[i]
        if any(i == op.inputs[p] for p in spec.integer if p < len(op.inputs)):
            continue  # the shape / paddings / axes / size / indices operand (constant int32)
        want = _wanted_dtype(graph, op, i)
        want = next((w for p, w in spec.typed if p < len(op.inputs) and op.inputs[p] == i), want)
        if x.dtype != want:
            hybrid = x.dtype == "FLOAT32" and any(t[j].dtype == "INT8" for j in op.inputs if j >= 0 and t[j].is_constant)
            problem = ("hybrid op: int8 weights with float activations" if hybrid else
                       f"{x.dtype} tensor where {want} is needed")
            bad(x, problem, "quantize the whole model to int8 (full integer) with a calibration set")
        elif not x.is_constant and spec.max_rank is not None and len(x.shape) > (rank := spec.max_rank):
            bad(x, f"rank {len(x.shape)} tensor", "reshape to at most 4 dimensions (NHWC)" if rank == 4 else
                f"reshape to at most {rank} dimensions")
        elif not x.is_constant and len(x.shape) == 4 and x.shape[0] != 1 and not spec.any_batch:
            bad(x, f"batch {x.shape[0]}", "convert with a batch of 1 (tinyq quantize does)")
        elif x.quant is None and x.dtype == "INT8":
            bad(x, "int8 tensor without quantization parameters", "re-quantize the model")
    for pos in spec.constant:
        if pos < len(op.inputs) and op.inputs[pos] >= 0 and not t[op.inputs[pos]].is_constant:
            bad(t[op.inputs[pos]], f"its operand {pos} is computed at run time; tinyq needs it stored in the model",
                "convert the model with TensorFlow's converter, which stores weights, biases and paddings as constants")
    if issues:
        return issues
    problem = shape_problem(graph, op)
    if problem:  # the planner and kernels size buffers by the declared shapes: they must be what the op computes
        bad(t[op.outputs[0]], problem, "the .tflite was edited or is damaged: convert the model again")
        return issues
    act = op.options.get("fused_activation_function", "NONE")
    if act not in _ACTIVATIONS and op.opcode != "UNIDIRECTIONAL_SEQUENCE_LSTM":  # the LSTM's is its cell's (lowering)
        bad(None, f"fused activation {act}", "use RELU/RELU6 or a separate activation layer")
    if spec.bias is not None:
        w = t[op.inputs[1]]
        if any(z != 0 for z in w.quant.zero_point):  # (TFLM's TRANSPOSE_CONV multiplies the raw weights: it ignores it)
            bad(w, "asymmetric int8 weights (zero point != 0)", "quantize weights symmetrically (TFLite's default)")
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(t[op.inputs[0]].shape) != 4:
            bad(t[op.inputs[0]], "input is not NHWC", "feed a 4-D tensor")  # (TRANSPOSE_CONV's: the shape rule)
    if spec.broadcast:
        a, b, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
        most = spec.max_rank
        if len(y.shape) > most or any(len(s.shape) > len(y.shape) for s in (a, b)):
            bad(b, f"{op.opcode} of shapes {a.shape} and {b.shape}", f"use at most {most}-D tensors")
    if op.opcode in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "ARG_MAX", "ARG_MIN", "L2_NORMALIZATION") \
            and len(t[op.inputs[0]].shape) > 4:
        bad(t[op.inputs[0]], f"{op.opcode} of a tensor of rank > 4", "reduce over fixed axes of NHWC")
    if op.opcode == "CONCATENATION" and act != "NONE":
        bad(None, f"fused activation {act} on CONCATENATION", "apply the activation as a separate layer")
    fixed_out = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}
    if op.opcode in fixed_out:
        y, (scale, zp) = t[op.outputs[0]], fixed_out[op.opcode]
        if y.quant.zero_point[0] != zp or abs(y.quant.scale[0] - scale) > 1e-9:
            bad(y, f"int8 {op.opcode} output must have scale {scale:g} and zero point {zp}",
                "re-convert with TFLite's int8 kernels")
    return issues


#: What each kind of .tflite is, for the message that refuses it.
TFLITE_KINDS = {
    "int8": "a full-int8 model (int8 weights, activations, input and output)",
    "int8-float-io": "an int8 model with float input/output (QUANTIZE/DEQUANTIZE at its ends)",
    "int16": "a model with int16 input/output or activations (16-bit audio front ends, int16x8 quantization)",
    "float": "a float model (float32 weights and activations)",
    "float16": "a float16 model (float16 weights)",
    "hybrid": "a dynamic-range (hybrid) model: int8 weights, float activations",
    "weight-only": "a weight-only quantized model: int8 weights dequantized to float at run time",
}


def tflite_kind(graph: Graph) -> str:
    """Classify a .tflite: one of :data:`TFLITE_KINDS`' keys, from the types its tensors have (never guessed
    from what it lacks: a model whose weights live inside a custom op's data has no int8 weights to see)."""
    t = graph.tensors
    consts = [x for x in t if x.is_constant and x.dtype not in ("INT32", "INT64")]
    if any(x.dtype == "FLOAT16" for x in consts):
        return "float16"
    # int32 / int64 outputs are indices (ARG_MAX): they say nothing of how the model was quantized
    io = {x.dtype for x in graph.input_tensors} | {x.dtype for x in graph.output_tensors
                                                   if x.dtype not in _INDEX_DTYPES}
    float_consts = any(x.dtype == "FLOAT32" for x in consts)
    dequantized = {o.inputs[0] for o in graph.operators if o.opcode == "DEQUANTIZE" and o.inputs and t[o.inputs[0]].is_constant}
    if dequantized:
        return "weight-only"
    # Tensors the ops compute with: not an int8 LSTM's shapeless "intermediates" (float, they only carry gate
    # scales) nor its int16 cell state, nor an int8 SVDF's int16 state (an int8 model's, by TFLM's design).
    used = {i for o in graph.operators for i in (*o.inputs, *o.outputs) if i >= 0}
    cells = {o.inputs[19] for o in graph.operators if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(o.inputs) > 19}
    cells |= {o.inputs[4] for o in graph.operators if o.opcode == "SVDF" and len(o.inputs) > 4}
    islands = float_islands(graph)  # float ops between int8 ones, which tinyq runs: not a float model
    inner = [x for x in t if not x.is_constant and x.index in used and x.index not in cells
             and x.index not in graph.inputs and x.index not in graph.outputs and x.index not in islands]
    float_activations = any(x.dtype == "FLOAT32" for x in inner)
    if float_consts and not any(x.dtype == "INT8" for x in consts):
        return "float"
    if float_activations:
        return "hybrid" if any(x.dtype == "INT8" for x in consts) else "float"
    if "INT16" in io or any(x.dtype == "INT16" for x in inner):
        return "int16"
    if io <= {"INT8"}:
        return "int8"
    return "int8-float-io" if "FLOAT32" in io else "int16"


#: Where a custom op comes from (by its name's start), for the line that refuses it.
CUSTOM_ORIGINS = (
    ("ethos-u", "an Ethos-U NPU command stream: the file was compiled by Vela for an Arm Ethos-U NPU; give tinyq "
                "the .tflite from before Vela"),
    ("Signal", "TFLM's signal library (an audio front end): compute the features on the host side of the model"),
    ("TFLite_Detection_PostProcess", "TFLite's SSD detection post-processing"),
    ("Flex", "a TensorFlow op (Select TF ops), which no microcontroller runtime runs"),
)


def describe_op(opcode: str) -> str:
    """An opcode as a refusal names it: a custom op with where it comes from."""
    if not opcode.startswith("CUSTOM:"):
        return opcode
    name = opcode.split(":", 1)[1]
    origin = next((what for prefix, what in CUSTOM_ORIGINS if name.startswith(prefix)), "a custom op")
    return f"{opcode} ({origin})"


def unsupported_ops(graph: Graph) -> list[str]:
    """Every op of ``graph`` tinyq's runtime has no kernel for, each once, described (:func:`describe_op`)."""
    from tinyq.compile.ops import SUPPORTED_OPS

    return list(dict.fromkeys(describe_op(op.opcode) for op in graph.operators if op.opcode not in SUPPORTED_OPS))


def check_tensor_sizes(graph: Graph, ram_bytes: int, board: str) -> None:
    """Refuse a model with an activation larger than the board's RAM, before anything is allocated for it.

    The full budget (:mod:`tinyq.compile.budget`) comes after planning; this check is what keeps a model that
    declares a huge input from making tinyq allocate verification inputs (or the planner tables) for it.
    """
    for t in graph.tensors:
        if not t.is_constant and t.nbytes > ram_bytes:
            role = "input" if t.index in graph.inputs else "output" if t.index in graph.outputs else "activation"
            raise BudgetError(f"the model's {role} '{t.name}' {list(t.shape)} needs {t.nbytes:,} B of RAM alone; "
                              f"{board} has {ram_bytes:,} B",
                              hint="the model does not fit this board: use a smaller input or model")


def check_compatibility(graph: Graph) -> tuple[Issue, ...]:
    """Every reason tinyq's runtime cannot run ``graph`` (empty when it can)."""
    from tinyq.compile.ops import SUPPORTED_OPS

    issues = _model_level(graph)
    left = _left_in_float(graph)
    for op in graph.operators:
        if op.index in left:  # one issue names the op; its DEQUANTIZE and QUANTIZE are no issue of their own
            if left[op.index]:
                issues.append(left[op.index])
            continue
        issues += _op_level(graph, op, SUPPORTED_OPS)
    return tuple(issues)


def _left_in_float(graph: Graph) -> dict[int, Issue | None]:
    """Float ops TensorFlow's int8 converter left between a DEQUANTIZE and a QUANTIZE (it has no int8 kernel for
    them: Keras' ELU, SELU) that tinyq does not run in float: op index -> the issue naming it (None for the
    DEQUANTIZE and QUANTIZE around it), so the refusal names the real blocker, not three float tensors."""
    from tinyq.compile.ops.kernels.float_ends import FLOAT_OPS

    t = graph.tensors
    writer = {o: op for op in graph.operators for o in op.outputs}
    out: dict[int, Issue | None] = {}
    for op in graph.operators:
        if op.opcode in ("DEQUANTIZE", "QUANTIZE") or op.opcode in FLOAT_OPS or not op.inputs or op.inputs[0] < 0:
            continue
        src = writer.get(op.inputs[0])
        if (t[op.inputs[0]].dtype == "FLOAT32" and src is not None and src.opcode == "DEQUANTIZE"
                and t[src.inputs[0]].dtype == "INT8" and not t[src.inputs[0]].is_constant):
            out[op.index] = Issue(op.index, op.opcode, None,
                                  f"left in float by TensorFlow's int8 converter (between a DEQUANTIZE and a QUANTIZE: "
                                  f"it has no int8 {op.opcode} for that layer)",
                                  f"tinyq runs only {', '.join(FLOAT_OPS)} in float there; use another activation "
                                  "(e.g. relu, LeakyReLU) for that layer")
            out[src.index] = None
            for reader in graph.operators:
                if reader.opcode == "QUANTIZE" and op.outputs and op.outputs[0] in reader.inputs:
                    out[reader.index] = None
    return out


def analyze(graph: Graph, gate: bool = True) -> Analysis:
    """Describe ``graph``; with ``gate``, raise :class:`UnsupportedModelError` listing every issue."""
    issues = check_compatibility(graph)
    if gate and issues:
        # Each problem once in the message; each distinct fix once in the hint.
        head = "; ".join(i.what for i in issues[:5])
        more = f" (+{len(issues) - 5} more: `tinyq inspect` lists them)" if len(issues) > 5 else ""
        fixes = list(dict.fromkeys(i.fix for i in issues))
        raise UnsupportedModelError(f"the model cannot run on tinyq's int8 runtime: {head}{more}",
                                    hint="; ".join(fixes[:3]))
    ops = tuple(
        OpInfo(op.index, op.opcode, graph.tensors[op.outputs[0]].shape if op.outputs else (),
               _safe_macs(graph, op),
               sum(graph.tensors[i].nbytes for i in op.inputs if i >= 0 and graph.tensors[i].is_constant),
               *_safe_sparsity(graph, op))
        for op in graph.operators
    )
    return Analysis(graph, issues, ops)
