"""TensorFlow, imported quietly and only when a stage needs it (the quantize stage and its fine-tuning).

Importing TensorFlow takes seconds and prints start-up notes; `tinyq --help` must do neither.
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def quiet():
    """Silence what TensorFlow's C++ and Python print to fd 1 and 2 while converting.

    The converter prints artefact paths and MLIR notes that would bury tinyq's own
    report; the exception text still says what failed.
    """
    import sys
    import warnings

    from tinyq.infra.isolate import in_worker

    if in_worker():
        # In the worker process fd 1 and 2 are its log file: keep everything TensorFlow says there.
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    import io

    with open(os.devnull, "wb") as null, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    if "tensorflow" not in sys.modules:
        with quiet():  # absl/oneDNN start-up notes go to fd 2 before any log level applies
            import tensorflow  # noqa: F401
    import tensorflow as tf

    return tf
