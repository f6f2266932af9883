"""The one error family of tinyq.

Every error a user can cause or meet carries a message (what is wrong) and a hint
(what to do about it). The CLI prints ``error: <message> (hint: <hint>)`` and exits
with ``exit_code``; a traceback appears only with ``-v``.
"""

from __future__ import annotations


def last_line(e: BaseException) -> str:
    """The last non-empty line of an exception's text ("" if none): where Keras, TensorFlow and
    most libraries put the cause, after their context."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return lines[-1] if lines else ""


class TinyqError(Exception):
    """Base of every error tinyq raises on purpose."""

    #: Default hint for the class; an instance may pass a more specific one.
    default_hint = "run with -v for details"
    #: 2 = the input or the environment is wrong; 1 = the check ran and failed.
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return f"{self.message} (hint: {self.hint})"


class InputFileError(TinyqError):
    """A model, calibration or evaluation file is missing, unreadable or malformed."""

    default_hint = "check the path and that the file is what its extension says"


class OutputPathError(TinyqError):
    """An output path would overwrite the user's files, or cannot be written."""

    default_hint = "give a new folder or file name"


class CalibrationError(TinyqError):
    """Calibration or evaluation data does not fit the model."""

    default_hint = "give an array shaped (samples, *model_input_shape)"


class BoardError(TinyqError):
    """A board id is unknown or a board file is invalid."""

    default_hint = "run `tinyq boards` to list the known boards"


class UnsupportedModelError(TinyqError):
    """The model uses an op, dtype or shape the deploy runtime cannot run."""

    default_hint = "quantize with --mode int8 and use only the ops listed by `tinyq inspect`"


class QuantizationError(TinyqError):
    """TensorFlow could not convert or quantize the model."""

    default_hint = "check that every layer has an int8 TFLite builtin kernel"


class FineTuneError(TinyqError):
    """QAT or pruning cannot be done on this model or with these settings."""

    default_hint = "QAT and pruning fine-tune tf-keras models; see the README's section on fine-tuning"


class BudgetError(TinyqError):
    """The model does not fit the board's flash or RAM."""

    default_hint = "use a smaller model or a board with more memory"


class ToolchainError(TinyqError):
    """A required external tool (compiler, emulator, uploader) is missing or failed to start."""

    default_hint = "run the README's setup command, which installs the toolchain"


class BuildError(TinyqError):
    """Compiling or linking the firmware failed."""

    default_hint = "run with -v to see the compiler output"


class TransportError(TinyqError):
    """The serial port or emulator socket could not be opened or was lost."""

    default_hint = "check the port name, that no other program has it open, and your permissions (dialout group)"


class EmulatorExitedError(TinyqError):
    """The emulator process ended while tinyq was talking to it (it failed to start, or the firmware crashed it)."""

    default_hint = "the emulator's own message is above; run with -v for the whole transcript"


class DeviceTimeoutError(TinyqError):
    """The device or emulator stopped answering (hang, crash, lockup)."""

    default_hint = "the firmware may have overflowed RAM or faulted; rebuild with -v and check the map file"


class ProtocolError(TinyqError):
    """The device printed something that does not follow the tinyq line protocol."""

    default_hint = "flash firmware built by this version of tinyq"


class VerificationError(TinyqError):
    """The device ran, but its outputs differ from the host reference."""

    default_hint = "report this as a bug with the model and the JSON report attached"
    exit_code = 1


class Interrupted(TinyqError):
    """tinyq was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); everything it started is stopped too."""

    default_hint = "nothing was left half-written; run the command again"

    def __init__(self, signum: int):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.signum = signum
        # The shell's convention: 128 + the signal number.
        self.exit_code = 128 + signum
