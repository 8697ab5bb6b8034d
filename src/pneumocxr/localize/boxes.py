"""Boxes from a class-activation map, and the geometry the localisation metrics share.

The rule (Zhou et al. 2016, "Learning Deep Features for Discriminative Localization", section 3: boxes
around the largest connected components of the CAM above 20% of its maximum; here the fraction is a
parameter chosen on held-apart boxed films, see ``docs/localisation.md``):

1. the Grad-CAM heatmap (feature-map grid, [0, 1], peak 1) is upsampled bilinearly to the original
   image's pixel grid;
2. pixels at or above ``threshold`` x the heatmap's peak are kept;
3. 8-connected components of the kept pixels (``skimage.measure.label``) become their bounding boxes;
   components smaller than ``min_area`` of the image are dropped;
4. a box mostly inside another (intersection over the smaller box >= ``merge_overlap``) is merged into it;
5. each box scores ``probability`` x the component's peak heatmap value; boxes are ranked by score,
   highest first, and at most ``max_boxes`` are kept.

Coordinates are original image pixels: ``x`` is the left column, ``y`` the top row, ``width`` and
``height`` in pixels (the RSNA and NIH box convention).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_BOX_THRESHOLD = 0.5  # fraction of the heatmap's peak; a run's chosen value overrides it
MIN_AREA = 0.005  # smallest box kept, as a fraction of the image area
MAX_BOXES = 4  # the RSNA readers drew at most 4 boxes per image
MERGE_OVERLAP = 0.5
RULE_FILE = Path("localisation") / "localisation.json"  # in a run directory, written by `pneumocxr localize`


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels: left column ``x``, top row ``y``, ``width``, ``height``, ``score``."""

    x: float
    y: float
    width: float
    height: float
    score: float = 1.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.width, self.height, self.score)
        if not all(np.isfinite(v) for v in values) or self.width < 0 or self.height < 0:
            raise ValueError(f"box {values} is invalid: coordinates must be finite and sizes non-negative")

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return self.width * self.height

    def contains(self, row: float, column: float, tolerance: float = 0.0) -> bool:
        """True when the point (row, column) lies inside the box grown by ``tolerance`` pixels."""
        return (
            self.x - tolerance <= column <= self.x + self.width + tolerance
            and self.y - tolerance <= row <= self.y + self.height + tolerance
        )

    def to_dict(self, digits: int = 1) -> dict[str, float]:
        """``{"x", "y", "width", "height", "score"}`` rounded for a results table (score to 4 digits)."""
        return {
            "x": round(self.x, digits),
            "y": round(self.y, digits),
            "width": round(self.width, digits),
            "height": round(self.height, digits),
            "score": round(self.score, 4),
        }

    @classmethod
    def from_dict(cls, item: dict) -> Box:
        """The inverse of ``to_dict`` (score 1 when absent)."""
        return cls(
            float(item["x"]),
            float(item["y"]),
            float(item["width"]),
            float(item["height"]),
            float(item.get("score", 1.0)),
        )


def as_array(boxes: Iterable[Box]) -> np.ndarray:
    """Boxes as a float64 (n, 4) array of (x1, y1, x2, y2) corners."""
    rows = [(b.x, b.y, b.x + b.width, b.y + b.height) for b in boxes]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def iou_matrix(first: Sequence[Box], second: Sequence[Box]) -> np.ndarray:
    """Intersection over union of every pair: float64 (len(first), len(second)), 0 for empty boxes."""
    a, b = as_array(first)[:, None, :], as_array(second)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    union = (
        (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    )
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _merge(boxes: list[Box], overlap: float) -> list[Box]:
    """Merge a box into a higher-scored one when their intersection covers ``overlap`` of the smaller."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        for i, other in enumerate(kept):
            ix = max(0.0, min(box.x + box.width, other.x + other.width) - max(box.x, other.x))
            iy = max(0.0, min(box.y + box.height, other.y + other.height) - max(box.y, other.y))
            if ix * iy >= overlap * max(min(box.area, other.area), 1e-9):
                x1, y1 = min(box.x, other.x), min(box.y, other.y)
                x2 = max(box.x + box.width, other.x + other.width)
                y2 = max(box.y + box.height, other.y + other.height)
                kept[i] = Box(x1, y1, x2 - x1, y2 - y1, other.score)
                break
        else:
            kept.append(box)
    return kept


def cam_boxes(
    heatmap: np.ndarray,
    image_shape: tuple[int, int],
    threshold: float = DEFAULT_BOX_THRESHOLD,
    probability: float = 1.0,
    min_area: float = MIN_AREA,
    max_boxes: int = MAX_BOXES,
    merge_overlap: float = MERGE_OVERLAP,
) -> list[Box]:
    """Candidate boxes from a class-activation map, in original image pixels, highest score first.

    Parameters
    ----------
    heatmap : ndarray, shape (h, w)
        Grad-CAM (or any non-negative attribution) at feature-map resolution, any scale.
    image_shape : (rows, columns)
        The original image's pixel grid the boxes are given in.
    threshold : float in (0, 1]
        Kept pixels are those at or above this fraction of the heatmap's peak.
    probability : float
        The image's pneumonia probability; each box scores ``probability`` x its component's peak.
    min_area, max_boxes, merge_overlap
        Smallest box as a fraction of the image area; most boxes returned; merge rule (module doc).

    Returns
    -------
    list of Box
        Empty when the heatmap is flat zero or no component is large enough.

    Raises
    ------
    ValueError
        When the heatmap is not 2-D or not finite, or ``threshold`` is outside (0, 1].
    """
    from skimage.measure import label, regionprops

    from pneumocxr.explain import resize_heatmap

    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2 or not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap must be a finite 2-D array (got shape {heatmap.shape})")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"box threshold {threshold} must be in (0, 1] (a fraction of the heatmap's peak)")
    peak = float(heatmap.max())
    if peak <= 0.0:
        return []
    rows, columns = int(image_shape[0]), int(image_shape[1])
    cam = resize_heatmap(heatmap / peak, (rows, columns))
    components = label(cam >= threshold * float(cam.max()), connectivity=2)
    boxes = []
    for region in regionprops(components, intensity_image=cam):
        top, left, bottom, right = region.bbox
        if (bottom - top) * (right - left) < min_area * rows * columns:
            continue
        boxes.append(
            Box(
                float(left),
                float(top),
                float(right - left),
                float(bottom - top),
                float(probability) * float(region.intensity_max),
            )
        )
    return sorted(_merge(boxes, merge_overlap), key=lambda b: -b.score)[:max_boxes]


def load_box_threshold(run_dir: str | os.PathLike) -> float:
    """The box threshold ``pneumocxr localize`` chose for a run (``RUN_DIR/localisation/localisation.json``),
    else ``DEFAULT_BOX_THRESHOLD``. Raises ``ValueError`` naming the file when it is unreadable."""
    path = Path(run_dir) / RULE_FILE
    if not path.is_file():
        return DEFAULT_BOX_THRESHOLD
    try:
        value = float(json.loads(path.read_text())["box_threshold"]["value"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no readable box_threshold.value ({exc})") from exc
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{path}: box threshold {value} is outside (0, 1]")
    return value
