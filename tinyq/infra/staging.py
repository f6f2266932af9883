"""Write a folder whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from tinyq.errors import OutputPathError
from tinyq.infra.outputs import default_mode_dir, scratch_prefix

#: OSErrors that mean "this place cannot take the output" rather than a bug elsewhere.
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@contextlib.contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``out_dir``; it replaces ``out_dir`` when the block succeeds.

    On any error (a signal included) the scratch folder is removed and ``out_dir`` is
    left as it was, so a failed build never leaves half-written output. The previous
    ``out_dir`` is moved aside, not deleted, until the new one is in place. Callers
    check beforehand that ``out_dir`` may be replaced (:func:`tinyq.infra.outputs.check_build_dir`).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=scratch_prefix(out_dir.name), dir=out_dir.parent))
        # mkdtemp makes 0700 folders; a build folder is an ordinary folder.
        os.chmod(tmp, default_mode_dir())
    except OSError as e:
        raise OutputPathError(f"{out_dir}: cannot create ({e.strerror})",
                              hint="choose a folder you can write to, with free space") from e
    old = None
    try:
        yield tmp
        if out_dir.exists():
            old = out_dir.with_name(f"{tmp.name}-old")
            out_dir.rename(old)
        tmp.rename(out_dir)
    except OSError as e:
        _undo(tmp, old, out_dir)
        if e.errno not in _WRITE_ERRORS:
            raise
        raise OutputPathError(f"{out_dir}: writing failed ({e.strerror})",
                              hint="choose a folder you can write to, with free space") from e
    except OutputPathError as e:
        # From a nested staged_dir: name the user's folder, not the hidden staging one.
        _undo(tmp, old, out_dir)
        raise OutputPathError(e.message.replace(str(tmp), str(out_dir)), hint=e.hint) from e
    except BaseException:
        _undo(tmp, old, out_dir)
        raise
    if old is not None:
        remove_tree(old)


def remove_tree(path: Path) -> None:
    """Remove a build folder being replaced, whole.

    A read-only folder inside it (a user's ``chmod -R a-w`` on an old build) is made writable and the
    removal tried again: ``rmtree(..., ignore_errors=True)`` alone left such a build behind as a hidden
    ``.NAME-XXXX-old`` folder. What still cannot go (not the user's to change) stays, and is said.
    """
    _force_rmtree(path)
    if os.path.lexists(path):
        raise OutputPathError(f"{path}: could not be removed completely (part of it is not yours to change)",
                              hint=f"the new build is in place; remove {path} by hand")


def _force_rmtree(path: Path) -> None:
    """rmtree that makes each read-only folder on the way writable (it is ours to remove) and tries again."""
    def writable_and_retry(func, p, _exc):
        parent = os.path.dirname(p)
        try:
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            func(p)
        except OSError:
            pass  # what is left is the caller's to report

    shutil.rmtree(path, onerror=writable_and_retry)


def _undo(tmp: Path, old: Path | None, out_dir: Path) -> None:
    _force_rmtree(tmp)
    if old is not None and not out_dir.exists():
        old.rename(out_dir)
