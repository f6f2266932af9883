"""The host reference: the real TensorFlow Lite Micro interpreter (``tflite_micro`` wheel).

tinyq's own int8 runtime must match it bit for bit, and the arena it reports is the
figure tinyq's memory plan is compared against.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tinyq.graph import parse_tflite

# Generous: the interpreter only needs what it uses, and it reports that figure.
_DEFAULT_ARENA = 8 * 1024 * 1024


@dataclass(frozen=True)
class TflmArena:
    """What TFLM's allocator reported for a model (bytes).

    ``head`` is the planned, non-persistent part (the activations); ``tail`` the
    persistent part (interpreter structs, quantization data, kernel buffers);
    ``total`` is what ``kTensorArenaSize`` must at least be (on a 64-bit host).
    """

    total: int
    head: int | None = None
    tail: int | None = None


@contextmanager
def _capture_fd2():
    """Capture what C++ code writes to file descriptor 2 (Python's sys.stderr cannot)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        box: dict[str, str] = {}
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box["text"] = tmp.read().decode("utf-8", "replace")


class TflmReference:
    """One TFLM interpreter over an int8 model; :meth:`run` returns each output as int8 arrays."""

    def __init__(self, tflite: bytes, arena_size: int = _DEFAULT_ARENA):
        from tflite_micro.python.tflite_micro import runtime

        graph = parse_tflite(bytes(tflite), "model")
        with _capture_fd2() as log:
            self._it = runtime.Interpreter.from_bytes(with_svdf_biases(bytes(tflite), graph), arena_size=arena_size)
            # The recording allocator prints its figures only when asked.
            self._it.print_allocations()
        self.arena = _parse_arena(log["text"])
        self.input_details = self._it.get_input_details(0)
        self.output_details = self._it.get_output_details(0)
        # A fused LSTM keeps its state in variable tensors from one invocation to the next; tinyq's runtime
        # starts every inference from the reset state (what a stateless Keras LSTM means): so does the reference.
        # An SVDF's state carries over in tinyq's runtime as in TFLM (tinyq.compile.ops.kernels.svdf): a model with
        # one runs from the reset state once (TFLM's, after allocation), then each input continues from the last.
        self.keeps_state = keeps_state(graph)
        self._stateful = any(t.is_variable for t in graph.tensors) and not self.keeps_state
        self.single_int8_io = graph.single_int8_io
        self._inputs = [self._it.get_input_details(i) for i in range(len(graph.inputs))]
        self._n_outputs = len(graph.outputs)

    def reset(self) -> None:
        """Back to the reset state (TFLM's ResetVariableTensors; tinyq's tq_model_reset)."""
        self._it.reset()

    def run_packed(self, x: np.ndarray) -> np.ndarray:
        """Run one sample given as the device's input buffer (every input's bytes, in order:
        tinyq.graph.Graph.pack_inputs); return the device's output buffer, int8 bytes."""
        raw = np.ascontiguousarray(x).reshape(-1).view(np.int8)
        if self._stateful:
            self._it.reset()
        off = 0
        for i, d in enumerate(self._inputs):
            n = int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
            self._it.set_input(raw[off:off + n].copy().view(d["dtype"]).reshape(tuple(int(s) for s in d["shape"])), i)
            off += n
        if off != raw.size:
            raise ValueError(f"{raw.size} input bytes for a model that takes {off}")
        self._it.invoke()
        return np.concatenate([np.ascontiguousarray(self._it.get_output(i)).reshape(-1).view(np.int8)
                               for i in range(self._n_outputs)])

    def run_all(self, inputs: np.ndarray) -> np.ndarray:
        """Every sample of ``inputs``: for a model with one int8 input and one int8 output (N, *input shape) in,
        (N, *output shape) out; for any other, the device's buffers, (N, input bytes) in, (N, output bytes) out."""
        if self.single_int8_io:
            return np.stack([self.run(x) for x in inputs])
        return np.stack([self.run_packed(x) for x in inputs])

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one input (already quantized, model's input shape); return output 0."""
        shape = tuple(int(s) for s in self.input_details["shape"])
        x = np.asarray(x, dtype=self.input_details["dtype"]).reshape(shape)
        if self._stateful:
            self._it.reset()
        self._it.set_input(x, 0)
        self._it.invoke()
        return np.array(self._it.get_output(0), copy=True)


def keeps_state(graph) -> bool:
    """Whether tinyq's runtime carries state from one inference to the next for ``graph`` (an SVDF's: see
    tinyq.compile.ops.kernels.svdf), so that its outputs depend on the inputs before: the reference then runs a
    sequence of inputs without resetting in between."""
    return any(op.opcode == "SVDF" for op in graph.operators)


def with_svdf_biases(tflite: bytes, graph=None) -> bytes:
    """``tflite`` with a zero int32 bias given to each SVDF that has none: TFLM's Prepare reads the bias's scale
    without checking it is there (a crash), while its Eval without a bias starts each unit's sum from 0, which is
    what a zero bias does. The model is returned as it is when no SVDF lacks its bias."""
    graph = graph if graph is not None else parse_tflite(bytes(tflite), "model")
    if not any(op.opcode == "SVDF" and len(op.inputs) == 5 and op.inputs[3] < 0 for op in graph.operators):
        return tflite
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sg = m.subgraphs[0]
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.SVDF or op.inputs is None \
                or len(op.inputs) != 5 or op.inputs[3] >= 0:
            continue
        wt, st = sg.tensors[op.inputs[2]], sg.tensors[op.inputs[4]]
        units = int(sg.tensors[op.inputs[1]].shape[0]) // max(1, int(op.builtinOptions.rank))
        buf = schema.BufferT()
        buf.data = [0] * (4 * units)
        m.buffers.append(buf)
        q = schema.QuantizationParametersT()
        q.scale = [float(np.float32(st.quantization.scale[0]) * np.float32(wt.quantization.scale[0]))]
        q.zeroPoint = [0]
        bias = schema.TensorT()
        bias.name, bias.shape, bias.type, bias.buffer, bias.quantization = (
            b"svdf_zero_bias", [units], schema.TensorType.INT32, len(m.buffers) - 1, q)
        sg.tensors.append(bias)
        op.inputs = [int(i) for i in op.inputs]
        op.inputs[3] = len(sg.tensors) - 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _parse_arena(text: str) -> TflmArena | None:
    def grab(label: str) -> int | None:
        m = re.search(rf"Arena allocation {label} (\d+) bytes", text)
        return int(m.group(1)) if m else None

    total = grab("total")
    return TflmArena(total, grab("head"), grab("tail")) if total is not None else None


def tflm_arena_bytes(tflite: bytes) -> int:
    """The tensor-arena bytes TFLM's allocator needs for this model on the host (64-bit)."""
    ref = TflmReference(tflite)
    if ref.arena is None:
        raise RuntimeError("tflite_micro did not report its arena use")
    return ref.arena.total


class LiteReference:
    """TensorFlow Lite's reference kernels (``BUILTIN_REF``) over an int8 model: the reference for models with an
    op TFLM has no int8 kernel for (TILE, GELU, EXP, ...), which tinyq runs anyway. Same interface as
    :class:`TflmReference`; it needs TensorFlow, imported here only (in the build's worker)."""

    arena = None

    def __init__(self, tflite: bytes):
        import warnings

        import tensorflow as tf

        model = bytes(tflite)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            for _ in range(8):
                try:
                    self._it = tf.lite.Interpreter(model_content=model,
                                                   experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
                    break
                except ValueError as e:
                    # The reference resolver registers some ops at older versions only (TILE: not the int8 version
                    # 3, though its one kernel takes int8). TFLite's optimized kernels are no reference (their
                    # int8 LOGISTIC is a table computed in float), so the op's version is lowered instead.
                    m = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", str(e))
                    if not m or int(m.group(2)) <= 1:
                        raise
                    model = _with_version(model, m.group(1), int(m.group(2)) - 1)
        self._it.allocate_tensors()
        graph = parse_tflite(bytes(tflite), "model")
        self.single_int8_io = graph.single_int8_io
        self._ins = sorted(self._it.get_input_details(), key=lambda d: list(graph.inputs).index(d["index"]))
        self._outs = sorted(self._it.get_output_details(), key=lambda d: list(graph.outputs).index(d["index"]))

    def run_packed(self, x: np.ndarray) -> np.ndarray:
        raw, off = np.ascontiguousarray(x).reshape(-1).view(np.int8), 0
        for d in self._ins:
            n = int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
            self._it.set_tensor(d["index"], raw[off:off + n].copy().view(d["dtype"]).reshape(d["shape"]))
            off += n
        self._it.invoke()
        return np.concatenate([np.ascontiguousarray(self._it.get_tensor(d["index"])).reshape(-1).view(np.int8)
                               for d in self._outs])

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_packed(x).view(self._outs[0]["dtype"]).reshape(self._outs[0]["shape"])

    run_all = TflmReference.run_all


def _with_version(tflite: bytes, opcode: str, version: int) -> bytes:
    """``tflite`` with builtin ``opcode``'s operator code at ``version`` (for the reference interpreter only)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    code = getattr(schema.BuiltinOperator, opcode)
    for oc in model.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            oc.version = version
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


#: What each reference is called in reports.
REFERENCES = {TflmReference: "TFLM", LiteReference: "TensorFlow Lite's reference kernels"}


def reference_for(tflite: bytes):
    """The reference a model is checked against: TFLM (tflite_micro), or where TFLM cannot be one
    (:func:`tinyq.compile.ops.tflm.tflm_cannot_run`: an op it runs on float only or not at all), TensorFlow Lite's
    reference kernels."""
    from tinyq.compile.ops.tflm import tflm_cannot_run

    return LiteReference(tflite) if tflm_cannot_run(parse_tflite(bytes(tflite), "model")) else TflmReference(tflite)


def reference_outputs(tflite: bytes, inputs: np.ndarray) -> tuple[np.ndarray, TflmArena | None, str]:
    """The reference's outputs for every input of ``inputs`` (see :meth:`TflmReference.run_all`), the arena
    TFLM reported (None where TFLM cannot run the model: :func:`reference_for`) and the reference's name.

    Meant to run in a worker (:func:`tinyq.infra.isolate.call`): TFLM is C++ and aborts or faults in-process on
    some hostile models (a scale it cannot requantize), which would kill tinyq with nothing said.
    """
    from tinyq.infra.isolate import note

    from tinyq.errors import UnsupportedModelError

    note("running the model on TFLM (the host reference)")
    try:
        ref = reference_for(tflite)
        return ref.run_all(inputs), ref.arena, REFERENCES[type(ref)]
    except RuntimeError as e:  # TFLM's own refusal (allocation, a kernel's Prepare): said as such
        raise UnsupportedModelError(f"TFLM, the host reference every build is checked against, refuses the model "
                                    f"({e})", hint="tinyq cannot verify a model TFLM cannot run; `tinyq inspect` "
                                                   "shows its tensors and quantization") from e


def run_reference(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run every input of ``inputs`` through the model's reference (:func:`reference_for`; see
    :meth:`TflmReference.run_all`)."""
    return reference_for(tflite).run_all(inputs)
