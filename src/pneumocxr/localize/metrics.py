"""Localisation metrics against reference boxes, each a mean over images with a bootstrap CI.

* ``rsna_image_score`` / ``rsna_map``: the RSNA Pneumonia Detection Challenge metric (Kaggle 2018,
  "Evaluation"; Shih et al., Radiol AI 2019). At each IoU threshold t in 0.40:0.05:0.75, predicted
  boxes are taken in descending confidence; each is a hit (TP) when its IoU with a not yet matched
  reference box is greater than t (the best such box is matched), otherwise a FP; unmatched reference
  boxes are FN. The image scores TP / (TP + FP + FN) averaged over the thresholds. Empty images: no
  reference and no predicted box -> the image is left out of the mean; no reference but any predicted
  box -> 0; reference boxes but none predicted -> 0. The challenge averages the image scores.
* ``best_box_iou``: IoU of the top-ranked predicted box with the reference box it overlaps most
  (0 when no box is predicted), on images that have reference boxes.
* ``pointing_hit`` / pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
  ECCV 2016): a hit when the heatmap's maximum falls inside a reference box (tolerance in pixels,
  0 by default; the paper used 15). Images without reference boxes are not scored.
* ``mean_with_ci``: mean of per-image values with a percentile bootstrap over images (or patients),
  the same resampling as ``pneumocxr.evaluate.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pneumocxr.evaluate.metrics import _percentile_interval, resample_multiplicity
from pneumocxr.explain import heatmap_peak
from pneumocxr.localize.boxes import Box, iou_matrix

RSNA_IOU_THRESHOLDS = tuple(round(0.40 + 0.05 * i, 2) for i in range(8))  # 0.40, 0.45, ..., 0.75


def rsna_image_score(
    predicted: Sequence[Box], reference: Sequence[Box], thresholds: Sequence[float] = RSNA_IOU_THRESHOLDS
) -> float | None:
    """The RSNA challenge score of one image (module doc), or None when both box lists are empty.

    Parameters
    ----------
    predicted : sequence of Box
        The model's boxes with their ``score`` (confidence); any order.
    reference : sequence of Box
        The readers' boxes (scores ignored).
    thresholds : sequence of float
        IoU thresholds; a hit needs IoU strictly greater than the threshold.
    """
    if not predicted and not reference:
        return None
    if not predicted or not reference:
        return 0.0
    order = sorted(range(len(predicted)), key=lambda i: -predicted[i].score)
    ious = iou_matrix([predicted[i] for i in order], reference)
    scores = []
    for threshold in thresholds:
        matched = np.zeros(len(reference), bool)
        tp = 0
        for row in ious:
            candidates = np.where(~matched & (row > threshold), row, -1.0)
            best = int(np.argmax(candidates))
            if candidates[best] > threshold:
                matched[best] = True
                tp += 1
        fp, fn = len(predicted) - tp, len(reference) - tp
        scores.append(tp / (tp + fp + fn))
    return float(np.mean(scores))


def best_box_iou(predicted: Sequence[Box], reference: Sequence[Box]) -> float | None:
    """IoU of the highest-scored predicted box with its best reference box; 0 without a prediction,
    None when the image has no reference box."""
    if not reference:
        return None
    if not predicted:
        return 0.0
    top = max(predicted, key=lambda b: b.score)
    return float(iou_matrix([top], reference).max())


def pointing_hit(
    heatmap: np.ndarray, image_shape: tuple[int, int], reference: Sequence[Box], tolerance: float = 0.0
) -> bool | None:
    """Whether the heatmap's maximum (cell centre, in original pixels) falls in a reference box.

    None when the image has no reference box; False when the heatmap is flat zero (no maximum).
    """
    if not reference:
        return None
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.max() <= 0:
        return False
    row_fraction, column_fraction = heatmap_peak(heatmap)
    row, column = row_fraction * image_shape[0], column_fraction * image_shape[1]
    return any(box.contains(row, column, tolerance) for box in reference)


def mean_with_ci(
    values: Sequence[float | None], groups: Any = None, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Mean of the non-None values with a percentile bootstrap ``(ci_low, ci_high)`` and ``n``.

    ``groups`` (one per value, e.g. patient ids) makes the bootstrap resample whole groups. Returns
    NaNs for an empty input.
    """
    values = list(values)
    keep = [i for i, v in enumerate(values) if v is not None]
    data = np.asarray([float(values[i]) for i in keep], dtype=np.float64)
    if data.size == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    group_values = None if groups is None else np.asarray(groups, dtype=object)[keep]
    counts, codes = resample_multiplicity(group_values, data.size, n_boot, seed)
    weights = counts[:, codes]  # (n_boot, n): how often each value is drawn
    totals = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ data) / totals
    low, high = _percentile_interval(means, alpha)
    return {"value": float(data.mean()), "ci_low": low, "ci_high": high, "n": int(data.size)}
