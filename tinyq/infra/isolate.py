"""Run one function in a child Python process, so its crash cannot take tinyq down silently.

TensorFlow's converter and calibrator are C++; on some models (recurrent layers) they
segfault. Run in-process, that kills tinyq with exit 139 and nothing said. Here the
call runs in a child (``python -m tinyq.infra.isolate``): its stdout and stderr (TensorFlow's
own messages and, on a crash, Python's fault handler report) go to a log file, and a
crash comes back as a :class:`~tinyq.errors.TinyqError` naming the signal, what the
child was doing (:func:`note`) and the log. The child is tied to tinyq's life
(:mod:`tinyq.infra.proc`): a signal to tinyq stops it too.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tinyq import errors

_NOTE_ENV = "TINYQ_ISOLATE_NOTE"
_PROGRESS_ENV = "TINYQ_ISOLATE_PROGRESS"


def in_worker() -> bool:
    """True inside a child started by :func:`call` (its output goes to the log, not the terminal)."""
    return _NOTE_ENV in os.environ


def note(doing: str, **facts: Any) -> None:
    """Record what the worker is doing now; a crash report quotes the last note."""
    path = os.environ.get(_NOTE_ENV)
    if path:
        Path(path).write_text(json.dumps({"doing": doing, **facts}, default=str))


def progress(text: str) -> None:
    """Tell the parent how far a long call is (one line, e.g. an epoch's loss); shown on its progress bar."""
    path = os.environ.get(_PROGRESS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text.replace("\n", " ") + "\n")


def log_dir() -> Path:
    """Where worker logs are kept ($TMPDIR/tinyq-logs)."""
    return Path(tempfile.gettempdir()) / "tinyq-logs"


def call(func: str, *args: Any, what: str = "TensorFlow", on_progress: Callable[[str], None] | None = None,
         crash_hint: str | None = None, **kwargs: Any) -> Any:
    """Call ``func`` ("module:name") with the arguments in a child process; return its result.

    ``on_progress`` receives each line the child passes to :func:`progress`, as it comes.
    ``crash_hint`` is the hint of a crash (default: one about TensorFlow's converter).

    A :class:`TinyqError` raised in the child is raised here as it was. Any other
    failure, a crash by a signal included, becomes a :class:`QuantizationError` whose
    message names the signal and the log file holding the child's output. The log is
    removed when the call succeeds.
    """
    from tinyq.infra.proc import spawn, stop

    logs = log_dir()
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = logs / f"{func.split(':')[-1]}-{stamp}-{os.getpid()}.log"
    with tempfile.TemporaryDirectory(prefix="tinyq-worker-") as tmp:
        req, resp, note_file = Path(tmp) / "request", Path(tmp) / "response", Path(tmp) / "note"
        progress_file = Path(tmp) / "progress"
        req.write_bytes(pickle.dumps((func, args, kwargs)))
        env = {**os.environ, _NOTE_ENV: str(note_file), _PROGRESS_ENV: str(progress_file), "PYTHONFAULTHANDLER": "1"}
        with log.open("wb") as out:
            proc = spawn([sys.executable, "-m", "tinyq.infra.isolate", str(req), str(resp)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
            try:
                code = _wait(proc, progress_file, on_progress)
            finally:
                stop(proc)
        if code == 0 and resp.is_file():
            kind, payload = pickle.loads(resp.read_bytes())
            if kind == "ok":
                log.unlink(missing_ok=True)
                return payload
            cls_name, message, hint, expected = payload
            cls = getattr(errors, cls_name, errors.QuantizationError)
            if expected:  # a TinyqError: the message says it all, the log holds nothing more
                log.unlink(missing_ok=True)
                raise cls(message, hint=hint)
            raise cls(message, hint=f"{hint}; {what}'s output is in {log}")
        facts = _facts(note_file)
        if code < 0:
            how = f"crashed ({signal.Signals(-code).name})"
        else:
            how = f"exited with status {code}"
        raise errors.QuantizationError(f"{what} {how} while {facts.get('doing', 'starting')}; its output is in {log}",
                                       hint=crash_hint or _crash_hint(facts))


def _wait(proc, progress_file: Path, on_progress: Callable[[str], None] | None) -> int:
    """Wait for the child, passing its progress lines on as they are written."""
    if on_progress is None:
        return proc.wait()
    seen = 0
    while True:
        code = proc.poll()
        try:
            text = progress_file.read_text(encoding="utf-8")
        except OSError:
            text = ""
        # Only whole lines: the child may be half-way through writing the last one.
        done = text[seen:text.rfind("\n") + 1] if "\n" in text[seen:] else ""
        for line in done.splitlines():
            on_progress(line)
        seen += len(done)
        if code is not None:
            return code
        time.sleep(0.2)


def _facts(path: Path) -> dict:
    """The worker's last note ({} when it wrote none, or died writing it)."""
    try:
        facts = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return facts if isinstance(facts, dict) else {}


def _crash_hint(facts: dict) -> str:
    suspects = facts.get("suspect_layers") or []
    if suspects:
        return (f"the model has {', '.join(suspects)}: TFLite's int8 converter crashes on or cannot run "
                "such layers on a microcontroller; replace them (e.g. with Conv1D or Dense layers)")
    return "the crash is inside TensorFlow; the log names the place; try `tinyq quantize` with -v"


def _worker(req: Path, resp: Path) -> int:
    func, args, kwargs = pickle.loads(req.read_bytes())
    module, name = func.split(":")
    import importlib

    try:
        result = ("ok", getattr(importlib.import_module(module), name)(*args, **kwargs))
    except errors.TinyqError as e:
        # A failed conversion keeps its log (TensorFlow's own messages); a refused input needs none.
        result = ("error", (type(e).__name__, e.message, e.hint, not isinstance(e, errors.QuantizationError)))
    except Exception as e:  # noqa: BLE001 - everything else is reported, with its traceback in the log
        import traceback

        traceback.print_exc()
        result = ("error", ("QuantizationError", f"{type(e).__name__}: {errors.last_line(e)}".rstrip(": "),
                            "an unexpected error inside TensorFlow", False))
    resp.write_bytes(pickle.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1]), Path(sys.argv[2])))
