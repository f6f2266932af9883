"""Where tinyq may write: every output path is checked before any slow work starts.

The rules keep a user's files safe whatever they type after ``-o``:

* a build folder is replaced only when it is empty or is itself a tinyq build folder
  (it holds ``build.json`` written by tinyq), never the current folder, one of its
  parents, or a folder holding one of the command's inputs;
* an output file never lands on one of the command's inputs, on a folder, or behind
  a symbolic link;
* the folder an output goes into must exist (for files) and be writable, which is
  proven by creating and removing a scratch entry there, not guessed from
  permission bits (root passes every ``os.access`` test).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from tinyq.errors import OutputPathError

#: The file that marks a folder as a tinyq build folder (written last by the build).
MANIFEST = "build.json"


def _abs(path: Path) -> Path:
    # absolute() keeps symbolic links visible (resolve() would follow them).
    return Path(os.path.abspath(path))


def _contains(folder: Path, path: Path) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (both resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def is_build_dir(path: Path) -> bool:
    """True when ``path`` is a folder written by ``tinyq build`` (its manifest names tinyq)."""
    manifest = Path(path) / MANIFEST
    try:
        return "tinyq" in json.loads(manifest.read_text())
    except (OSError, ValueError, TypeError):
        return False


def scratch_prefix(name: str) -> str:
    """The prefix of a hidden scratch entry beside ``name``: short, whatever the length of ``name``
    (a name near the file system's limit would otherwise make its scratch twin's too long)."""
    return f".{name[:40]}-"


def path_too_long(path: Path) -> str | None:
    """Why the file system cannot hold ``path`` (a name past NAME_MAX, the whole past PATH_MAX), or None.

    Asked before any other look at a path the user typed: ``Path.exists()`` itself raises on such names.
    """
    path = _abs(Path(path))
    try:
        name_max, path_max = os.pathconf(path.anchor or "/", "PC_NAME_MAX"), os.pathconf(path.anchor or "/", "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    long = [n for n in (len(os.fsencode(p)) for p in path.parts) if n > name_max]
    if long:
        return f"a name of {long[0]:,} bytes; the file system takes {name_max}"
    if len(os.fsencode(str(path))) >= path_max:
        return f"a path of {len(os.fsencode(str(path))):,} bytes; the system takes {path_max - 1}"
    return None


def short(path) -> str:
    """``path`` for a message: whole when short, its first 60 characters and an ellipsis when not."""
    text = str(path)
    return text if len(text) <= 80 else text[:60] + "…"


def _check_lengths(path: Path, given: Path) -> None:
    problem = path_too_long(path)
    if problem:
        raise OutputPathError(f"{short(given)}: {problem}", hint="give a shorter name")


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists; a file on the way is an error."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: cannot be created, {parent} is a file, not a folder",
                                      hint="choose an output path whose parent is a folder")
            return parent
    return Path(path.anchor)


def _prove_writable(folder: Path, what: Path) -> None:
    """Create and remove a scratch entry in ``folder``; raise OutputPathError naming ``what``."""
    try:
        scratch = tempfile.mkdtemp(prefix=".tinyq-probe-", dir=folder)
        os.rmdir(scratch)
    except OSError as e:
        reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(e.errno, e.strerror)
        raise OutputPathError(f"{what}: cannot write in {folder} ({reason})",
                              hint="choose a folder you can write to, with free space") from e


def check_build_dir(out_dir: Path, inputs: Iterable[Path] = ()) -> Path:
    """Check that ``out_dir`` may be (re)placed by a build; return its absolute path.

    Raises :class:`OutputPathError` naming the path, before any work is done.
    """
    out = _abs(Path(out_dir))
    _check_lengths(out, out_dir)
    if out.is_symlink():
        raise OutputPathError(f"{out_dir}: is a symbolic link; tinyq does not replace links",
                              hint="give the real folder, or a new folder name")
    cwd = Path.cwd().resolve()
    if _contains(out, cwd):
        raise OutputPathError(f"{out_dir}: is the current folder or one of its parents; a build would replace it",
                              hint="give a new folder for the build, e.g. -o build/tinyq")
    for i in inputs:
        if i is not None and _contains(out, _abs(Path(i))):
            raise OutputPathError(f"{out_dir}: holds the input {i}; a build would replace it",
                                  hint="give a new folder for the build, e.g. -o build/tinyq")
    if out.exists():
        if not out.is_dir():
            raise OutputPathError(f"{out_dir}: is a file, not a folder",
                                  hint="give a new folder for the build, e.g. -o build/tinyq")
        if any(out.iterdir()) and not is_build_dir(out):
            raise OutputPathError(f"{out_dir}: is a folder that is neither empty nor a tinyq build folder",
                                  hint="tinyq replaces only empty folders and its own build folders: give a new folder")
        _check_removable(out, out_dir)
    _prove_writable(_existing_ancestor(out), out)
    return out


def _check_removable(folder: Path, given: Path) -> None:
    """A build folder about to be replaced must be removable whole, or the old one would be left behind
    half-deleted: every folder in it writable by us, or ours to make writable (its owner is us)."""
    uid = os.geteuid()
    # Each folder once: the top, then every folder as its parent lists it (os.walk cannot enter one we may
    # not read, so it is judged from its parent's listing, never from its own).
    folders = [str(folder), *(os.path.join(top, n) for top, names, _ in os.walk(folder) for n in names)]
    for d in folders:
        if not os.path.islink(d) and not os.access(d, os.W_OK | os.X_OK) and os.stat(d).st_uid != uid:
            raise OutputPathError(f"{given}: holds {os.path.relpath(d, folder)}, a folder that is not yours and "
                                  "not writable: the old build could not be replaced whole",
                                  hint="give a new folder for the build, or remove the old one first")


def check_output_file(path: Path, inputs: Iterable[Path] = (), what: str = "output") -> Path:
    """Check that ``path`` may be written as a file; return its absolute path."""
    out = _abs(Path(path))
    _check_lengths(out, path)
    if out.is_symlink():
        raise OutputPathError(f"{path}: is a symbolic link; tinyq does not write through links",
                              hint=f"give a plain file name for the {what}")
    if out.is_dir():
        raise OutputPathError(f"{path}: is a folder, not a file", hint=f"give a file name for the {what}")
    for i in inputs:
        if i is not None and Path(i).exists() and out.exists() and os.path.samefile(out, i):
            raise OutputPathError(f"{path}: is one of this command's inputs; tinyq never writes over its inputs",
                                  hint=f"give another file name for the {what}")
    if not out.parent.is_dir():
        _existing_ancestor(out)  # a file on the way is its own message
        raise OutputPathError(f"{path}: the folder {out.parent} does not exist",
                              hint="create the folder first, or choose another path")
    _prove_writable(out.parent, out)
    return out


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a scratch file renamed over it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=scratch_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputPathError(f"{path}: cannot write ({e.strerror})",
                              hint="choose a folder you can write to, with free space") from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode_dir() -> int:
    """The mode a folder made with mkdir would get (0777 less the umask)."""
    return 0o777 & ~_umask()
