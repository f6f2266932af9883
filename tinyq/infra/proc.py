"""Child processes whose life is tied to tinyq's: emulators and the TensorFlow worker.

Every child tinyq starts runs in a process group of its own, so stopping it stops
whatever it started in turn (a ``renode`` launcher that runs mono without ``exec``).
On Linux the kernel is also asked to kill the child if tinyq dies without running
its clean-up (SIGKILL), so no emulator is ever left running at 100 % CPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Iterator, Sequence

_PR_SET_PDEATHSIG = 1


def _tie_to_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(cmd: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, killed with tinyq (``kwargs`` go to Popen)."""
    return subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=_tie_to_parent, **kwargs)


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """Stop ``proc`` and everything in its process group: SIGTERM, then SIGKILL after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if proc.poll() is None or _group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            if not _group_alive(proc.pid):
                return
        except subprocess.TimeoutExpired:
            continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@contextlib.contextmanager
def running(cmd: Sequence[str], **kwargs) -> Iterator[subprocess.Popen]:
    """``spawn`` as a context manager that always ``stop``s the child and its group."""
    proc = spawn(cmd, **kwargs)
    try:
        yield proc
    finally:
        stop(proc)
