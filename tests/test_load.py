"""The load stage: bad model files and bad data are caught before TensorFlow starts."""

import numpy as np
import pytest

from tinyq.errors import CalibrationError, InputFileError
from tinyq.load import Dataset, check_model_file, check_shape, load_dataset


def test_recognises_the_example_model():
    from conftest import DIGITS

    assert check_model_file(DIGITS / "model.keras").format == "keras"


def test_missing_model(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        check_model_file(tmp_path / "nope.keras")


@pytest.mark.parametrize("content", [b"", b"this is not a model", b"\x00" * 100])
def test_file_that_is_not_a_model(tmp_path, content):
    p = tmp_path / "model.keras"
    p.write_bytes(content)
    with pytest.raises(InputFileError, match="not a model file"):
        check_model_file(p)


def test_zip_without_keras_config(tmp_path):
    import zipfile

    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("weights.bin", b"123")
    with pytest.raises(InputFileError, match="no config.json"):
        check_model_file(p)


def test_directory_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(InputFileError, match="not a SavedModel"):
        check_model_file(tmp_path)


def test_npz_with_labels(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((5, 4, 4, 1), np.float32), y=np.arange(5))
    d = load_dataset(p, what="evaluation")
    assert d.x.shape == (5, 4, 4, 1) and list(d.y) == [0, 1, 2, 3, 4]


def test_nan_in_calibration_data_names_the_sample(tmp_path):
    x = np.zeros((10, 4), np.float32)
    x[3, 2] = np.nan
    p = tmp_path / "c.npy"
    np.save(p, x)
    with pytest.raises(CalibrationError, match=r"NaN/inf .*first in sample 3"):
        load_dataset(p)


def test_empty_calibration_set(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, np.zeros((0, 8, 8, 1), np.float32))
    with pytest.raises(CalibrationError, match="empty"):
        load_dataset(p)


def test_few_samples_warn(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, np.zeros((5, 4), np.float32))
    assert "only 5 calibration samples" in load_dataset(p).warnings[0]


def test_cap_on_samples(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, np.zeros((300, 4), np.float32))
    assert len(load_dataset(p, max_samples=100)) == 100


def test_wrong_shape_says_both_shapes():
    d = Dataset(np.zeros((10, 28, 28), np.float32), source="calib.npy")
    with pytest.raises(CalibrationError) as e:
        check_shape(d, (8, 8, 1))
    assert "(28, 28)" in e.value.message and "(8, 8, 1)" in e.value.message


def test_single_sample_without_batch_axis():
    d = Dataset(np.zeros((8, 8, 1), np.float32), source="calib.npy")
    with pytest.raises(CalibrationError, match="one sample"):
        check_shape(d, (8, 8, 1))


def test_missing_channel_axis_is_added():
    d = Dataset(np.zeros((10, 8, 8), np.float32), source="calib.npy")
    assert check_shape(d, (8, 8, 1)).shape == (10, 8, 8, 1)


def test_strings_are_not_data(tmp_path):
    p = tmp_path / "c.npy"
    np.save(p, np.array(["a", "b"]))
    with pytest.raises(CalibrationError, match="not numbers"):
        load_dataset(p)


def test_image_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    d = load_dataset(tmp_path)
    assert d.x.shape == (3, 8, 8, 1)
    assert d.x.max() <= 1.0
