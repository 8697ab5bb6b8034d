"""Training augmentation layers (pneumocxr.train.augment): what they change, what they keep."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pneumocxr.train.augment import BorderErasing, RandomGamma


@pytest.fixture(scope="module")
def batch(real_data):
    from pneumocxr.preprocess import load_pixels, resize_pixels

    paths = sorted((real_data / "kermany" / "train" / "PNEUMONIA").glob("*.jpeg"))[:8]
    return np.stack([np.asarray(resize_pixels(load_pixels(p), 64)) for p in paths])  # (8, 64, 64, 1)


def test_border_erasing_paints_only_edge_bands_with_one_level_per_image(batch):
    out = np.asarray(BorderErasing(factor=0.2, rate=1.0, seed=3)(batch, training=True))
    centre = (slice(None), slice(14, 50), slice(14, 50))  # never within 20 % of an edge
    np.testing.assert_array_equal(out[centre], batch[centre])
    changed = out != batch
    assert changed.any(axis=(1, 2, 3)).sum() >= 6  # nearly every image got a band somewhere
    for image, mask in zip(out, changed):
        if mask.any():
            assert np.unique(image[mask]).size == 1  # one grey level per image


def test_border_erasing_rate_zero_and_inference_leave_images_alone(batch):
    np.testing.assert_array_equal(np.asarray(BorderErasing(0.2, rate=0.0, seed=1)(batch, training=True)), batch)
    np.testing.assert_array_equal(np.asarray(BorderErasing(0.2, rate=1.0, seed=1)(batch, training=False)), batch)
    with pytest.raises(ValueError, match="factor < 0.5"):
        BorderErasing(0.6)


def test_random_gamma_is_monotone_per_image_and_varies_exposure(batch):
    out = np.asarray(RandomGamma(0.5, seed=2)(batch, training=True))
    means = out.mean(axis=(1, 2, 3)) - batch.mean(axis=(1, 2, 3))
    assert (means > 0.005).any() and (means < -0.005).any()  # brighter and darker images
    for image, source in zip(out, batch):
        order = np.argsort(source.ravel(), kind="stable")
        assert np.all(np.diff(image.ravel()[order]) >= -1e-6)  # grey order kept
    np.testing.assert_array_equal(np.asarray(RandomGamma(0.5)(batch, training=False)), batch)


def test_layers_survive_a_safe_mode_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((32, 32, 1)), BorderErasing(0.1, 0.5, seed=4), RandomGamma(0.2, seed=5)])
    model.save(tmp_path / "aug.keras")
    again = keras.saving.load_model(tmp_path / "aug.keras", safe_mode=True)
    assert [type(layer).__name__ for layer in again.layers] == ["BorderErasing", "RandomGamma"]
    assert again.layers[0].get_config()["factor"] == 0.1 and again.layers[1].get_config()["factor"] == 0.2
