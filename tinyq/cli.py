"""The ``tinyq`` command line.

Heavy modules (TensorFlow, the stages) are imported inside the commands, so
``tinyq --help`` and ``tinyq boards`` start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path

import click

from tinyq import __version__
from tinyq.device.devices import EMULATORS
from tinyq.errors import Interrupted, OutputPathError, TinyqError, last_line


class _UserPath(click.Path):
    """A path the user typed: refused in one line when no file system could hold it, before anything looks at it
    (``Path.exists()`` raises on a name past NAME_MAX)."""

    def __init__(self, path_type=Path):
        super().__init__(path_type=path_type)

    def convert(self, value, param, ctx):
        from tinyq.infra.outputs import path_too_long, short

        problem = path_too_long(Path(value)) if isinstance(value, (str, Path)) else None
        if problem:
            self.fail(f"{short(value)}: {problem}", param, ctx)
        return super().convert(value, param, ctx)


#: Exit status of an error tinyq did not expect (a bug), apart from 1 (a check failed) and 2 (bad input).
INTERNAL_ERROR_EXIT = 3


class _Group(click.Group):
    """Turn every :class:`TinyqError` into ``error: … (hint: …)`` and its exit code.

    Ctrl-C, SIGTERM and SIGHUP end up here too, as :class:`Interrupted`, after every
    ``finally`` on the way has stopped the emulator or worker and removed staging folders.
    """

    def invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                raise Interrupted(signal.SIGINT) from None
        except TinyqError as e:
            if ctx.obj and ctx.obj.get("verbose"):
                import traceback

                traceback.print_exc()
            click.echo(f"error: {e.message} (hint: {e.hint})", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            if not _stdout_closed():
                raise
            # `tinyq inspect m.tflite | head`: the reader has all it wanted. A normal end, said by nobody.
            _quiet_pipe_end()
        except Exception as e:  # noqa: BLE001 - a bug in tinyq: one line too, the traceback with -v
            if ctx.obj and ctx.obj.get("verbose"):
                import traceback

                traceback.print_exc()
            cause = last_line(e)
            click.echo(f"error: internal error {type(e).__name__}{': ' + cause if cause else ''} "
                       "(hint: this is a bug in tinyq: run again with -v and report the traceback)", err=True)
            ctx.exit(INTERNAL_ERROR_EXIT)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's own usage errors (a bad option value, an unknown command) in tinyq's one-line form."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as e:
            where = e.ctx.command_path if getattr(e, "ctx", None) else (prog_name or "tinyq")
            click.echo(f"error: {e.format_message()} (hint: see `{where} --help`)", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("error: aborted (hint: nothing was left half-written)", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _stdout_closed() -> bool:
    """True when nobody reads our standard output any more (the reader of its pipe has gone)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to tell
        return False


def _quiet_pipe_end() -> None:
    """Exit 0 without a word, after pointing stdout at /dev/null so the interpreter's own last flush cannot
    raise again (the way Python's documentation of SIGPIPE says to)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyq")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and tool output.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Take a trained Keras model to a microcontroller as full-int8 C, and prove it works there.

    \b
    tinyq build model.keras --board nano33 --calib calib.npy
    tinyq flash --emulator qemu
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if not verbose:
        # NumPy's and the libraries' warnings are tinyq's to say, in its own words.
        warnings.simplefilter("ignore")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the boards as JSON.")
@click.option("--ports", "ports", is_flag=True, help="List the boards connected over USB instead.")
def boards(as_json: bool, ports: bool) -> None:
    """List the boards tinyq can build for, with their memory and clock."""
    from tinyq.boards import load_boards

    if ports:
        from dataclasses import asdict

        from tinyq.device.ports import find_ports

        found = find_ports()
        if as_json:
            _echo_json([asdict(f) for f in found])
        elif not found:
            click.echo("no known board on USB (tinyq looks for the USB ids in boards/*.toml)")
        for f in ([] if as_json else found):
            click.echo(f.summary())
        return
    rows = [b.summary() for b in load_boards().values()]
    if as_json:
        _echo_json(rows)
        return
    click.echo(f"{'id':<12} {'name':<22} {'chip':<12} {'clock':>8} {'flash':>9} {'RAM':>8}  emulators")
    for r in rows:
        click.echo(
            f"{r['id']:<12} {r['name']:<22} {r['chip']:<12} {r['clock_hz'] / 1e6:>5.0f}MHz "
            f"{r['flash_bytes'] // 1024:>6} KB {r['ram_bytes'] // 1024:>5} KB  {', '.join(r['emulators'])}"
        )


def _progress(enabled: bool):
    """Stage by stage on a terminal (stderr): the running stage on a progress line, and each finished one as a
    line with its time; nothing under --json or when stderr is not a terminal."""
    if not enabled:
        return lambda s: None, lambda: None
    import time

    from tqdm import tqdm

    bar = tqdm(total=None, bar_format="{desc} [{elapsed}]", file=sys.stderr, leave=False)
    current = {"desc": None, "t0": 0.0}

    def finish() -> None:
        if current["desc"] is not None:
            bar.write(f"  {current['desc']:<58} {time.monotonic() - current['t0']:6.1f} s", file=sys.stderr)

    def step(desc: str) -> None:
        if current["desc"] is not None and desc.startswith(current["desc"] + ": "):
            bar.set_description_str(f"tinyq: {desc}")  # "STAGE: detail": a long stage's own progress (epochs)
            bar.update(0)
            return
        finish()
        current["desc"], current["t0"] = desc, time.monotonic()
        bar.set_description_str(f"tinyq: {desc}")
        bar.update(0)

    def close() -> None:
        finish()
        bar.close()

    return step, close


def _echo_outputs(out: Path, r) -> None:
    """What the build wrote, and what each is for."""
    from tinyq.report.builddir import BuildDir

    rows = [(f.elf, f"firmware for {'the QEMU twin: tinyq flash --emulator qemu' if t == 'qemu' else 'the board: tinyq flash'}"
             + (f" (also {Path(f.hex).name}, {Path(f.bin).name}; sources and platformio.ini in {Path(f.elf).parent}/src)"
                if t != "qemu" else "")) for t, f in r.firmware.items()]
    if r.arduino_library:
        rows.append((r.arduino_library, "the model as a library: Arduino (Sketch > Include Library > Add .ZIP Library; "
                     "examples classify, tinyq_run), PlatformIO (library.json) and CMake/Zephyr (CMakeLists.txt); "
                     "its API is src/tq_model.h"))
    rows.append((BuildDir.CLASSIFY_EXAMPLE + "/firmware.elf", "the classify example as bare-metal firmware for the "
                 "QEMU twin (prints a label and score; sources in src/)"))
    if (out / BuildDir.TFLM_PROJECT).is_dir():
        rows.append((BuildDir.TFLM_PROJECT + "/", "the same model as a TensorFlow Lite Micro PlatformIO project"))
    rows += [(BuildDir.INT8_MODEL, "the int8 model (tinyq inspect)"),
             (BuildDir.MANIFEST, "this report, for scripts (also --json)"),
             (BuildDir.MEMORY_PLOT, "the arena over the ops"),
             (BuildDir.VERIFY, "the inputs the device runs and the outputs it must give")]
    if r.finetune:
        rows.append((BuildDir.FINETUNED_MODEL, "the fine-tuned Keras model (tf-keras HDF5)"))
    click.echo(f"  wrote in {out}:")
    for name, what in rows:
        if (out / name.rstrip("/")).exists():
            click.echo(f"    {name:<36} {what}")


def _warn(lines) -> None:
    for w in lines:
        click.echo(f"warning: {w}", err=True)


def _kernels(graph, board=None):
    """The kernel tinyq will call for each op (a fused step names its kernel on every op it computes): as
    `build` plans for ``board`` (its weights' layout chosen for that board's flash), or without one
    with int8 weights; and that plan."""
    from tinyq.compile.budget import plan_for_board
    from tinyq.compile.plan import PlanOptions, plan_model

    out = {}
    plan = plan_for_board(graph, board, PlanOptions(weights="auto")) if board is not None else plan_model(graph)
    for st in plan.steps:
        if st.call.stages:  # a row band: each layer's own kernel, run a row at a time
            layers = [i for i in st.ops if graph.operators[i].opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")]
            for i, stage in zip(layers, st.call.stages):
                out[i] = f"{stage.label} (row band)"
            out.update({i: "tq_conv2d_add_s8 (row band)" for i in st.ops if i not in out})
        else:  # an op lowered to two steps (a subsampled strided 1x1 conv) names both kernels
            for i in st.ops:
                out[i] = f"{out[i]} + {st.call.label}" if i in out else st.call.label
    return out, plan


def _constants_line(k: dict, macs: int, when: str = "") -> str:
    """MemoryPlan.constant_channels() as `build` and `inspect` say it."""
    return (f"constant channels: {k['dropped']:,} of {k['of']:,} leave the graph{when} (their values folded into "
            f"their readers' biases, exact): {k['macs_run']:,} of {macs:,} MACs run")


def _finetune_options(f):
    """--qat, --prune, --train, --epochs, --lr, --seed: the same on `quantize` and `build`."""
    opts = [
        click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning before int8 conversion (needs --train)."),
        click.option("--prune", type=float, default=None, metavar="FRACTION",
                     help="Remove this fraction of the filters of each prunable layer while fine-tuning (needs --train)."),
        click.option("--train", "train_path", type=_UserPath(), default=None,
                     help="Labelled training data for --qat/--prune (.npz with x and y)."),
        click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Fine-tuning epochs."),
        click.option("--lr", type=float, default=1e-3, show_default=True, help="Fine-tuning learning rate (Adam, cosine decay)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fine-tuning (same seed, same model)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _finetune(qat: bool, prune: float | None, train_path: Path | None, epochs: int, lr: float, seed: int):
    """The fine-tuning asked for (None when none), checked before anything is read."""
    from tinyq.errors import CalibrationError
    from tinyq.model.optimize import FineTune

    ft = FineTune(qat=qat, prune=prune, epochs=epochs, lr=lr, seed=seed)
    if not ft.active:
        if train_path is not None:
            raise CalibrationError("--train is given but neither --qat nor --prune",
                                   hint="add --qat (quantization-aware training) and/or --prune FRACTION")
        return None
    ft.check()
    if train_path is None:
        raise CalibrationError(f"{ft.describe()} needs labelled training data", hint="give --train DATA (.npz with x and y)")
    return ft


def _echo_finetune(t: dict) -> None:
    """The float | post-training int8 | fine-tuned int8 table, and the pruning per layer."""
    a, d = t["accuracy"], t["delta_points"]
    click.echo(f"  fine-tuning: {t['method']}, {t['epochs']} epochs on {t['train_samples']} samples (seed {t['seed']})")
    if a["float"] is not None:
        cols = [("float", "float"), ("post-training int8", "ptq_int8")]
        if a.get("pruned_float") is not None:
            cols.append(("pruned float", "pruned_float"))
        cols.append((t["final_name"], "final_int8"))
        click.echo("  top-1 " + " | ".join(f"{name} {a[k]:.2%}" + (f" ({d[k]:+.2f})" if k != "float" else "")
                                          for name, k in cols) + f"  on {t['eval_samples']} samples")
    else:
        click.echo("  (give --eval DATA for the accuracy table)")
    worst = lambda key: min(t["sqnr_db"][key], key=lambda l: l["sqnr_db"], default=None)  # noqa: E731
    against = t.get("sqnr_against", {})
    for name, key in (("post-training int8", "ptq_int8"), (t["final_name"], "final_int8")):
        w = worst(key)
        if w:
            ref = f", against {against[key]}" if key in against else ""
            click.echo(f"  worst layer SQNR, {name}: {w['sqnr_db']:.1f} dB ({w['op']}{ref})")
    if against.get("ptq_int8") != against.get("final_int8"):
        # A QAT model's SQNR can look worse than post-training's while its accuracy is better (or the reverse):
        # the two are measured against different float models, so only top-1 compares the two.
        click.echo("  (the two SQNR figures have different float references and do not compare with each other; "
                   "top-1 on the same data does)")
    pr = t.get("pruning")
    if pr:
        click.echo(f"  pruned: {pr['weights'] - pr['weights_after']:,} of {pr['weights']:,} weights removed "
                   f"({pr['sparsity']:.1%}); per layer:")
        for l in pr["layers"]:
            click.echo(f"    {l['layer']:<24} {l['kind']:<8} filters {l['kept']:>4}/{l['filters']:<4} "
                       f"weights {l['weights_after']:>8,}/{l['weights']:<8,} sparsity {l['sparsity']:.1%}")


_PLOT_FORMATS = (".png", ".pdf", ".svg")


def _plot_path(given: str, model: Path) -> Path:
    """Where --plot writes: a folder gets MODEL_weights.png inside it; a name without suffix gets .png.

    ``given`` is the text as typed: a trailing slash says "a folder", and such a folder must exist (a Path
    would have dropped the slash and written DIR.png)."""
    plot = Path(given)
    if given.endswith(("/", os.sep)) and not plot.is_dir():
        raise OutputPathError(f"{given}: the folder {plot} does not exist",
                              hint="create the folder first, or give a file name such as hist.png")
    if plot.is_dir() and not plot.is_symlink():
        return plot / f"{Path(model).stem}_weights.png"
    if plot.suffix == "":
        return plot.with_name(plot.name + ".png")
    if plot.suffix.lower() not in _PLOT_FORMATS:
        raise OutputPathError(f"{plot}: --plot writes {', '.join(_PLOT_FORMATS)} files, not {plot.suffix}",
                              hint="give a .png file name")
    return plot


@cli.command()
@click.argument("model", type=_UserPath())
@click.option("--calib", required=True, type=_UserPath(), help="Calibration data: .npy, .npz or a folder of images.")
@click.option("-o", "--output", type=_UserPath(), default=None, help="Where to write the .tflite [MODEL_int8.tflite].")
@click.option("--mode", type=click.Choice(["int8", "int16x8", "float16", "dynamic"]), default="int8", show_default=True,
              help="int8 = full integer (deployable); the others are for host comparison.")
@click.option("--eval", "eval_path", type=_UserPath(), default=None, help="Evaluation data (.npz with x and optional y labels).")
@click.option("--report", type=_UserPath(), default=None, help="Write the float-vs-quantized report as JSON.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None, help="Use at most this many calibration samples.")
@click.option("--signature", default=None, help="SavedModel signature to convert [serving_default].")
@_finetune_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def quantize(model, calib, output, mode, eval_path, report, max_samples, signature, qat, prune, train_path, epochs,
             lr, seed, as_json):
    """Quantize a Keras model (.keras, .h5, SavedModel) to TFLite, and report what was lost.

    With --qat and/or --prune the model is fine-tuned on --train first; the fine-tuned Keras model
    is written beside the .tflite (same name, .h5)."""
    from tinyq.infra import isolate
    from tinyq.errors import InputFileError
    from tinyq.model.load import load_inputs
    from tinyq.infra.outputs import check_output_file, write_file_atomic

    # Every path is checked before TensorFlow starts; no output may land on an input.
    ft = _finetune(qat, prune, train_path, epochs, lr, seed)
    output = output or Path(model).with_name(f"{Path(model).stem}_{mode}.tflite")
    ins = [model, calib, eval_path, train_path]
    check_output_file(output, ins, "quantized model")
    keras_out = Path(output).with_suffix(".h5") if ft else None
    if keras_out is not None:
        if keras_out.absolute() == Path(output).absolute():
            raise OutputPathError(f"{output}: the fine-tuned Keras model would be written over it",
                                  hint="give -o a .tflite name")
        check_output_file(keras_out, ins, "fine-tuned Keras model")
    if report:
        check_output_file(report, [*ins, output], "report")
        if Path(report).absolute() == Path(output).absolute():
            raise OutputPathError(f"{report}: is also the -o output", hint="give the report another file name")
    inputs = load_inputs(model, calib, eval_path, max_samples, train_path)
    if inputs.model.format == "tflite":
        raise InputFileError(f"{model}: already a .tflite; quantize takes a Keras model or SavedModel",
                             hint=f"build it directly: tinyq build {model} --board nano33")
    step, done = _progress(not as_json and sys.stderr.isatty())
    stage = "quantizing (TensorFlow)"
    step(stage)
    try:
        q = isolate.call("tinyq.model.quantize:quantize", inputs, mode, signature=signature, finetune=ft,
                         on_progress=lambda line: step(f"{stage}: {line}"))
    finally:
        done()
    write_file_atomic(output, q.tflite)
    if keras_out is not None:
        write_file_atomic(keras_out, q.keras_model)
    data = {"output": str(output), "mode": mode, "loader": q.loader, "float_bytes": len(q.float_tflite),
            "quant_bytes": len(q.tflite), "size_ratio": round(len(q.float_tflite) / len(q.tflite), 3),
            "warnings": list(q.warnings)}
    if q.report:
        data.update(q.report.to_dict())
    if q.finetune:
        data["finetune"] = {**q.finetune, "keras_model": str(keras_out)}
    if report:
        write_file_atomic(report, (json.dumps(data, indent=2) + "\n").encode())
    _warn(q.warnings)
    if as_json:
        _echo_json(data)
        return
    click.echo(f"wrote {output} ({mode}): {data['quant_bytes']:,} B, float {data['float_bytes']:,} B, {data['size_ratio']:.2f}x smaller")
    if q.finetune:
        click.echo(f"wrote {keras_out} (the fine-tuned Keras model, tf-keras HDF5)")
        _echo_finetune(q.finetune)
    if q.report:
        r = q.report
        if r.float_accuracy is not None and r.quant_accuracy is not None:
            click.echo(f"top-1 accuracy: float {r.float_accuracy:.2%}, {mode} {r.quant_accuracy:.2%} "
                       f"({(r.quant_accuracy - r.float_accuracy) * 100:+.1f} points) on {r.samples} samples")
        click.echo(f"arg-max agreement {r.agreement:.2%}; output error mean {r.mean_abs_error:.4g}, max {r.max_abs_error:.4g}")
        if r.layers:
            click.echo("per-layer error (SQNR dB / cosine), worst first:")
            for l in sorted(r.layers, key=lambda l: l.sqnr_db)[:10]:
                click.echo(f"  {l.sqnr_db:7.2f} dB  {l.cosine:.5f}  {l.op:<18} {l.tensor[:70]}")


@cli.command()
@click.argument("model", type=_UserPath())
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--plot", type=_UserPath(str), default=None,
              help="Write per-layer weight histograms: a .png/.pdf/.svg file, or an existing folder (DIR/) to hold "
                   "MODEL_weights.png.")
@click.option("--board", "board_id", default=None,
              help="Name the kernels `build` picks for this board (its weight layout depends on the flash); "
                   "without it, those of int8 weights.")
def inspect(model, as_json, plot, board_id):
    """Show a .tflite model: ops, tensors, quantization, weights, MACs, and what tinyq cannot run."""
    from tinyq.compile.analyze import TFLITE_KINDS, analyze, tflite_kind
    from tinyq.boards import get_board
    from tinyq.graph import load_tflite
    from tinyq.infra.outputs import check_output_file

    if plot:
        plot = _plot_path(plot, model)
        check_output_file(plot, [model], "plot")
    board = get_board(board_id) if board_id else None
    g = load_tflite(model)
    a = analyze(g, gate=False)
    kernels, plan = _kernels(g, board) if not a.issues else ({}, None)
    constants = plan.constant_channels() if plan is not None else None
    data = {
        "model": str(model),
        "kind": tflite_kind(g),
        "ops": a.op_counts,
        "macs": a.macs,
        "weight_bytes": a.weight_bytes,
        "layers": [{"index": o.index, "op": o.opcode, "output_shape": list(o.output_shape), "macs": o.macs,
                    "weight_bytes": o.weight_bytes, "sparsity": o.weight_zeros, "kernel": kernels.get(o.index),
                    "empty_filters": list(o.empty_filters)} for o in a.ops],
        "tensors": [{"index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                     "constant": t.is_constant, "bytes": t.nbytes,
                     "scale": list(t.quant.scale) if t.quant else None,
                     "zero_point": list(t.quant.zero_point) if t.quant else None,
                     "per_channel": bool(t.quant and t.quant.per_channel)} for t in g.tensors],
        "constant_channels": constants,
        "compatible": not a.issues,
        "issues": [str(i) for i in a.issues],
    }
    if plot:
        from tinyq.report.inspect_plot import plot_weight_histograms

        data["plot"] = str(plot_weight_histograms(g, plot))
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{model}: {TFLITE_KINDS[data['kind']]}")
    click.echo(f"{len(g.operators)} ops, {a.macs:,} MACs, {a.weight_bytes:,} B of constants")
    click.echo("ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(a.op_counts.items())))
    click.echo(f"{'#':>3} {'op':<20} {'output':<18} {'MACs':>12} {'weights':>9} {'zeros':>6} {'empty':>7}  kernel")
    for o in a.ops:
        zeros = f"{o.weight_zeros:6.1%}" if o.weight_zeros is not None else f"{'':>6}"
        empty = f"{o.empty_filters[0]}/{o.empty_filters[1]}" if o.weight_zeros is not None else ""
        click.echo(f"{o.index:>3} {o.opcode:<20} {str(list(o.output_shape)):<18} {o.macs:>12,} {o.weight_bytes:>9,} "
                   f"{zeros} {empty:>7}  {kernels.get(o.index, '')}")
    if constants:
        click.echo(_constants_line(constants, a.macs, " at build time"))
    zero_ops = [o for o in a.ops if o.weight_zeros and o.weight_zeros > 0.2]
    if zero_ops:
        click.echo(("other " if constants else "") + "zeros are stored and multiplied like any weight; "
                   "`tinyq build --prune` removes whole filters instead")
    click.echo("tensors:")
    for t in g.tensors:
        q = ""
        if t.quant:
            q = (f"scale {t.quant.scale[0]:.4g} zp {t.quant.zero_point[0]}" if not t.quant.per_channel
                 else f"{len(t.quant.scale)} per-channel scales (axis {t.quant.axis})")
        click.echo(f"  {t.index:>3} {t.dtype:<7} {str(list(t.shape)):<18} {'const' if t.is_constant else '     '} {q:<34} {t.name[:60]}")
    if a.issues:
        click.echo("cannot run on tinyq's int8 runtime:")
        for i in a.issues:
            click.echo(f"  - {i}")
    else:
        click.echo("every op runs on tinyq's int8 runtime")
    if plot:
        click.echo(f"wrote {data['plot']}")


@cli.command()
@click.argument("model", type=_UserPath())
@click.option("--board", "board_id", required=True, help="Board id (see `tinyq boards`) or a board file (.toml).")
@click.option("--calib", type=_UserPath(), default=None,
              help="Calibration data: .npy, .npz or a folder of images (optional for an int8 .tflite).")
@click.option("--eval", "eval_path", type=_UserPath(), default=None, help="Evaluation data for the accuracy report.")
@click.option("-o", "--out", "out_dir", type=_UserPath(), default=Path("build/tinyq"), show_default=True,
              help="Build folder (replaced only when the build succeeds).")
@click.option("--mode", default="int8", show_default=True, help="Quantization mode; only int8 deploys.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None, help="Use at most this many calibration samples.")
@click.option("--signature", default=None, help="SavedModel signature to convert [serving_default].")
@_finetune_options
@click.option("--favour", type=click.Choice(["ram", "speed"]), default="ram", show_default=True,
              help="Where RAM and speed pull apart: take every arena saving, or only those that cost no time.")
@click.option("--weights", type=click.Choice(["auto", "int8", "int16"]), default="auto", show_default=True,
              help="Store conv/FC weights as int8, or as int16 pairs (2x their flash, fewer instructions); "
                   "auto: int16 while a quarter of the flash stays free.")
@click.option("--name", default=None,
              help="Name of the generated library (Arduino, PlatformIO, CMake), made a C identifier "
                   "[tinyq_<model file stem>].")
@click.option("--labels", "labels_path", type=_UserPath(), default=None,
              help="Class names for a classifier's generated API: a text file, one a line, in class order "
                   "[0..N-1].")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
def build(model, board_id, calib, eval_path, out_dir, mode, max_samples, signature, qat, prune, train_path, epochs,
          lr, seed, favour, weights, name, labels_path, as_json):
    """Quantize MODEL (Keras .keras/.h5, SavedModel, or an int8 .tflite as it is), check it against
    the board, emit C and compile the firmware."""
    from tinyq import pipeline

    ft = _finetune(qat, prune, train_path, epochs, lr, seed)
    step, done = _progress(not as_json and sys.stderr.isatty())
    try:
        res = pipeline.compile_model(model, board_id, calib, out_dir, eval_path, mode, max_samples,
                             signature=signature, finetune=ft, train_path=train_path, favour=favour,
                             weights=weights, name=name, labels_path=labels_path, progress=step)
    finally:
        done()
    r = res.report
    _warn(r.warnings)
    if as_json:
        _echo_json({"out_dir": str(res.out_dir), **r.to_dict()})
        return
    q = r.quantization
    click.echo(f"built {r.model} for {r.board} in {res.out_dir}")
    click.echo(f"  loaded with {r.loader}")
    if r.finetune:
        pass  # the fine-tuning table below says it all
    elif q.get("float_accuracy") is not None:
        click.echo(f"  accuracy (host): float {q['float_accuracy']:.2%}, int8 {q['quant_accuracy']:.2%} on {q['samples']} samples")
    elif q.get("quant_accuracy") is not None:
        click.echo(f"  accuracy (host): int8 {q['quant_accuracy']:.2%} on {q['samples']} samples")
    if q.get("size_ratio"):
        click.echo(f"  model: {q['quant_bytes']:,} B int8 ({q['size_ratio']:.2f}x smaller than float)")
    if r.finetune:
        _echo_finetune(r.finetune)
        b = r.finetune["baseline"]
        click.echo(f"  against the model as given (post-training int8): weights {r.weights_bytes:,} B vs "
                   f"{b['weights_bytes']:,} B, {r.macs:,} vs {b['macs']:,} MACs, "
                   f"arena {r.arena_bytes:,} vs {b['arena_bytes']:,} B")
    click.echo(f"  ops: {', '.join(f'{k} x{v}' for k, v in sorted(r.ops.items()))}; {r.macs:,} MACs")
    layout = "int16 pairs (faster; --weights int8 takes about half)" if r.weights == "int16" else "int8"
    click.echo(f"  weights in flash: {r.weights_bytes:,} B as {layout}")
    if r.constant_channels:
        click.echo("  " + _constants_line(r.constant_channels, r.macs))
    for b in r.bands:
        click.echo(f"  row band at step {b['step']}: {b['name']} ({b['window_bytes']:,} B of windows, "
                   f"{b['row_copies']} rows moved, nothing recomputed)")
    for layer in r.layers:
        if layer["op"] == "SUBSAMPLE":
            shape = "x".join(str(d) for d in layer["output_shape"][1:])
            click.echo(f"  subsampled copy at step {layer['step']}: op {layer['ops'][0]} (a strided 1x1 conv) reads "
                       f"{shape} taken early, so its full input dies sooner")
    tflm = f" (TFLM's host interpreter reports {r.tflm_arena_bytes:,} B)" if r.tflm_arena_bytes else ""
    click.echo(f"  arena: {r.arena_bytes:,} B{tflm}; plan drawn in {res.out_dir / r.memory['plot']}")
    for t, f in r.firmware.items():
        click.echo(f"  firmware [{t}]: flash {f.flash_bytes:,} / {f.flash_limit:,} B, "
                   f"static RAM {f.static_ram_bytes:,} B + stack {f.stack_bytes:,} B / {f.ram_limit:,} B")
    click.echo(f"  generated C matches {r.reference} bit for bit on the host ({r.host_bit_exact_inputs} inputs)")
    _echo_outputs(res.out_dir, r)


@cli.command()
@click.option("--build", "build_dir", type=_UserPath(), default=Path("build/tinyq"), show_default=True,
              help="Build folder made by `tinyq build`.")
@click.option("--port", default=None, help="Serial port of a real board (default: found on USB by its ids).")
@click.option("--no-upload", is_flag=True, help="The board already runs this build's firmware (e.g. the Arduino library's sketch): only measure.")
@click.option("--emulator", type=click.Choice(EMULATORS), default=None, help="Run on an emulator instead of a board.")
@click.option("--runs", type=click.IntRange(1, 64), default=10, show_default=True, help="Timed inferences.")
@click.option("--warmup", type=click.IntRange(0, 1000), default=2, show_default=True, help="Warm-up inferences.")
@click.option("--per-layer", is_flag=True, help="Also measure each layer.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds to wait in each phase (boot, input upload, inference); grows with input size and MACs.")
@click.option("--eval", "eval_path", type=_UserPath(), default=None,
              help="Also run every sample of this evaluation set on the device: its top-1 and agreement with the host.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement as JSON.")
def flash(build_dir, port, no_upload, emulator, runs, warmup, per_layer, timeout, eval_path, as_json):
    """Run a build on the board (found on USB, or --port) or an emulator; report latency, RAM and flash;
    verify the outputs."""
    from tinyq import pipeline

    if port and emulator:
        raise click.UsageError("give --port or --emulator, not both")
    show = not as_json and sys.stderr.isatty()
    step, done = _progress(show)
    bar = {}

    def on_sample(i: int, total: int) -> None:
        if show and "bar" not in bar:
            from tqdm import tqdm

            bar["bar"] = tqdm(total=total, desc="tinyq: inputs through the device", unit="input", file=sys.stderr, leave=False)
        if "bar" in bar:
            bar["bar"].update(i - bar["bar"].n)

    try:
        m = pipeline.run_on(build_dir, emulator, port, runs, warmup, per_layer, timeout, upload=not no_upload,
                           eval_path=eval_path, progress=step, on_sample=on_sample if eval_path else None)
    finally:
        if "bar" in bar:
            bar["bar"].close()
        done()
    if as_json:
        _echo_json(m.to_dict())
        return
    where = f"{emulator} ({m.board}, {m.target} firmware)" if emulator else f"{m.board} on {m.port or port}"
    unit = f"{m.cycles_kind} ({m.counted_by})"
    click.echo(f"ran on {where}, model {m.model}")
    click.echo(f"  latency   {m.cycles:,} {unit} median of {m.runs}  = {m.latency_us / 1000:.2f} ms at {m.board_clock_hz / 1e6:.0f} MHz")
    click.echo(f"  RAM       arena {m.arena_bytes:,} B, stack high-water {m.stack_high_water_bytes:,} B, static {m.static_ram_bytes:,} B")
    click.echo(f"  flash     {m.flash_bytes:,} B")
    click.echo(f"  outputs   {m.inputs_checked} inputs, bit-exact with the outputs the build checked on the host")
    if m.validation:
        v = m.validation
        pct = lambda x: "-" if x is None else f"{x:.2%}"  # noqa: E731
        click.echo(f"  on-device evaluation, {v['samples']} samples: top-1 {pct(v['device_top1'])} "
                   f"(host int8 {pct(v['host_int8_top1'])}, float {pct(v['float_top1'])})")
        click.echo(f"            agreement with host int8 {pct(v['top1_agreement_with_host_int8'])} "
                   f"(bit-exact {pct(v['bit_exact_with_host_int8'])}), with float {pct(v['top1_agreement_with_float'])}")
    if m.layers:
        click.echo("  per layer:")
        total = sum(c for _, c in m.layers) or 1
        for i, (op, c) in enumerate(m.layers):
            click.echo(f"    {i:>3} {op:<20} {c:>12,}  {c / total:6.1%}")


def _on_signal(signum, _frame) -> None:
    # Later signals are ignored while the clean-up of the first one runs (stopping an
    # emulator takes a moment); SIGKILL still works, and children die with tinyq then too.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def main() -> None:
    """Console entry point."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    cli(prog_name="tinyq")


if __name__ == "__main__":  # pragma: no cover
    main()
