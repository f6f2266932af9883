"""Read a .tflite flatbuffer into a plain, frozen graph, without TensorFlow.

Every stage after quantization (analyze, plan, emit, inspect) works on this
:class:`Graph`; it is built with the small ``tflite`` flatbuffer package so those
stages, and ``tinyq inspect``, never import TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyq.errors import InputFileError, UnsupportedModelError

_NUMPY_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}
#: The zero points each quantized type can hold. int16 activations are mostly symmetric (zero point 0), but not
#: all: TFLite's int8 -> int16 SOFTMAX writes zero point -32768 (TFLM's keyword_scrambled_8bit.tflite has one), and
#: such a model must be refused for its int16 tensors by the gate, not read as a damaged file.
_ZERO_POINT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT32": (-2**31, 2**31 - 1)}
#: No tensor may be larger than this: TFLite counts elements and bytes in int32, and so does tinyq's C.
MAX_TENSOR_BYTES = 2**31 - 1


@dataclass(frozen=True)
class Quantization:
    """Affine quantization ``real = scale * (q - zero_point)``; per-channel along ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True, eq=False)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite type name: "INT8", "INT32", "FLOAT32", ...
    quant: Quantization | None
    #: Constant contents (weights, biases, shapes), None for activations.
    data: np.ndarray | None = field(default=None, repr=False)
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(_NUMPY_DTYPES.get(self.dtype, np.uint8))

    @property
    def nbytes(self) -> int:
        return self.size * self.numpy_dtype.itemsize


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str  # builtin name, e.g. "CONV_2D"; custom ops are "CUSTOM:<name>"
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any]  # builtin options, snake_case keys (e.g. "stride_w", "padding")


@dataclass(frozen=True, eq=False)
class Graph:
    """The first subgraph of a .tflite model: tensors, operators in execution order, I/O."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    num_subgraphs: int = 1
    description: str = ""
    #: The name each model input has in the model's signature (a Keras Input's name), by tensor index.
    signature_names: dict[int, str] = field(default_factory=dict)

    def input_name(self, index: int) -> str:
        """What users call input tensor ``index``: its signature name (the Keras Input's), else its tensor name."""
        return self.signature_names.get(index, self.tensors[index].name)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    @property
    def input_tensors(self) -> tuple[Tensor, ...]:
        return tuple(self.tensors[i] for i in self.inputs)

    @property
    def output_tensors(self) -> tuple[Tensor, ...]:
        return tuple(self.tensors[i] for i in self.outputs)

    # The device's input and output buffers. tq_model_run takes one input buffer and fills one output
    # buffer: the model's input (output) tensors one after the other, in the model's order, each in its own
    # type (int8, or float32 for a model with float ends), with no padding. The generated C, the host runner,
    # the reference and the protocol all agree on this layout through these functions.

    @property
    def single_int8_io(self) -> bool:
        """One int8 input and one int8 output: the buffers are those tensors themselves, in their shapes."""
        return (len(self.inputs) == len(self.outputs) == 1 and self.input_tensors[0].dtype == "INT8"
                and self.output_tensors[0].dtype == "INT8")

    def io_slots(self, side: str) -> tuple[tuple[Tensor, int], ...]:
        """(tensor, byte offset in the buffer) of each tensor of ``side`` ("input" or "output")."""
        out, off = [], 0
        for t in (self.input_tensors if side == "input" else self.output_tensors):
            out.append((t, off))
            off += t.nbytes
        return tuple(out)

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.input_tensors)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.output_tensors)

    def pack_inputs(self, arrays) -> np.ndarray:
        """Samples of each input (a list, one (N, *shape) array per input in the model's order) as the
        device's input buffers: (N, input_bytes) int8."""
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{len(arrays)} input arrays for {len(self.inputs)} inputs")
        n = len(arrays[0])
        parts = [np.ascontiguousarray(a, dtype=t.numpy_dtype).reshape(n, -1).view(np.int8)
                 for a, t in zip(arrays, self.input_tensors)]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def unpack(self, side: str, packed: np.ndarray) -> list[np.ndarray]:
        """The device's buffers of ``side`` ((N, bytes) int8, or anything with those bytes per sample) as
        one (N, *shape) array per tensor, in its own type."""
        flat = np.ascontiguousarray(packed).reshape(len(packed), -1).view(np.int8)
        def sample_shape(t: Tensor) -> tuple[int, ...]:  # the shape without its batch of 1
            return t.shape[1:] if len(t.shape) > 1 and t.shape[0] == 1 else t.shape
        return [flat[:, off:off + t.nbytes].copy().view(t.numpy_dtype).reshape(len(packed), *sample_shape(t))
                for t, off in self.io_slots(side)]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _read_options(op) -> dict[str, Any]:
    import tflite

    otype = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if otype == 0 or table is None:
        return {}
    cls_name = _enum_names(tflite.BuiltinOptions).get(otype)
    cls = getattr(tflite, cls_name, None) if cls_name else None
    if cls is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    skip = ("GetRootAs", "Init")
    for attr in dir(cls):
        if attr.startswith("_") or attr.startswith(skip) or attr.endswith(("IsNone", "Length", "BufferHasIdentifier")):
            continue
        if attr.endswith("AsNumpy"):
            val = getattr(opts, attr)()
            out[_snake(attr[: -len("AsNumpy")])] = tuple(int(v) for v in val) if not isinstance(val, int) else ()
            continue
        if hasattr(cls, attr + "AsNumpy"):
            continue  # vector field, read above
        fn = getattr(opts, attr)
        try:
            val = fn()
        except TypeError:
            continue  # accessor that takes an index
        if isinstance(val, (int, float, bool)):
            out[_snake(attr)] = val
    # Names the C side reads, in TFLite's own spelling: padding SAME/VALID, activation NONE/RELU/...
    if "padding" in out:
        out["padding"] = {0: "SAME", 1: "VALID"}.get(out["padding"], out["padding"])
    if "fused_activation_function" in out:
        out["fused_activation_function"] = _enum_names(tflite.ActivationFunctionType)[out["fused_activation_function"]]
    return out


def parse_tflite(buf: bytes, source: str = "<bytes>") -> Graph:
    """Parse a .tflite flatbuffer. Raise :class:`InputFileError` if it is not one."""
    import tflite

    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise InputFileError(
            f"{source}: not a TFLite flatbuffer (no TFL3 identifier)",
            hint="pass the .tflite file written by `tinyq quantize`",
        )
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise InputFileError(f"{source}: the model has no subgraph")
        sg = model.Subgraphs(0)
        type_names = _enum_names(tflite.TensorType)

        tensors = []
        empty: list[tuple[int, str, tuple[int, ...]]] = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            q = t.Quantization()
            quant = None
            if q is not None and q.ScaleLength() > 0:
                zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
                quant = Quantization(
                    scale=tuple(float(s) for s in q.ScaleAsNumpy()),
                    zero_point=tuple(int(z) for z in zps),
                    axis=int(q.QuantizedDimension()),
                )
            dtype = type_names.get(t.Type(), f"TYPE_{t.Type()}")
            data = raw = None
            b = model.Buffers(t.Buffer())
            if b is not None:
                if b.DataLength() > 0:
                    raw = b.DataAsNumpy().tobytes()
                elif hasattr(b, "Offset") and b.Offset() > 1:
                    raw = bytes(buf[b.Offset() : b.Offset() + b.Size()])
            name = t.Name().decode("utf-8", "replace") if t.Name() else f"t{i}"
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            where = f"{source}: tensor {i} '{name}'"
            _check_shape(where, shape, dtype, constant=True)  # an empty activation: once the ops say it is used
            if raw is None and _elements(shape) == 0:
                empty.append((i, where, shape))
            if raw is not None:
                data = _constant(where, raw, shape, dtype)
            if quant is not None:
                _check_quantization(where, quant, shape, dtype, constant=raw is not None)
            tensors.append(Tensor(i, name, shape, dtype, quant, data, bool(t.IsVariable())))

        op_names = tflite.BUILTIN_OPCODE2NAME
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            oc = model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = op_names.get(code, f"BUILTIN_{code}")
            if name == "CUSTOM":
                name = "CUSTOM:" + (oc.CustomCode() or b"?").decode()
            ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            ops.append(Operator(i, name, int(oc.Version()), ins, outs, _read_options(op)))

        names = {}
        if model.SignatureDefsLength() > 0:
            sd = model.SignatureDefs(0)
            for k in range(sd.InputsLength()):
                names[int(sd.Inputs(k).TensorIndex())] = sd.Inputs(k).Name().decode("utf-8", "replace")
        desc = model.Description().decode("utf-8", "replace") if model.Description() else ""
        graph_inputs = tuple(int(x) for x in sg.InputsAsNumpy()) if sg.InputsLength() else ()
        graph_outputs = tuple(int(x) for x in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
        _check_references(source, len(tensors), ops, graph_inputs, graph_outputs)
        # A tensor no op reads or writes may be empty: the converter lists an int8 LSTM's gate scales as
        # shapeless "intermediates" (UNIDIRECTIONAL_SEQUENCE_LSTM): the op, not its notes, is what to name.
        used = {*graph_inputs, *graph_outputs, *(t for op in ops for t in (*op.inputs, *op.outputs))}
        for i, where, shape in empty:
            if i in used:
                _check_shape(where, shape, tensors[i].dtype, constant=False)
        return Graph(
            tensors=tuple(tensors),
            operators=tuple(ops),
            inputs=graph_inputs,
            outputs=graph_outputs,
            num_subgraphs=model.SubgraphsLength(),
            description=desc,
            signature_names=names,
        )
    except (InputFileError, UnsupportedModelError):
        raise
    except Exception as e:  # a truncated or corrupt flatbuffer fails in many ways
        raise InputFileError(f"{source}: corrupt TFLite flatbuffer ({type(e).__name__}: {e})") from e


def _elements(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=object)) if shape else 1  # object: no int64 overflow on hostile shapes


def _check_shape(where: str, shape: tuple[int, ...], dtype: str, constant: bool) -> None:
    """A declared shape every later stage can trust: no negative dimension, no tensor past int32 bytes,
    and no empty activation (a model input with no elements has nothing to run on). Checked here, before
    anything is allocated from it."""
    if any(d < 0 for d in shape):
        raise InputFileError(f"{where} has shape {list(shape)}: a negative dimension",
                             hint="re-export the model with fixed dimensions (batch 1); the .tflite is damaged or dynamic")
    elements = _elements(shape)
    nbytes = elements * np.dtype(_NUMPY_DTYPES.get(dtype, np.uint8)).itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise UnsupportedModelError(f"{where} has shape {list(shape)}: {nbytes:,} bytes, more than TFLite or any "
                                    "microcontroller can address (2 GiB)",
                                    hint="check the model's input size; a microcontroller model is kilobytes")
    if elements == 0 and not constant:
        raise UnsupportedModelError(f"{where} has shape {list(shape)}: no elements",
                                    hint="a tensor with a zero-size dimension cannot run; re-export the model with "
                                         "its real input shape")


def _constant(where: str, raw: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A constant's contents, which must fill its shape exactly (types numpy cannot hold stay flat bytes)."""
    if dtype not in _NUMPY_DTYPES:
        arr = np.frombuffer(raw, dtype=np.uint8)  # e.g. INT4 (packed), STRING: read as bytes
    else:
        np_dtype = np.dtype(_NUMPY_DTYPES[dtype])
        want = (int(np.prod(shape, dtype=np.int64)) if shape else 1) * np_dtype.itemsize
        if len(raw) != want:
            raise InputFileError(f"{where}: corrupt TFLite flatbuffer (its buffer holds {len(raw):,} bytes, its shape "
                                 f"{list(shape)} of {dtype} needs {want:,})")
        arr = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    arr.setflags(write=False)
    return arr


def _check_quantization(where: str, q: Quantization, shape: tuple[int, ...], dtype: str, constant: bool) -> None:
    """Quantization parameters TFLite itself would accept: finite positive scales (a constant may have 0),
    one zero point a scale, in the type's range, and a per-channel axis that exists and matches."""
    bad = [s for s in q.scale if not np.isfinite(s) or s < 0 or (s == 0 and not constant)]
    if bad:
        raise UnsupportedModelError(f"{where}: quantization scale {bad[0]}",
                                    hint="scales must be finite and above 0; the .tflite was not made by a "
                                         "TFLite converter, or is damaged")
    if len(q.zero_point) != len(q.scale):
        raise InputFileError(f"{where}: corrupt TFLite flatbuffer ({len(q.scale)} scales, "
                             f"{len(q.zero_point)} zero points)")
    lo, hi = _ZERO_POINT_RANGE.get(dtype, (-2**63, 2**63 - 1))
    out = [z for z in q.zero_point if not lo <= z <= hi]
    if out:
        raise UnsupportedModelError(f"{where}: zero point {out[0]} is outside what {dtype} holds here ({lo}..{hi})",
                                    hint="the .tflite was not made by a TFLite converter, or is damaged")
    if q.per_channel and not (0 <= q.axis < len(shape) and shape[q.axis] == len(q.scale)):
        raise InputFileError(f"{where}: corrupt TFLite flatbuffer ({len(q.scale)} per-channel scales along axis "
                             f"{q.axis} of shape {list(shape)})")


def _check_references(source: str, n_tensors: int, ops, inputs, outputs) -> None:
    """Every tensor index the graph uses must name a tensor: later stages index without checks."""
    def bad(where: str, i: int) -> InputFileError:
        return InputFileError(f"{source}: corrupt TFLite flatbuffer ({where} names tensor {i}; the model has {n_tensors})")

    for i in (*inputs, *outputs):
        if not 0 <= i < n_tensors:
            raise bad("the graph's input/output list", i)
    if not inputs or not outputs:
        raise InputFileError(f"{source}: corrupt TFLite flatbuffer (the graph has no {'inputs' if not inputs else 'outputs'})")
    for op in ops:
        if not op.outputs:
            raise InputFileError(f"{source}: corrupt TFLite flatbuffer (op {op.index} {op.opcode} has no output)")
        for i in (*op.inputs, *op.outputs):
            if not -1 <= i < n_tensors or (i == -1 and i in op.outputs):
                raise bad(f"op {op.index} {op.opcode}", i)


def load_tflite(path: Path) -> Graph:
    """Read and parse a .tflite file."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except FileNotFoundError as e:
        raise InputFileError(f"{path}: no such file") from e
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from e
    return parse_tflite(buf, str(path))
