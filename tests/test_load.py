"""The load stage: bad model files and bad data are caught before TensorFlow starts."""

import numpy as np
import pytest

from tinyq.errors import CalibrationError, InputFileError
from tinyq.model.load import Dataset, check_model_file, check_shape, load_dataset


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


def _png(path, array, mode=None, **info):
    from PIL import Image

    img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    img.save(path, **info)


def test_image_modes_are_decoded_by_what_their_numbers_mean(tmp_path):
    from PIL import Image

    grey16 = np.array([[0, 65535], [32768, 1000]], np.uint16)
    (tmp_path / "g16").mkdir()
    Image.fromarray(grey16).save(tmp_path / "g16" / "a.png")
    x = load_dataset(tmp_path / "g16").x
    assert x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x[0, :, :, 0], grey16 / 65535.0, rtol=1e-6)  # not 0..257

    (tmp_path / "pal").mkdir()
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    p.putpixel((0, 0), 1)  # palette index 1 = red
    p.putpixel((1, 0), 2)  # index 2 = blue
    p.save(tmp_path / "pal" / "p.png")
    x = load_dataset(tmp_path / "pal").x
    np.testing.assert_allclose(x[0, 0], [[1, 0, 0], [0, 0, 1]])  # colours, not indices

    (tmp_path / "rgba").mkdir()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 7
    _png(tmp_path / "rgba" / "a.png", rgba)
    x = load_dataset(tmp_path / "rgba").x
    assert x.shape == (1, 2, 2, 3)  # alpha dropped
    np.testing.assert_allclose(x[0, ..., 1], 1.0)

    (tmp_path / "la").mkdir()
    la = np.full((2, 2, 2), 51, np.uint8)
    _png(tmp_path / "la" / "a.png", la, "LA")
    x = load_dataset(tmp_path / "la").x
    assert x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x, 51 / 255.0, rtol=1e-6)


def test_grey_and_colour_images_in_one_folder_become_rgb(tmp_path):
    _png(tmp_path / "a.png", np.full((3, 3), 255, np.uint8))
    _png(tmp_path / "b.png", np.zeros((3, 3, 3), np.uint8))
    x = load_dataset(tmp_path).x
    assert x.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(x[0], 1.0)


def test_one_hot_labels_become_class_ids(tmp_path):
    y = np.eye(3)[[2, 0, 1]]  # N == number of classes: no guessing, rows are one-hot
    np.savez(tmp_path / "e.npz", x=np.zeros((3, 4), np.float32), y=y)
    assert load_dataset(tmp_path / "e.npz", what="evaluation").y.tolist() == [2, 0, 1]


@pytest.mark.parametrize("labels, message", [
    (np.array(["cat", "dog"]), "labels have dtype"),
    (np.array([[0.5, 0.5], [1, 0]]), "neither class ids nor one-hot"),
    (np.array([0.5, 1.0]), "not class ids"),
    (np.array([-1, 1]), "not class ids"),
    (np.array([0, 1, 1]), "2 samples but 3 labels"),
])
def test_labels_that_are_not_class_ids_are_refused(tmp_path, labels, message):
    np.savez(tmp_path / "e.npz", x=np.zeros((2, 4), np.float32), y=labels)
    with pytest.raises(CalibrationError, match=message):
        load_dataset(tmp_path / "e.npz", what="evaluation")


def test_npz_keys(tmp_path):
    np.savez(tmp_path / "one.npz", samples=np.ones((3, 4), np.float32))
    assert load_dataset(tmp_path / "one.npz").x.shape == (3, 4)  # a single array, whatever its name
    # Several arrays without x: one per input of a model with several (by input name); a model with one refuses them.
    np.savez(tmp_path / "two.npz", images=np.ones((3, 4)), labels=np.arange(3))
    two = load_dataset(tmp_path / "two.npz")
    assert [n for n, _ in two.named] == ["images", "labels"]
    assert [a.shape for a in two.for_inputs([("labels", ()), ("images", (4,))])] == [(3,), (3, 4)]
    with pytest.raises(CalibrationError, match="no array named 'x' among images, labels"):
        check_shape(two, (4,))
    with pytest.raises(CalibrationError, match="has no array for meta"):
        two.for_inputs([("images", (4,)), ("meta", (2,))])


def test_labels_must_name_the_models_classes():
    from tinyq.model.load import check_labels

    d = Dataset(np.zeros((2, 4), np.float32), np.array([0, 9]), source="e.npz")
    check_labels(d, d.x, 10)
    with pytest.raises(CalibrationError, match="label 9 but the model has 5 classes"):
        check_labels(d, d.x, 5)


def test_tflite_is_recognised(tmp_path):
    from pathlib import Path

    tiny = Path(__file__).parent / "data" / "tiny_int8.tflite"
    assert check_model_file(tiny).format == "tflite"
