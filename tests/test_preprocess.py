"""The one preprocessing function: real NIH PNG vs its DICOM twin, real Kermany JPEG, shapes and
backbone normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dicom_factory import make_dicom
from pneumocxr.preprocess import ImageReadError, load_pixels, preprocess_file, to_model_input

VGG_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


@pytest.fixture(scope="module")
def nih_png(real_data):
    return sorted((real_data / "nih" / "images").glob("*.png"))[0]


def test_png_and_its_dicom_twin_give_the_same_tensor(tmp_path, nih_png):
    pixels = np.asarray(Image.open(nih_png).convert("L"))
    twin = make_dicom(tmp_path / "twin.dcm", pixels)
    from_png, from_dicom = preprocess_file(nih_png), preprocess_file(twin)
    assert from_png.shape == (224, 224, 3) and from_png.dtype == np.float32
    np.testing.assert_array_equal(from_png, from_dicom)


def test_real_dicom_and_png_load_to_unit_range(real_data, nih_png):
    for path in (nih_png, real_data / "test_dicoms" / "test1.dcm"):
        pixels = load_pixels(path)
        assert pixels.ndim == 2 and pixels.dtype == np.float32
        assert 0.0 <= pixels.min() < 0.2 and 0.8 < pixels.max() <= 1.0


def test_real_kermany_rgb_jpeg_becomes_grey(real_data):
    path = sorted((real_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[0]
    pixels = load_pixels(path)
    assert pixels.shape == (224, 224)
    tensor = preprocess_file(path, size=128)
    assert tensor.shape == (128, 128, 3)
    np.testing.assert_allclose(tensor[..., 0] - tensor[..., 2], VGG_BGR_MEAN[2] - VGG_BGR_MEAN[0], atol=1e-3)


def test_vgg16_normalisation_of_white_and_black():
    white = np.asarray(to_model_input(np.ones((32, 32), np.float32), size=16))
    black = np.asarray(to_model_input(np.zeros((32, 32), np.float32), size=16))
    np.testing.assert_allclose(white[0, 0], 255.0 - VGG_BGR_MEAN, atol=1e-3)
    np.testing.assert_allclose(black[0, 0], -VGG_BGR_MEAN, atol=1e-3)


def test_baseline_cnn_scales_to_unit_range():
    out = np.asarray(to_model_input(np.full((8, 8), 0.5, np.float32), size=4, backbone="baseline_cnn"))
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_batch_equals_single_images(nih_png):
    image = load_pixels(nih_png)
    batch = np.asarray(to_model_input(np.stack([image, 1.0 - image]), size=64))
    assert batch.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(batch[1], np.asarray(to_model_input(1.0 - image, size=64)), atol=1e-4)


def test_area_resize_preserves_mean_brightness(nih_png):
    image = load_pixels(nih_png)
    small = np.asarray(to_model_input(image, size=224, backbone="baseline_cnn"))[..., 0]
    assert abs(small.mean() - image.mean()) < 0.01


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="broken.png"):
        load_pixels(bad)
    with pytest.raises(ValueError, match="unknown backbone"):
        to_model_input(np.zeros((4, 4), np.float32), 4, "resnet")
