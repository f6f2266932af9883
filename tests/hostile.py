"""Well-formed .tflite files with hostile values, for the fuzzers and the nothing-lost corpus.

A malformed flatbuffer is one kind of bad file; a well-formed one whose values are absurd (a
zero or huge dimension, a scale of 0, inf or NaN, a zero point out of range, a quantization
axis past the shape, a buffer shorter than its tensor) is the other. These edits unpack a real
model with the flatbuffer schema's object API (the one `tflite_micro` ships), change one value
and pack it again, so every other byte of the file stays valid.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


def unpack(buf: bytes):
    """The model as plain objects (schema.ModelT)."""
    return schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)


def pack(model) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def edit(buf: bytes, fn) -> bytes:
    """``buf`` with ``fn(model, subgraph)`` applied to its unpacked form."""
    m = unpack(buf)
    fn(m, m.subgraphs[0])
    return pack(m)


def input_tensor(sg):
    return sg.tensors[sg.inputs[0]]


def set_input_shape(buf: bytes, shape) -> bytes:
    """The model with its input tensor's declared shape replaced (nothing else changes)."""
    def fn(m, sg):
        t = input_tensor(sg)
        t.shape = np.array(shape, np.int32)
        if t.shapeSignature is not None:
            t.shapeSignature = np.array(shape, np.int32)
    return edit(buf, fn)


def constant_tensors(m, sg) -> list[int]:
    """Indices of the tensors backed by a non-empty buffer."""
    return [i for i, t in enumerate(sg.tensors)
            if t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)]


def quantized_tensors(sg) -> list[int]:
    """Indices of the tensors with quantization scales."""
    return [i for i, t in enumerate(sg.tensors)
            if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]


def option_fields(sg) -> list[tuple[int, str]]:
    """(op index, field) of every scalar builtin option of the graph's ops (strides, padding, beta, ...)."""
    return [(i, k) for i, op in enumerate(sg.operators) if op.builtinOptions is not None
            for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, float))]


#: The kinds of hostile value :func:`hostile` writes, and the values each takes.
DIMS = [0, -1, 2**31 - 1, 2**20, 3, 1000]
SCALES = [0.0, -1.0, float("inf"), float("nan"), 1e-45, 1e-30, 1e30, 3.4e38]
ZERO_POINTS = [128, -129, 255, 2**31 - 1, -(2**31), 1000]
OPTIONS = [0, -1, 2, 7, 100, 2**31 - 1, 0.0, float("inf"), float("nan"), 1e-30]


def hostile(buf: bytes, kind: str, pick: int, value, where: int = 0) -> bytes | None:
    """``buf`` with one hostile but well-formed value: ``kind`` says what, ``pick`` (taken modulo the
    candidates) which tensor or option, ``where`` which dimension or channel. None when the value cannot
    be stored in that field (the flatbuffer type is narrower), so the caller draws again."""
    m = unpack(buf)
    sg = m.subgraphs[0]
    if kind == "dim":
        t = sg.tensors[pick % len(sg.tensors)]
        if t.shape is None or not len(t.shape):
            return None
        shape = np.array(t.shape, np.int64)
        shape[where % len(shape)] = value
        t.shape = shape.astype(np.int32)
    elif kind in ("scale", "zero_point", "axis"):
        q = sg.tensors[quantized_tensors(sg)[pick % len(quantized_tensors(sg))]].quantization
        if kind == "scale":
            q.scale = np.array(q.scale, np.float32)
            q.scale[where % len(q.scale)] = value
        elif kind == "zero_point":
            q.zeroPoint = np.array(q.zeroPoint, np.int64)
            q.zeroPoint[where % len(q.zeroPoint)] = value
        else:
            q.quantizedDimension = int(value)
    elif kind == "short_buffer":  # a constant's buffer loses its last `value` bytes (at least one)
        t = sg.tensors[constant_tensors(m, sg)[pick % len(constant_tensors(m, sg))]]
        data = m.buffers[t.buffer].data
        m.buffers[t.buffer].data = data[: max(0, len(data) - max(1, int(value)))]
    elif kind == "option":
        fields = option_fields(sg)
        i, k = fields[pick % len(fields)]
        opts = sg.operators[i].builtinOptions
        old = getattr(opts, k)
        if isinstance(old, bool) or isinstance(value, float) != isinstance(old, float):
            return None
        setattr(opts, k, value)
    else:
        raise ValueError(kind)
    try:
        return pack(m)
    except Exception:  # noqa: BLE001 - struct.error and the like: the value does not fit the field's type
        return None


def with_opcode(buf: bytes, builtin: int, custom: str | None = None, op: int = 0) -> bytes:
    """The model with op ``op`` re-coded as builtin ``builtin`` (32: CUSTOM, named ``custom``): a file whose
    graph uses an op tinyq has no kernel for, everything else as converted."""
    def fn(m, sg):
        code = m.operatorCodes[sg.operators[op].opcodeIndex]
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.customCode = custom
    return edit(buf, fn)


def with_input_type(buf: bytes, tensor_type: int) -> bytes:
    """The model with its input tensor's type changed (7: INT16), zero point 0 as TFLite's int16 needs."""
    def fn(m, sg):
        t = input_tensor(sg)
        t.type = tensor_type
        t.quantization.zeroPoint = np.zeros_like(t.quantization.zeroPoint)
    return edit(buf, fn)


def with_softmax_input_scale(buf: bytes, scale: float) -> bytes:
    """The model with the scale of its SOFTMAX's input set to ``scale`` (an untrained model's tiny logits)."""
    def fn(m, sg):
        for op in sg.operators:
            if m.operatorCodes[op.opcodeIndex].builtinCode == 25:  # SOFTMAX
                q = sg.tensors[op.inputs[0]].quantization
                q.scale = np.array([scale], np.float32)
    return edit(buf, fn)
