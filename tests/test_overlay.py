"""Tests for pneumocxr.overlay: the Secondary Capture's overlay pixels drawn without matplotlib."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from pneumocxr import explain, overlay


def test_jet_is_matplotlibs_jet():
    expected = np.round(colormaps["jet"](np.arange(256))[:, :3] * 255).astype(int)  # matplotlib's 256 colours
    assert np.abs(overlay.JET_TABLE.astype(int) - expected).max() <= 1
    assert overlay.jet(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])).tolist()[::2] == [
        [0, 0, 128],
        [123, 255, 123],
        [128, 0, 0],
    ]
    assert overlay.JET_TABLE.shape == (256, 3) and overlay.JET_TABLE.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1024, 1024), (1024, 8), (8, 1024), (3, 900), (1, 1)])
def test_overlay_is_bounded_and_keeps_the_aspect(shape):
    rgb = overlay.overlay_rgb(np.full(shape, 0.5, np.float32), np.ones((4, 4), np.float32), "t")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[1] <= explain.OVERLAY_MAX_PX[0] and rgb.shape[0] <= explain.OVERLAY_MAX_PX[1]
    height, (width, image_height), _ = overlay.layout(shape)
    assert height == rgb.shape[0]
    if min(shape) >= 8:
        assert abs(width / image_height - shape[1] / shape[0]) / (shape[1] / shape[0]) < 0.15


def _image_region(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels where the image was drawn."""
    _, (width, height), (x, y) = overlay.layout(shape)
    return rgb[y : y + height, x : x + width].astype(int)


def test_heatmap_colours_where_it_is_hot_and_only_there():
    shape = (200, 300)
    pixels = np.tile(np.linspace(0.2, 0.8, shape[1], dtype=np.float32), (shape[0], 1))
    plain = _image_region(overlay.overlay_rgb(pixels, None, "t"), shape)
    assert (plain[..., 0] == plain[..., 1]).all() and (plain[..., 1] == plain[..., 2]).all()  # grey
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0  # hot in the top-left corner
    image = _image_region(overlay.overlay_rgb(pixels, heat, "t"), shape)
    h, w = image.shape[:2]
    top_left, bottom_right = image[: h // 8, : w // 8], image[-h // 4 :, -w // 4 :]
    assert (top_left[..., 0] - top_left[..., 2]).mean() > 40  # dark red: 0.4 * jet(1) = (51, 0, 0) over grey
    assert (bottom_right[..., 2] - bottom_right[..., 0]).mean() > 40  # dark blue: 0.4 * jet(0)
    # the blend: 60 % grey + 40 % jet(0) = (0, 0, 127.5) at the cold corner
    grey = plain[-h // 4 :, -w // 4 :, 0]
    assert np.abs(bottom_right[..., 2] - (0.6 * grey + 0.4 * 128)).max() <= 2


def test_boxes_and_title_are_drawn():
    shape = (400, 400)
    pixels = np.zeros(shape, np.float32)
    box = {"x": 100, "y": 100, "width": 200, "height": 200, "score": 0.9}
    plain = overlay.overlay_rgb(pixels, None, "P(pneumonia) = 0.900")
    boxed = overlay.overlay_rgb(pixels, None, "P(pneumonia) = 0.900", boxes=[box], box_scale=0.5)
    _, (width, _), (x, y) = overlay.layout(shape)
    scale = 0.5 * width / shape[1]
    changed = np.argwhere((boxed != plain).any(axis=-1))
    assert len(changed)
    assert changed[:, 1].min() >= x + round(100 * scale) - 2 and changed[:, 1].max() <= x + round(300 * scale) + 2
    assert changed[:, 0].min() >= y + round(100 * scale) - 2 and changed[:, 0].max() <= y + round(300 * scale) + 2
    assert (boxed[y + round(100 * scale), x + round(100 * scale) + 1] == 255).all()  # white dashed edge
    other = overlay.overlay_rgb(pixels, None, "P(pneumonia) = 0.100")
    band = slice(0, overlay.TITLE_BAND)
    assert (plain[band] < 128).any() and (plain[band] != other[band]).any()
    assert (plain[overlay.TITLE_BAND :] == other[overlay.TITLE_BAND :]).all()


def test_a_long_title_is_fitted_not_cut_off_the_canvas():
    rgb = overlay.overlay_rgb(np.zeros((50, 50), np.float32), None, "x" * 400)
    assert rgb.shape[1] == overlay.WIDTH
    assert (rgb[: overlay.TITLE_BAND, : overlay.MARGIN // 2] == 255).all()  # nothing drawn into the margin
