"""Tests for pneumocxr.explain: Grad-CAM follows the evidence, overlays are drawn and saved.

The Grad-CAM test uses a toy task whose answer is known (a bright square somewhere = positive,
noise only = negative): synthetic images for plumbing of the explanation method, not a result.
"""

from __future__ import annotations

import numpy as np
import pytest

from pneumocxr import explain

SIZE, SQUARE = 32, 8


def toy_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noise images (N, SIZE, SIZE, 1); half carry a bright square at a random place (label 1)."""
    images = rng.uniform(0.0, 0.3, size=(n, SIZE, SIZE, 1)).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, SIZE - SQUARE + 1, size=2)
        images[i, top : top + SQUARE, left : left + SQUARE] = 1.0
    return images, labels


def image_with_square(top: int, left: int, rng: np.random.Generator) -> np.ndarray:
    """One noise image (1, SIZE, SIZE, 1) with the square at (top, left)."""
    image = rng.uniform(0.0, 0.3, size=(1, SIZE, SIZE, 1)).astype(np.float32)
    image[0, top : top + SQUARE, left : left + SQUARE] = 1.0
    return image


@pytest.fixture(scope="module")
def toy_model():
    """A tiny flat CNN trained to find the square (it reaches near-perfect accuracy in seconds)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="toy_last_conv")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    images, labels = toy_images(512, np.random.default_rng(0))
    model.fit(images, labels, epochs=8, batch_size=32, verbose=0)
    held_out, held_labels = toy_images(128, np.random.default_rng(1))
    accuracy = model.evaluate(held_out, held_labels, verbose=0)[1]
    assert accuracy > 0.95, f"toy model did not learn the square (held-out accuracy {accuracy:.2f})"
    return model


def test_last_conv_layer_is_found(toy_model):
    assert explain.last_conv_layer_name(toy_model) == "toy_last_conv"


def test_gradcam_peak_lies_on_the_square_and_moves_with_it(toy_model):
    rng = np.random.default_rng(2)
    grad_model = explain.gradcam_model(toy_model)
    corners = {"top-left": (2, 2), "bottom-right": (22, 22), "top-right": (2, 22)}
    batch = np.concatenate([image_with_square(t, l, rng) for t, l in corners.values()])
    heatmaps = explain.gradcam_heatmaps(grad_model, batch)
    assert heatmaps.shape == (3, SIZE // 2, SIZE // 2)
    assert heatmaps.min() >= 0.0 and np.allclose(heatmaps.max(axis=(1, 2)), 1.0)
    peaks = []
    for heatmap, (top, left) in zip(heatmaps, corners.values()):
        row, col = explain.heatmap_peak(heatmap)
        peaks.append((row, col))
        # the hottest cell lies on the square (allowing one feature-map cell of blur around it)
        assert (top - 2) / SIZE <= row <= (top + SQUARE + 2) / SIZE, (row, top)
        assert (left - 2) / SIZE <= col <= (left + SQUARE + 2) / SIZE, (col, left)
    assert len(set(peaks)) == 3  # the heatmap moved with the evidence


def test_gradcam_of_an_empty_image_is_not_centred_on_a_square(toy_model):
    grad_model = explain.gradcam_model(toy_model)
    noise = np.random.default_rng(3).uniform(0.0, 0.3, size=(1, SIZE, SIZE, 1)).astype(np.float32)
    with_square = noise.copy()
    with_square[0, 2 : 2 + SQUARE, 2 : 2 + SQUARE] = 1.0
    probabilities = toy_model.predict(np.concatenate([noise, with_square]), verbose=0)[:, 0]
    assert probabilities[0] < 0.5 < probabilities[1]
    heatmaps = explain.gradcam_heatmaps(grad_model, np.concatenate([noise, with_square]))
    square_mass = heatmaps[:, :6, :6].sum(axis=(1, 2)) / np.maximum(heatmaps.sum(axis=(1, 2)), 1e-9)
    assert square_mass[1] > 0.5 and square_mass[1] > square_mass[0]


def test_model_without_conv_layer_is_refused():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="dense_only")
    with pytest.raises(ValueError, match="dense_only"):
        explain.last_conv_layer_name(model)


def test_resize_and_peak():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[3, 0] = 1.0
    assert explain.heatmap_peak(heatmap) == (0.875, 0.125)
    big = explain.resize_heatmap(heatmap, (64, 48))
    assert big.shape == (64, 48) and 0.0 <= big.min() and big.max() <= 1.0
    assert explain.heatmap_peak(big)[0] > 0.75 and explain.heatmap_peak(big)[1] < 0.25


def test_overlay_png_and_rgb(tmp_path):
    pixels = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1))
    heatmap = np.eye(5, dtype=np.float32)
    title = explain.decision_title("test1.dcm", 0.7312, 0.5, "pneumonia")
    assert title == "test1.dcm: P(pneumonia) = 0.731, threshold 0.500 -> pneumonia"
    fig = explain.overlay_figure(pixels, heatmap, title)
    assert fig.axes[0].get_title() == f"{title}\nDecision aid, not a diagnosis"
    assert len(fig.axes) == 2  # image and colour bar
    rgb = explain.figure_rgb(fig)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.std() > 10
    path = explain.save_figure(fig, tmp_path / "sub" / "overlay.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert explain.decision_title("x.dcm", None, 0.5, None) == "x.dcm: not analysed"
