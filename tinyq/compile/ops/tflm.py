"""What TensorFlow Lite Micro runs: the builtin operators of its op resolver, and which of them it runs on int8.

TFLM_BUILTINS are the BuiltinOperator_* its ``Add<Op>()`` methods register, in tensorflow/lite/micro/micro_mutable_op_resolver.h
(tflite-micro at commit 90b983c2, 2026-08-20), as TFLite builtin opcode names; the resolver's custom
operators (its signal library, Ethos-U, SSD post-processing) are not builtins and not listed.
TFLM_FLOAT_ONLY are the ones among them whose TFLM kernel takes float tensors only (checked with the
tflite_micro interpreter: an int8 model with one fails to allocate).

The build checks the generated C against TFLM; a model with an op TFLM cannot run on int8 is checked against
TensorFlow Lite's reference kernels instead (:mod:`tinyq.model.reference`), and the README's operator table is
made from these lists (:mod:`tinyq.compile.ops.gen`).
"""

from __future__ import annotations

TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"

TFLM_BUILTINS: frozenset[str] = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD
FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS
LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM
MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU
RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX
SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF
TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
""".split())

#: TFLM kernels that take float only: an int8 model with one of these does not run on TFLM.
TFLM_FLOAT_ONLY: frozenset[str] = frozenset({"EXP", "LOG", "SQRT", "SIN", "COS", "CEIL", "FLOOR", "ROUND", "SQUARE", "NEG"})


def tflm_runs_int8(opcode: str) -> bool:
    """Whether TFLM has an int8 kernel for ``opcode`` (a TFLite builtin name, or "CUSTOM:...")."""
    return opcode in TFLM_BUILTINS and opcode not in TFLM_FLOAT_ONLY

#: Ops TFLM has an int8 kernel for whose output is still no reference: SPACE_TO_BATCH_ND pads with arena bytes
#: it never sets (0 in one run, 9 in another), where TFLite pads with the zero point.
TFLM_UNRELIABLE: frozenset[str] = frozenset({"SPACE_TO_BATCH_ND"})
#: Where TFLM's kernel takes fewer dimensions than tinyq's.
TFLM_MAX_RANK = {"TRANSPOSE": 5, "STRIDED_SLICE": 4}


def tflm_cannot_run(graph) -> list[str]:
    """Why TFLM is no reference for ``graph`` (a tinyq.graph.Graph): each op TFLM runs on float only or not at
    all, or not as TFLite defines it, and int64 tensors (TFLM's ARG_MAX writes int32 only, its GATHER takes
    int32 indices). Empty: TFLM runs it."""
    why = []
    for op in graph.operators:
        float_op = bool(op.inputs) and graph.tensors[op.inputs[0]].dtype == "FLOAT32" and op.opcode in TFLM_FLOAT_ONLY
        if not tflm_runs_int8(op.opcode) and not float_op:  # (a float op TFLM runs in float: LayerNorm's NEG)
            why.append(f"{op.opcode} (no int8 kernel in TFLM)")
        elif op.opcode in TFLM_UNRELIABLE:
            why.append(f"{op.opcode} (TFLM leaves its padding unset)")
        elif op.opcode in TFLM_MAX_RANK and op.inputs and len(graph.tensors[op.inputs[0]].shape) > TFLM_MAX_RANK[op.opcode]:
            why.append(f"{op.opcode} of rank {len(graph.tensors[op.inputs[0]].shape)} (TFLM: {TFLM_MAX_RANK[op.opcode]})")
    if any(t.dtype == "INT64" for t in graph.tensors):
        why.append("int64 indices")
    return list(dict.fromkeys(why))
