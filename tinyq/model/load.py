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
    #: The dtype the samples were stored in (int8 samples are already quantized model inputs).
    stored_dtype: str = "float32"
    #: For a model with several inputs: the samples of each, by input name (an .npz keyed by input name;
    #: ``x`` is then the first of them).
    named: tuple[tuple[str, np.ndarray], ...] = ()

    def for_inputs(self, inputs: list[tuple[str, tuple[int, ...]]], what: str = "calibration") -> list[np.ndarray]:
        """The samples of each of ``inputs`` ((name, shape without the batch), in the model's order), each
        checked against its shape: a model with one input takes ``x``, one with several the named arrays."""
        if len(inputs) == 1:
            return [check_shape(self, inputs[0][1], what)]
        listing = ", ".join(f"{n} {tuple(s)}" for n, s in inputs)
        have = dict(self.named)
        missing = [n for n, _ in inputs if n not in have]
        if missing:
            raise CalibrationError(
                f"{self.source}: the model has {len(inputs)} inputs ({listing}); the {what} data "
                + (f"has no array for {', '.join(missing)}" if have else "is one array"),
                hint="give an .npz with one array per input, keyed by input name: "
                     f"np.savez(path, {', '.join(f'{n}=...' for n, _ in inputs)}, y=labels)")
        out = []
        for name, shape in inputs:
            part = Dataset(have[name], self.y, f"{self.source}[{name}]")
            out.append(check_shape(part, shape, what))
        if len({len(a) for a in out}) > 1:
            raise CalibrationError(f"{self.source}: the inputs' arrays hold different numbers of samples "
                                   f"({', '.join(f'{n}: {len(a)}' for (n, _), a in zip(inputs, out))})",
                                   hint="give every input the same samples, in the same order")
        return out

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True, eq=False)
class LoadedInputs:
    """What the quantize stage needs: the model file, calibration data, optional evaluation data."""

    model: ModelFile
    calib: Dataset | None   # None only for a pre-quantized .tflite
    eval: Dataset | None
    train: Dataset | None = None   # labelled training data for QAT / pruning


def check_model_file(path: Path) -> ModelFile:
    """Recognise a .keras archive, an HDF5 .h5 file, a SavedModel directory or a .tflite flatbuffer."""
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
    if len(head) == 8 and head[4:8] == b"TFL3":
        return ModelFile(path, "tflite")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if "config.json" in z.namelist():
                return ModelFile(path, "keras")
        raise InputFileError(f"{path}: a zip file but not a Keras model (no config.json inside)")
    raise InputFileError(
        f"{path}: not a model file (neither a .keras archive, an HDF5 .h5 file, a SavedModel folder nor a .tflite)",
        hint="save the model with model.save('model.keras'), or pass a SavedModel folder or an int8 .tflite",
    )


def _image_array(img) -> tuple[np.ndarray, bool]:
    """One PIL image as float32 in 0..1 (H, W, 1 or 3), and whether it has colour.

    Each mode is decoded by what its numbers mean: 16-bit greys are divided by 65535,
    palette images are looked up in their palette, an alpha channel is dropped.
    """
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img).astype(np.float32)
        scale = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return (a / scale)[..., None], False
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None], False
    if mode in ("1", "L", "LA"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None], False
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # RGB, RGBA, CMYK, YCbCr, ...
    return rgb, True


def _load_images(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"{folder}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    arrays = []
    for p in files:
        try:
            with Image.open(p) as img:
                arrays.append(_image_array(img))
        except OSError as e:
            raise InputFileError(f"{p}: not a readable image ({e})") from e
    if any(colour for _, colour in arrays):
        # A folder that mixes grey and colour images: greys become RGB (three equal channels).
        arrays = [(a if colour else np.repeat(a, 3, axis=-1), True) for a, colour in arrays]
    shapes = {a.shape for a, _ in arrays}
    if len(shapes) > 1:
        raise CalibrationError(f"{folder}: images have different shapes {sorted(shapes)}", hint="resize them to the model's input size")
    return np.stack([a for a, _ in arrays])


def _labels(y: np.ndarray, path: Path, n: int) -> np.ndarray:
    """Labels as class ids (N,): ids as they are, one-hot rows turned into ids, anything else refused."""
    y = np.asarray(y)
    if y.dtype.kind not in "iubf":
        raise CalibrationError(f"{path}: labels have dtype {y.dtype}; tinyq takes class ids (0, 1, 2, ...) or one-hot rows",
                               hint="map the label names to class ids, e.g. with np.unique(y, return_inverse=True)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if len(y) != n:
            raise CalibrationError(f"{path}: {n} samples but {len(y)} labels")
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise CalibrationError(f"{path}: labels shaped {y.shape} are neither class ids nor one-hot rows",
                                   hint="give labels as class ids shaped (samples,) or one-hot rows shaped (samples, classes)")
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim != 1:
        raise CalibrationError(f"{path}: labels shaped {y.shape}; tinyq takes class ids shaped (samples,) or one-hot rows")
    if len(y) != n:
        raise CalibrationError(f"{path}: {n} samples but {len(y)} labels")
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or (len(y) and y.min() < 0):
        raise CalibrationError(f"{path}: labels are not class ids (whole numbers from 0)",
                               hint="give labels as class ids (0, 1, 2, ...) or one-hot rows")
    return y.astype(np.int64)


def load_dataset(path: Path, max_samples: int | None = None, what: str = "calibration") -> Dataset:
    """Read samples from .npy, .npz (``x`` and optional labels ``y``, or a single array) or an image folder."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such {what} file")
    y = None
    named: tuple[tuple[str, np.ndarray], ...] = ()
    try:
        if path.is_dir():
            x = _load_images(path)
        elif path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise CalibrationError(f"{path}: the .npz holds no arrays")
                if "x" in z.files:
                    x = z["x"]
                    y = z["y"] if "y" in z.files else None
                elif len(z.files) == 1:
                    x = z[z.files[0]]
                else:  # one array per input of a model with several, keyed by input name (and labels y)
                    named = tuple((k, z[k]) for k in z.files if k != "y")
                    x = named[0][1]
                    y = z["y"] if "y" in z.files else None
        else:
            raise InputFileError(f"{path}: {what} data must be .npy, .npz or a folder of images")
    except (ValueError, OSError, EOFError) as e:
        raise InputFileError(f"{path}: not a readable NumPy file ({e})") from e
    if named:  # each input's array checked as a dataset of its own
        parts = [(name, _checked(path, arr, None, max_samples, what, f" '{name}'")[0]) for name, arr in named]
        x, y = _checked(path, parts[0][1], y, None, what, "")
        return Dataset(x, y, str(path), _few(len(x), what), str(named[0][1].dtype), tuple(parts))
    stored = str(x.dtype)
    x, y = _checked(path, x, y, max_samples, what, "")
    return Dataset(x, y, str(path), _few(len(x), what), stored)


def _few(n: int, what: str) -> tuple[str, ...]:
    if what == "calibration" and n < MIN_CALIB_SAMPLES:
        return (f"only {n} calibration samples; int8 ranges may be poor (use {MIN_CALIB_SAMPLES}+)",)
    return ()


def _checked(path: Path, x: np.ndarray, y, max_samples: int | None, what: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples as float32 (and labels as class ids), refused where they are not numbers, empty or not finite."""
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise CalibrationError(f"{path}: {what} data{name} has dtype {x.dtype}, not numbers")
    if x.ndim == 0 or len(x) == 0:
        raise CalibrationError(f"{path}: the {what} set{name} is empty", hint="give at least a few hundred representative samples")
    if y is not None:
        y = _labels(y, path, len(x))
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
        raise CalibrationError(
            f"{path}: {int(bad.sum())} NaN/inf values in the {what} data{name} (first in sample {first})",
            hint="clean or drop those samples",
        )
    if max_samples is not None:
        x, y = x[:max_samples], (y[:max_samples] if y is not None else None)
    return x, y


def check_labels(data: Dataset, x: np.ndarray, classes: int) -> None:
    """Check that ``data``'s labels (if any) name classes the model has (``classes`` outputs)."""
    if data.y is None:
        return
    if classes < 2:
        raise CalibrationError(f"{data.source}: labels given, but the model has {classes} output; top-1 needs classes",
                               hint="leave out the labels (y) for a model that is not a classifier")
    if len(data.y) and int(data.y.max()) >= classes:
        raise CalibrationError(f"{data.source}: label {int(data.y.max())} but the model has {classes} classes (0..{classes - 1})",
                               hint="give class ids counted from 0, or one-hot rows")


def check_shape(data: Dataset, input_shape: tuple[int, ...], what: str = "calibration") -> np.ndarray:
    """Return the samples shaped (N, *input_shape) or raise a CalibrationError saying what differs.

    ``input_shape`` excludes the batch dimension. A missing trailing channel of 1 is added.
    """
    if len(data.named) > 1:
        raise CalibrationError(f"{data.source}: no array named 'x' among {', '.join(n for n, _ in data.named)}, "
                               f"and the model has one input (arrays by input name are for a model with several)",
                               hint="save the samples as x (and labels as y): np.savez(path, x=..., y=...)")
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


def load_inputs(model: Path, calib: Path | None, eval: Path | None = None, max_calib: int | None = None,
                train: Path | None = None) -> LoadedInputs:
    """The load stage: check the model file and read the data files.

    Calibration data are required to quantize a Keras model or SavedModel; a pre-quantized
    int8 .tflite needs none (given, its samples become the verification inputs).
    """
    mf = check_model_file(model)
    if calib is None and mf.format != "tflite":
        raise CalibrationError(f"{model}: --calib is required to quantize a {mf.format} model",
                               hint="give representative input samples (.npy, .npz or an image folder); "
                                    "int8 ranges are measured on them")
    training = load_dataset(train, None, "training") if train is not None else None
    if training is not None and training.y is None:
        raise CalibrationError(f"{train}: the training data has no labels",
                               hint="give an .npz with x (samples) and y (class ids or one-hot rows)")
    return LoadedInputs(
        model=mf,
        calib=load_dataset(calib, max_calib, "calibration") if calib is not None else None,
        eval=load_dataset(eval, None, "evaluation") if eval is not None else None,
        train=training,
    )
