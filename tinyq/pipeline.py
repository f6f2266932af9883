"""The pipeline and tinyq's public API: load -> quantize -> analyze -> plan -> emit -> firmware, then run -> measure.

Each stage is a module with one job; this module only chains them, keeps the build folder consistent
(written whole or not at all) and records what each stage found. The CLI, the tests and the benchmarks
call these functions rather than chaining the stages themselves:

* :func:`compile_model`: a model file to a build folder (``tinyq build``), with its :class:`BuildReport`;
* :func:`run_on`: a build folder on a device, measured and verified (``tinyq flash``);
* :func:`run_on_host`: a model's generated C on the host (what every build checks against TFLM);
* :func:`run_model_on`: a model, planned as asked, on a device against TFLM, without a build folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tinyq import __version__
from tinyq.errors import InputFileError, TinyqError
from tinyq.infra.staging import staged_dir
from tinyq.report.builddir import BuildDir, BuildReport, FirmwareImage

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class BuildResult:
    out_dir: Path
    report: BuildReport  # what build.json holds


def compile_model(model: Path, board_id: str, calib: Path | None, out_dir: Path, eval_path: Path | None = None,
          mode: str = "int8", max_calib: int | None = None, verify_inputs: int = 8, signature: str | None = None,
          finetune=None, train_path: Path | None = None, favour: str = "ram", weights: str = "auto",
          name: str | None = None, labels_path: Path | None = None,
          progress: Progress = lambda s: None) -> BuildResult:
    """Quantize, check, plan, emit and compile ``model`` for ``board_id`` into ``out_dir``.

    ``model`` is a Keras model (.keras, .h5), a SavedModel folder or a full-int8 .tflite
    (used as it is; ``calib`` is then optional). Every input and the output folder are
    checked before TensorFlow starts; TensorFlow runs in a worker process.
    ``finetune`` (:class:`tinyq.model.optimize.FineTune`) fine-tunes on ``train_path`` first (QAT, pruning).
    ``favour`` ("ram" or "speed") is what the memory plan favours where the two pull apart.
    ``weights``: "int8", "int16" (conv and FC weights as int16 pairs: twice their flash, fewer
    instructions) or "auto" (int16 when the firmware still leaves a quarter of the board's flash).
    ``name``: the library's name (a C identifier; default tinyq_<the model file's stem>); ``labels_path``: a text
    file of class names, one a line, for a classifier's generated API (default "0".."N-1").
    """
    from tinyq.boards import board_file, get_board
    from tinyq.compile import analyze, budget
    from tinyq.compile.budget import plan_for_board
    from tinyq.compile.emit.arduino import emit_arduino
    from tinyq.compile.emit.firmware import TARGETS, emit_firmware
    from tinyq.compile.emit.model import api_facts, classifier_classes, emit_model, model_name
    from tinyq.compile.emit.tflm import emit_tflm
    from tinyq.compile.emit.arduino import classify_example
    from tinyq.compile.firmware import EXAMPLE_RUNTIME, build_firmware, console_driver, target_uart, write_zip
    from tinyq.compile.hostrun import run_generated
    from tinyq.compile.plan import PlanOptions
    from tinyq.errors import UnsupportedModelError
    from tinyq.graph import parse_tflite
    from tinyq.infra import isolate
    from tinyq.infra.outputs import check_build_dir
    from tinyq.model import load, quantize
    from tinyq.report.memory_plot import plot_memory

    # Everything the user gave is checked before TensorFlow starts.
    board = get_board(board_id)
    if mode not in quantize.DEPLOYABLE_MODES:
        raise UnsupportedModelError(
            f"mode '{mode}' does not run on a microcontroller: tinyq's runtime is full int8",
            hint="use --mode int8 (the other modes are for `tinyq quantize` host comparisons)")
    out_dir = check_build_dir(out_dir, inputs=[model, calib, eval_path, train_path, labels_path])
    lib_name = check_name(name) if name is not None else model_name(Path(model).name)
    labels = read_labels(labels_path) if labels_path is not None else None
    progress("reading the model and the data")
    inputs = load.load_inputs(model, calib, eval_path, max_calib, train_path)
    if finetune is not None and inputs.model.format == "tflite":
        raise UnsupportedModelError(f"{model}: an int8 .tflite cannot be fine-tuned",
                                    hint="give --qat/--prune the Keras model the .tflite was made from")

    if inputs.model.format == "tflite":
        if signature is not None:
            raise InputFileError("--signature applies to SavedModel folders only")
        progress("reading the int8 .tflite")
        q, x_int8 = quantize.from_int8_tflite(inputs, verify_inputs, board=board)
        graph = parse_tflite(q.tflite, str(model))
    else:
        stage = "quantizing (TensorFlow)"
        progress(stage)
        q = isolate.call("tinyq.model.quantize:quantize", inputs, mode, signature=signature, finetune=finetune,
                         on_progress=lambda line: progress(f"{stage}: {line}"))  # "STAGE: detail", on one line
        graph = parse_tflite(q.tflite, "quantized model")
        analyze.check_tensor_sizes(graph, board.memory.ram_bytes, board.id)
        # Verification inputs: real samples, quantized as the device receives them; always scaled: the Keras
        # model takes these samples as float, whatever they were stored as.
        data = inputs.eval if inputs.eval is not None else inputs.calib
        x_int8 = quantize.device_inputs(graph, dataclasses.replace(data, stored_dtype="float32"), verify_inputs)
    progress("checking ops and memory")
    analysis = analyze.analyze(graph)
    mem = plan_for_board(graph, board, PlanOptions(favour=favour, weights=weights))
    fit = budget.check_budget(mem, board, favour)
    if labels is not None:
        check_labels_fit(labels, labels_path, classifier_classes(graph))
    progress("emitting C")
    model_files = emit_model(mem, q.tflite, source=Path(model).name, name=lib_name, labels=labels)
    facts = api_facts(mem, labels)

    progress("running the TFLM reference and the generated C on the host")
    # TFLM runs in a worker: a hostile model can make it abort, and that must not kill tinyq silently.
    expected, tflm_arena, reference = isolate.call(
        "tinyq.model.reference:reference_outputs", q.tflite, x_int8, what="the host reference",
        crash_hint="TFLM cannot run this model either; check its quantization parameters with `tinyq inspect`")
    host = run_generated(model_files, x_int8.reshape(len(x_int8), -1), expected.shape[1:])
    host_exact = bool(np.array_equal(host, expected))
    if not host_exact:
        raise TinyqError(f"the generated C differs from the host reference ({reference})",
                         hint="please report this with the model attached")

    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        firmware = {}
        for target in TARGETS:
            if console_driver(target_uart(board, target)) is None:
                continue  # no console driver for that chip yet: the emulator twin still builds
            progress(f"compiling firmware ({target})")
            firmware[target] = build_firmware({**model_files, **emit_firmware(board, target)}, board, target, tmp / target)
        if "qemu" in firmware and len(x_int8):
            # The classify example as plain bare-metal firmware for the QEMU twin: the API as an application
            # calls it, on the first verified input (tests run it against the host reference).
            progress("compiling the classify example (qemu)")
            example = classify_example(model_files, board, q.sha256[:12], Path(model).name, lib_name, facts,
                                       (x_int8[0], expected[0]))
            build_firmware({**model_files, **example, **emit_firmware(board, "qemu")}, board, "qemu",
                           tmp / BuildDir.CLASSIFY_EXAMPLE, runtime_files=EXAMPLE_RUNTIME)
        out = BuildDir(tmp)
        out.file(BuildDir.INT8_MODEL).write_bytes(q.tflite)
        arduino = None
        if board.arduino is not None:
            name, lib = emit_arduino(model_files, emit_firmware(board, "board")["tq_board.h"], board,
                                     q.sha256[:12], Path(model).name, lib_name, facts,
                                     (x_int8[0], expected[0]) if len(x_int8) else None)
            arduino = f"arduino/{name}.zip"
            write_zip(lib, tmp / arduino)
        if q.float_tflite:
            # The float model as converted: `flash --eval` compares the device with it (TFLM runs it).
            out.file(BuildDir.FLOAT_MODEL).write_bytes(q.float_tflite)
        if tflm_arena is not None:
            # The same model as a TensorFlow Lite Micro project, for users who have TFLM.
            for name, text in emit_tflm(graph, q.tflite, board, tflm_arena.total, Path(model).name).items():
                path = out.file(BuildDir.TFLM_PROJECT) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        if q.keras_model:
            out.file(BuildDir.FINETUNED_MODEL).write_bytes(q.keras_model)
        progress("drawing the memory plan")
        timeline = mem.timeline()
        plot_memory(timeline, out.file(BuildDir.MEMORY_PLOT), Path(model).name, tflm_arena.total if tflm_arena else None,
                    "TFLM arena (tflite_micro, 64-bit host)")
        np.savez(out.file(BuildDir.VERIFY), inputs=x_int8, expected=expected)
        # The board definition travels with the build, so a board given as a file flashes too.
        out.file(BuildDir.BOARD_FILE).write_text(board_file(board_id).read_text(encoding="utf-8"), encoding="utf-8")
        images = {t: FirmwareImage(**{k: (str(Path(v).relative_to(tmp)) if isinstance(v, Path) else v)
                                      for k, v in f.__dict__.items()}) for t, f in firmware.items()}
        report = BuildReport(
            tinyq=__version__, model=str(model), board=board.id, model_id=q.sha256[:12], loader=q.loader,
            warnings=tuple(q.warnings),
            quantization=q.report.to_dict() if q.report else {"mode": mode, "quant_bytes": len(q.tflite)},
            ops=analysis.op_counts, macs=analysis.macs, weights_bytes=mem.weight_bytes,
            # All RAM the model needs (activations + each op's scratch, planned together), comparable with TFLM's arena.
            arena_bytes=mem.ram_bytes, favour=favour,
            weights="int16" if any(dict(c.params).get("w16") for c in mem.kernel_calls) else "int8",
            activation_bytes=mem.activation_peak_bytes, scratch_bytes=mem.scratch_bytes,
            # Measured by the tflite_micro host interpreter (64-bit pointers: a 32-bit MCU needs somewhat less).
            tflm_arena_bytes=tflm_arena.total if tflm_arena else None,
            tflm_arena_head_bytes=tflm_arena.head if tflm_arena else None,
            layers=tuple(mem.layers()), bands=tuple(mem.bands()), constant_channels=mem.constant_channels(),
            memory={**timeline, "plot": BuildDir.MEMORY_PLOT},
            budget={"flash_bytes": fit.flash_bytes, "flash_limit": fit.flash_limit, "ram_bytes": fit.ram_bytes,
                    "ram_limit": fit.ram_limit, "breakdown": fit.breakdown},
            host_bit_exact_inputs=len(x_int8) if host_exact else 0, firmware=images, arduino_library=arduino,
            finetune=({**q.finetune, "keras_model": BuildDir.FINETUNED_MODEL,
                       "baseline": _baseline(q.baseline_tflite, board, favour, weights)}
                      if q.finetune is not None else None),
            reference=reference,
        )
        out.write_report(report)
    return BuildResult(out_dir, report)


#: The longest --labels file read (a classifier with more classes than lines this long has no place on an MCU).
MAX_LABELS_BYTES = 1 << 20


def check_name(name: str) -> str:
    """``--name`` as the library's C identifier (see :func:`tinyq.compile.emit.model.model_name`), refused when
    nothing of it is left."""
    from tinyq.compile.emit.model import model_name

    if not name or not name.strip() or len(name) > 64:
        raise InputFileError(f"--name {name!r}: give 1 to 64 characters", hint="e.g. --name gesture_model")
    return model_name("", name.strip())


def read_labels(path: Path) -> list[str]:
    """The class names of a --labels file: one a line (UTF-8; a trailing newline and each line's CR and
    surrounding blanks dropped). Refused in one line when missing, unreadable, empty or with a blank label."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"--labels {path}: no such file", hint="give a text file with one class name a line")
    if path.stat().st_size > MAX_LABELS_BYTES:
        raise InputFileError(f"--labels {path}: {path.stat().st_size:,} bytes is no label file",
                             hint="give a text file with one class name a line")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"--labels {path}: cannot read it as UTF-8 text ({e.__class__.__name__})",
                             hint="give a text file with one class name a line") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise InputFileError(f"--labels {path}: no labels in it", hint="one class name a line, in class order")
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if blank:
        raise InputFileError(f"--labels {path}: line {blank[0]} is blank",
                             hint="one class name a line, in class order, no blank lines")
    return lines


def check_labels_fit(labels: list[str], path: Path, classes: int) -> None:
    """Refuse a --labels file whose count is not the model's number of classes (before anything is written)."""
    if classes == 0:
        raise InputFileError(f"--labels {path}: the model's first output is not a vector of class scores",
                             hint="--labels applies to classifiers (first output [1, N], int8 or float32); leave it out")
    if len(labels) != classes:
        raise InputFileError(f"--labels {path}: {len(labels)} labels for the model's {classes} classes",
                             hint=f"give {classes} lines, one class name each, in class order")


def run_on_host(tflite: bytes, inputs: np.ndarray, plan=None, **options) -> np.ndarray:
    """The generated C of ``tflite`` run on the host for each of ``inputs`` (N, *input shape, int8): the outputs,
    (N, *output shape); for a model with several inputs or outputs or float ends, the device's buffers
    ((N, input bytes) in, (N, output bytes) int8 out: :meth:`tinyq.graph.Graph.pack_inputs`, ``unpack``). ``plan`` is a memory plan of the model to emit (else one made with ``options``, the
    fields of :class:`~tinyq.compile.plan.PlanOptions`)."""
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.hostrun import run_generated
    from tinyq.compile.plan import PlanOptions, plan_model
    from tinyq.graph import parse_tflite

    g = parse_tflite(tflite, "model")
    plan = plan if plan is not None else plan_model(g, PlanOptions(**options))
    return run_generated(emit_model(plan, tflite), inputs,
                         g.output_tensors[0].shape if g.single_int8_io else (g.output_bytes,))


def run_model_on(tflite: bytes, device: str, inputs: np.ndarray, workdir: Path, board: str = "nano33",
                 per_layer: bool = False, **options):
    """A model as the planner lays it out with ``options`` (:class:`~tinyq.compile.plan.PlanOptions`' fields),
    compiled for ``device``'s firmware target and run there on ``inputs`` (N, *input shape, int8) against TFLM:
    (the measurement, the plan, the firmware). What a build folder does for a user, without one: the tests
    force a plan and see it run on the device."""
    from tinyq.boards import get_board
    from tinyq.compile.emit.firmware import emit_firmware
    from tinyq.compile.emit.model import emit_model
    from tinyq.compile.firmware import build_firmware
    from tinyq.compile.plan import PlanOptions, plan_model
    from tinyq.graph import parse_tflite
    from tinyq.model.reference import run_reference
    from tinyq.report.measure import drive, evaluate
    from tinyq.device.devices import device_class, open_device

    b = get_board(board)
    plan = plan_model(parse_tflite(tflite, "model"), PlanOptions(**options))
    target = device_class(device).firmware_target
    fw = build_firmware({**emit_model(plan, tflite), **emit_firmware(b, target)}, b, target, Path(workdir) / "fw")
    expected = run_reference(tflite, inputs)
    with open_device(device, b, fw.elf) as dev:
        report = drive(dev.transport, inputs, runs=1, warmup=0, per_layer=per_layer)
    return evaluate(report, expected, b.chip.clock_hz, dev.clock), plan, fw


def _baseline(tflite: bytes, board, favour: str, weights: str) -> dict:
    """Size, MACs and arena of the post-training int8 model of the model as given (what fine-tuning is
    measured against), planned as the build plans its own model."""
    from tinyq.compile import analyze
    from tinyq.compile.budget import plan_for_board
    from tinyq.compile.plan import PlanOptions
    from tinyq.graph import parse_tflite

    g = parse_tflite(tflite, "post-training int8 model")
    mem = plan_for_board(g, board, PlanOptions(favour=favour, weights=weights))
    return {"int8_bytes": len(tflite), "weights_bytes": mem.weight_bytes, "macs": analyze.analyze(g, gate=False).macs,
            "arena_bytes": mem.ram_bytes}


def run_on(build_dir: Path, emulator: str | None = None, port: str | None = None, runs: int = 10,
          warmup: int = 2, per_layer: bool = False, timeout: float = 30.0, upload: bool = True,
          eval_path: Path | None = None, progress: Progress = lambda s: None, on_sample=None):
    """Run a build on an emulator (``emulator``: a device name) or a board (``port``) and measure it.

    ``timeout`` is the base of each phase's deadline (boot, input upload, inference); the
    upload and inference deadlines grow with the input size and the model's MACs. With
    ``eval_path`` every evaluation sample also runs on the device (``on_sample(done, total)``
    after each) and the result holds its top-1 and agreement with the host (``validation``).
    """
    from tinyq.device.devices import device_class, open_device
    from tinyq.errors import ProtocolError
    from tinyq.report.measure import Timeouts, check, drive, evaluate

    if not timeout > 0:
        raise InputFileError(f"--timeout must be more than 0 s (got {timeout})", hint="e.g. --timeout 30")
    name = emulator or "serial"  # no emulator named: the board, on --port or found on USB
    target = device_class(name).firmware_target
    build_dir = Path(build_dir)
    bd = BuildDir(build_dir)
    built = bd.read_report()
    board = bd.board(built)
    inputs, expected = bd.read_verify()
    if target not in built.firmware:
        raise InputFileError(f"{build_dir} has no firmware for target '{target}' (needed by {name})",
                             hint=f"tinyq has no console driver for {board.id}'s chip yet; use --emulator qemu")
    elf = bd.firmware_elf(built, target)
    x_eval, stream, labels = (_eval_inputs(build_dir, eval_path) if eval_path is not None
                              else (None, inputs[:0], None))
    if _keeps_state(build_dir):
        # Each inference moves the model's state on (an SVDF's), and the reference ran each input once, in order:
        # so does the device, the first input untimed by warm-ups and repeats.
        runs, warmup = 1, 0
    n_verify, total = len(inputs), len(inputs) + len(stream)
    deadlines = Timeouts.scaled(timeout, inputs[0].size if len(inputs) else 0, built.macs,
                                runs + warmup, board.console.baud)
    progress(f"starting {name}" if name != "serial" else "uploading to the board")
    with open_device(name, board, elf, port=port, upload=upload) as dev:
        progress(f"running on {name}")
        device_port = getattr(dev, "port", None)
        tick = (lambda i: on_sample(i + 1, total)) if on_sample is not None else None
        report = drive(dev.transport, np.concatenate([inputs, stream]) if len(stream) else inputs,
                       runs, warmup, per_layer, deadlines, on_input=tick)
        clock = dev.clock
    if report.info is not None and report.info.model != built.model_id:
        raise ProtocolError(f"the device runs model {report.info.model}, but {build_dir} holds model {built.model_id}",
                            hint="the firmware on the device is not this build's: flash it again from this build folder")
    m = evaluate(dataclasses.replace(report, infers=report.infers[:n_verify]), expected, board.chip.clock_hz, clock)
    check(m)
    if len(stream):
        got = np.stack([np.frombuffer(r.output, np.int8) for r in report.infers[n_verify:]])
        m = dataclasses.replace(m, validation=_validation(build_dir, x_eval, stream, got, labels, before=inputs))
    return dataclasses.replace(m, port=device_port)


def _keeps_state(build_dir: Path) -> bool:
    """Whether the build's model carries state from one inference to the next (tinyq.model.reference.keeps_state)."""
    from tinyq.graph import load_tflite
    from tinyq.model.reference import keeps_state

    model = BuildDir(build_dir).file(BuildDir.INT8_MODEL)
    return model.is_file() and keeps_state(load_tflite(model))


def _eval_inputs(build_dir: Path, eval_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The evaluation samples (float, and as the device's int8 inputs) and their labels, checked against the model."""
    from tinyq.model import load
    from tinyq.graph import load_tflite
    from tinyq.model.quantize import device_inputs

    g = load_tflite(BuildDir(build_dir).file(BuildDir.INT8_MODEL))
    data = load.load_dataset(eval_path, what="evaluation")
    x = device_inputs(g, data, None, "evaluation")
    load.check_labels(data, x, g.output_tensors[0].size)
    return data.x, x, data.y


def _validation(build_dir: Path, x: np.ndarray, x_int8: np.ndarray, device_out: np.ndarray, labels,
                before: np.ndarray | None = None) -> dict:
    """Device outputs on the evaluation set against TFLM on the int8 model and (if kept) the float model.
    ``before``: the inputs the device ran first (a model that keeps state continues from them)."""
    from tinyq.graph import parse_tflite
    from tinyq.model.reference import TflmReference, keeps_state, run_reference
    from tinyq.report.measure import validate

    bd = BuildDir(build_dir)
    tflite = bd.file(BuildDir.INT8_MODEL).read_bytes()
    g = parse_tflite(tflite, "int8 model")
    if keeps_state(g) and before is not None and len(before):
        host = run_reference(tflite, np.concatenate([before.reshape(len(before), *x_int8.shape[1:]), x_int8]))[len(before):]
    else:
        host = run_reference(tflite, x_int8)
    if not g.single_int8_io:  # top-1 is read from the first output, in its own type (float at a float end)
        device_out, host = g.unpack("output", device_out)[0], g.unpack("output", host)[0]
    float_out = None
    float_path = bd.file(BuildDir.FLOAT_MODEL)
    if float_path.is_file() and len(g.inputs) == 1:  # the float model's first output, against the labels
        ref = TflmReference(float_path.read_bytes())
        float_out = np.stack([ref.run(s) for s in x.astype(np.float32)])
    return validate(device_out, host, labels, float_out)
