"""Where the model looks, measured independently of Grad-CAM.

* ``occlusion_map`` - occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding
  Convolutional Networks", ECCV 2014): the image is cut into a ``grid`` x ``grid`` lattice of patches;
  each patch in turn is replaced by a neutral grey (the image's mean) and the drop in the pneumonia
  probability is that patch's attribution. Model-agnostic (only forward passes), batched.
* ``compare_attributions`` - Grad-CAM pooled to the occlusion grid against the occlusion map: Spearman
  rank correlation, whether the two peaks fall in the same or a neighbouring cell.
* ``attribution_center_share`` - the share of positive attribution inside the central region (a border
  of ``margin`` of the height and width excluded on every side); a uniform map scores (1 - 2 margin)^2.
* ``border_dependence`` - how much the probability moves when the image border is masked with the
  image's mean grey (``mask``) or cropped away and the centre resized back (``crop``).

Every function works on grey images in [0, 1] through a ``Scorer`` (grey batch -> probabilities), so a
run's model, a Keras model or any callable can be measured the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BORDER_FRACTIONS = (0.05, 0.10, 0.20)
BORDER_MODES = ("mask", "crop")
CENTER_MARGIN = 0.125


@dataclass
class Scorer:
    """A model seen as ``grey (N, size, size) in [0, 1] -> pneumonia probability (N,)``, batched."""

    model: Any
    image_size: int
    backbone: str
    batch_size: int = 16

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        from pneumocxr.preprocess import grey_to_model_input

        grey = np.asarray(grey, dtype=np.float32)
        if grey.ndim != 3 or grey.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"scorer expects grey images (N, {self.image_size}, {self.image_size}), got {grey.shape}")
        out = []
        for start in range(0, len(grey), self.batch_size):
            inputs = grey_to_model_input(grey[start : start + self.batch_size, ..., None], self.backbone)
            scores = np.asarray(self.model(inputs, training=False), dtype=np.float32)
            out.append(scores.reshape(len(scores), -1)[:, -1])
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def run_scorer(predictor: Any, batch_size: int = 16) -> Scorer:
    """A ``Scorer`` for a loaded run (``pneumocxr.infer.load_predictor(run_dir)``: model, image_size, backbone)."""
    return Scorer(predictor.model, predictor.image_size, predictor.backbone, batch_size)


def model_grey(pixels: np.ndarray, size: int) -> np.ndarray:
    """A [0, 1] image of any shape resized exactly as the model sees it: float32 (size, size)."""
    from pneumocxr.preprocess import resize_pixels

    return np.asarray(resize_pixels(np.asarray(pixels, np.float32), size))[..., 0]


def _cells(size: int, grid: int) -> np.ndarray:
    """Edges of ``grid`` near-equal cells over ``size`` pixels: int (grid + 1,)."""
    if not 1 <= grid <= size:
        raise ValueError(f"occlusion grid {grid} must be between 1 and the image side {size}")
    return np.linspace(0, size, grid + 1).round().astype(int)


def occlusion_map(
    scorer: Callable[[np.ndarray], np.ndarray], grey: np.ndarray, grid: int = 8, fill: float | None = None
) -> np.ndarray:
    """Occlusion sensitivity of one image: float32 (grid, grid), probability drop per occluded patch.

    Parameters
    ----------
    scorer : callable
        ``grey (N, S, S) -> probabilities (N,)``, e.g. ``Scorer`` or ``run_scorer(run_dir)``.
    grey : ndarray, shape (S, S)
        The image at the model's input size, [0, 1] (``model_grey``).
    grid : int
        Patches per side (8 -> 64 patches of S/8 pixels, 65 forward passes).
    fill : float, optional
        Grey level of an occluded patch; the image's mean by default.

    Returns
    -------
    ndarray
        ``p(image) - p(image with patch occluded)``: positive where the patch supports pneumonia.
    """
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or grey.shape[0] != grey.shape[1]:
        raise ValueError(f"occlusion needs one square grey image, got shape {grey.shape}")
    edges = _cells(grey.shape[0], grid)
    value = float(grey.mean()) if fill is None else float(fill)
    batch = np.repeat(grey[None], grid * grid + 1, axis=0)
    for index in range(grid * grid):
        r, c = divmod(index, grid)
        batch[index + 1, edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = value
    scores = np.asarray(scorer(batch), dtype=np.float32)
    return (scores[0] - scores[1:]).reshape(grid, grid)


def pool_to_grid(heatmap: np.ndarray, grid: int) -> np.ndarray:
    """A heatmap averaged over a ``grid`` x ``grid`` lattice (bilinear upsampling to a multiple first)."""
    from pneumocxr.explain import resize_heatmap

    heatmap = np.asarray(heatmap, dtype=np.float32)
    scale = max(1, int(np.ceil(max(heatmap.shape) / grid)) * 4)
    fine = resize_heatmap(heatmap / max(float(heatmap.max()), 1e-12), (grid * scale, grid * scale))
    return fine.reshape(grid, scale, grid, scale).mean(axis=(1, 3))


def _peak_cell(heatmap: np.ndarray) -> tuple[int, int]:
    row, column = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(row), int(column)


def compare_attributions(cam: np.ndarray, occlusion: np.ndarray) -> dict[str, Any]:
    """Agreement of a Grad-CAM with an occlusion map of the same image.

    Returns ``spearman`` (rank correlation over the occlusion grid's cells; NaN when one map is
    constant), ``same_peak`` (the peaks share a cell), ``near_peak`` (cells at most one apart), and both
    peaks as (row, column) cells.
    """
    from scipy.stats import spearmanr

    occlusion = np.asarray(occlusion, dtype=np.float32)
    pooled = pool_to_grid(cam, occlusion.shape[0])
    flat_cam, flat_occ = pooled.ravel(), occlusion.ravel()
    constant = np.ptp(flat_cam) == 0 or np.ptp(flat_occ) == 0
    rho = float("nan") if constant else float(spearmanr(flat_cam, flat_occ).statistic)
    cam_peak, occ_peak = _peak_cell(pooled), _peak_cell(occlusion)
    distance = max(abs(cam_peak[0] - occ_peak[0]), abs(cam_peak[1] - occ_peak[1]))
    return {
        "spearman": rho,
        "same_peak": distance == 0,
        "near_peak": distance <= 1,
        "cam_peak": cam_peak,
        "occlusion_peak": occ_peak,
    }


def attribution_center_share(heatmap: np.ndarray, margin: float = CENTER_MARGIN) -> float:
    """Share of positive attribution inside the central region (``margin`` of each side excluded).

    Cells straddling the region's edge count by the fraction of their area inside it, so the answer does
    not depend on the map's resolution. Returns NaN when the map has no positive attribution; a uniform
    map gives ``(1 - 2 margin) ** 2``. Raises ``ValueError`` unless 0 <= margin < 0.5.
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"center margin {margin} must be in [0, 0.5)")
    heatmap = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    total = heatmap.sum()
    if heatmap.ndim != 2 or total <= 0:
        return float("nan")

    def inside(n: int) -> np.ndarray:
        edges = np.linspace(0.0, 1.0, n + 1)
        return np.clip(np.minimum(edges[1:], 1 - margin) - np.maximum(edges[:-1], margin), 0, None) * n

    weights = np.outer(inside(heatmap.shape[0]), inside(heatmap.shape[1]))
    return float((heatmap * weights).sum() / total)


def border_variant(grey: np.ndarray, fraction: float, mode: str) -> np.ndarray:
    """The square image with a border of ``fraction`` of its side masked (mean grey) or cropped away."""
    size = grey.shape[0]
    band = round(fraction * size)
    if mode not in BORDER_MODES:
        raise ValueError(f"border mode '{mode}' is unknown; expected one of {BORDER_MODES}")
    if not 0 < band < size / 2:
        raise ValueError(f"border fraction {fraction} must leave a centre (0 < fraction < 0.5)")
    if mode == "mask":
        out = np.full_like(grey, float(grey.mean()))
        out[band : size - band, band : size - band] = grey[band : size - band, band : size - band]
        return out
    return model_grey(grey[band : size - band, band : size - band], size)


def border_dependence(
    scorer: Callable[[np.ndarray], np.ndarray],
    greys: Sequence[np.ndarray],
    fractions: Sequence[float] = BORDER_FRACTIONS,
    modes: Sequence[str] = BORDER_MODES,
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    """How much the probability moves when the border is masked or cropped, per mode and fraction.

    Parameters
    ----------
    scorer : callable
        ``grey (N, S, S) -> probabilities (N,)``.
    greys : sequence of ndarray (S, S)
        Images at the model's input size in [0, 1] (``model_grey``), e.g. validation images.
    fractions, modes
        Border widths as fractions of the side; ``mask`` and/or ``crop``.
    threshold : float, optional
        The run's operating point: rows then also count decisions that flip.

    Returns
    -------
    list of dict
        One row per (mode, fraction): ``mean_abs_change``, ``median_abs_change``, ``max_abs_change``,
        ``mean_change`` (signed, masked minus original), ``flipped`` (count, or None), ``n``.
    """
    greys = np.stack([np.asarray(g, np.float32) for g in greys])
    base = np.asarray(scorer(greys), dtype=np.float64)
    rows = []
    for mode in modes:
        for fraction in fractions:
            variant = np.stack([border_variant(g, fraction, mode) for g in greys])
            change = np.asarray(scorer(variant), dtype=np.float64) - base
            flipped = None if threshold is None else int(((base >= threshold) != (base + change >= threshold)).sum())
            rows.append(
                {
                    "mode": mode,
                    "fraction": float(fraction),
                    "n": len(greys),
                    "mean_abs_change": float(np.abs(change).mean()),
                    "median_abs_change": float(np.median(np.abs(change))),
                    "max_abs_change": float(np.abs(change).max()),
                    "mean_change": float(change.mean()),
                    "flipped": flipped,
                }
            )
    return rows
