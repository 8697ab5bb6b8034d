"""Feature cache: every (view, image) row served once per epoch with its label; files written once, reused by key."""

from __future__ import annotations

import keras
import numpy as np

from pneumocxr.train import features


def test_feature_dataset_yields_every_view_of_every_image_once(tmp_path):
    labels = np.array([0, 1, 1, 0, 1])
    views = [np.arange(5, dtype=np.float16).reshape(5, 1, 1, 1) + 10 * v for v in range(3)]
    batches = list(features.feature_dataset(views, labels, batch_size=4, shuffle=True, seed=1))
    x = np.concatenate([b[0].numpy() for b in batches]).ravel()
    y = np.concatenate([b[1].numpy() for b in batches]).ravel()
    assert sorted(x.tolist()) == sorted((np.arange(5)[None] + 10 * np.arange(3)[:, None]).ravel().tolist())
    np.testing.assert_array_equal(y, labels[(x % 10).astype(int)])  # each feature row keeps its own label
    assert x.tolist() != sorted(x.tolist())  # shuffled across views


def test_feature_cache_is_written_once_and_reused(tmp_path):
    inputs = keras.Input((4, 4, 3))
    bottom = keras.Model(inputs, keras.layers.AveragePooling2D(2)(inputs))
    images = np.random.default_rng(0).normal(size=(6, 4, 4, 3)).astype(np.float32)
    calls = []

    def make():
        calls.append(1)
        return [images[:4], images[4:]]

    paths = [f"img{i}.png" for i in range(6)]
    first = features.cached_features(bottom, make, paths, tmp_path, "train", "float32", layer="pool")
    again = features.cached_features(bottom, make, paths, tmp_path, "train", "float32", layer="pool")
    assert len(calls) == 1 and first.shape == (6, 2, 2, 3)
    np.testing.assert_allclose(np.asarray(again), images.reshape(6, 2, 2, 2, 2, 3).mean(axis=(2, 4)), rtol=1e-6)
    assert not list(tmp_path.glob("*.partial"))
    features.cached_features(bottom, make, paths, tmp_path, "train", "float32", layer="other")
    assert len(calls) == 2  # different settings, different key
