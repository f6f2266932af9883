"""Load stage: check the model file and read calibration / evaluation data, without TensorFlow.

Everything that can be wrong with the user's files is found here, before the
(slow) quantize stage starts TensorFlow.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyq.errors import CalibrationError, InputFileError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm"}
#: Fewer calibration samples than this gives noisy activation ranges.
MIN_CALIB_SAMPLES = 50


@dataclass(frozen=True)
class ModelFile:
    """A model file whose format has been recognised: "keras", "h5" or "savedmodel"."""

    path: Path
    format: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples (N, *input_shape) float32, with optional integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True, eq=False)
class LoadedInputs:
    """What the quantize stage needs: the model file, calibration data, optional evaluation data."""

    model: ModelFile
    calib: Dataset
    eval: Dataset | None


def check_model_file(path: Path) -> ModelFile:
    """Recognise a .keras archive, an HDF5 .h5 file or a SavedModel directory."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory", hint="check the model path")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return ModelFile(path, "savedmodel")
        raise InputFileError(
            f"{path}: a directory but not a SavedModel (no saved_model.pb)",
            hint="pass a .keras file, a .h5 file or a SavedModel directory",
        )
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from e
    if head == _HDF5_SIGNATURE:
        return ModelFile(path, "h5")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if "config.json" in z.namelist():
                return ModelFile(path, "keras")
        raise InputFileError(f"{path}: a zip file but not a Keras model (no config.json inside)")
    raise InputFileError(
        f"{path}: not a Keras model (neither a .keras archive, an HDF5 file nor a SavedModel)",
        hint="save the model with model.save('model.keras')",
    )


def _load_images(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"{folder}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    arrays = []
    for p in files:
        try:
            img = np.asarray(Image.open(p), dtype=np.float32) / 255.0
        except OSError as e:
            raise InputFileError(f"{p}: not a readable image ({e})") from e
        arrays.append(img[..., None] if img.ndim == 2 else img)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise CalibrationError(f"{folder}: images have different shapes {sorted(shapes)}", hint="resize them to the model's input size")
    return np.stack(arrays)


def load_dataset(path: Path, max_samples: int | None = None, what: str = "calibration") -> Dataset:
    """Read samples from .npy, .npz (``x`` or the first array; labels ``y`` if present) or an image folder."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such {what} file")
    y = None
    try:
        if path.is_dir():
            x = _load_images(path)
        elif path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise CalibrationError(f"{path}: the .npz holds no arrays")
                key = "x" if "x" in z.files else z.files[0]
                x = z[key]
                for label_key in ("y", "labels", "label"):
                    if label_key in z.files:
                        y = z[label_key]
                        break
        else:
            raise InputFileError(f"{path}: {what} data must be .npy, .npz or a folder of images")
    except (ValueError, OSError, EOFError) as e:
        raise InputFileError(f"{path}: not a readable NumPy file ({e})") from e
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise CalibrationError(f"{path}: {what} data has dtype {x.dtype}, not numbers")
    if x.ndim == 0 or len(x) == 0:
        raise CalibrationError(f"{path}: the {what} set is empty", hint="give at least a few hundred representative samples")
    if y is not None and len(y) != len(x):
        raise CalibrationError(f"{path}: {len(x)} samples but {len(y)} labels")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
        raise CalibrationError(
            f"{path}: {int(bad.sum())} NaN/inf values in the {what} data (first in sample {first})",
            hint="clean or drop those samples",
        )
    if max_samples is not None:
        x, y = x[:max_samples], (y[:max_samples] if y is not None else None)
    warnings = ()
    if what == "calibration" and len(x) < MIN_CALIB_SAMPLES:
        warnings = (f"only {len(x)} calibration samples; int8 ranges may be poor (use {MIN_CALIB_SAMPLES}+)",)
    return Dataset(x, None if y is None else np.asarray(y).astype(np.int64), str(path), warnings)


def check_shape(data: Dataset, input_shape: tuple[int, ...], what: str = "calibration") -> np.ndarray:
    """Return the samples shaped (N, *input_shape) or raise a CalibrationError saying what differs.

    ``input_shape`` excludes the batch dimension. A missing trailing channel of 1 is added.
    """
    x = data.x
    want = tuple(input_shape)
    if x.shape[1:] == want:
        return x
    if want and want[-1] == 1 and x.shape[1:] == want[:-1]:
        return x[..., None]
    if x.shape == want:
        raise CalibrationError(
            f"{data.source}: {what} data is one sample shaped {x.shape}; expected (samples, {', '.join(map(str, want))})",
            hint="stack the samples along a new first axis",
        )
    raise CalibrationError(
        f"{data.source}: {what} samples are shaped {x.shape[1:]} (array {x.shape}) but the model's input is {want}",
        hint=f"give an array shaped (samples, {', '.join(map(str, want))})",
    )


def load_inputs(model: Path, calib: Path, eval: Path | None = None, max_calib: int | None = None) -> LoadedInputs:
    """The load stage: check the model file and read the data files."""
    return LoadedInputs(
        model=check_model_file(model),
        calib=load_dataset(calib, max_calib, "calibration"),
        eval=load_dataset(eval, None, "evaluation") if eval is not None else None,
    )
