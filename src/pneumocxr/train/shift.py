"""Training step (model selection), shift validation: the validation patients again, under documented acquisition shifts.

A patient-wise split carved from one collection is easier than images from another site or time: the
model has seen the same detector, exposure habits, post-processing and export path. The shift
validation keeps the same validation patients (so no new data and no leak) and renders every image
``copies`` more times, each under one deterministic acquisition shift from ``SHIFTS`` at a mild or a
strong level. Model selection (best epoch, stage), calibration and the threshold are chosen on the
pooled set - plain and shifted images together - so a model or an operating point that only holds on
the familiar rendering loses there.

Each shift acts on a 2-D float32 image in [0, 1] (bright = dense) at the file's own resolution, before
the model's resize, the way a different acquisition would; sizes are fractions of the image width so
the strengths mean the same at 224 px and at 2,000 px. The strengths are the spread seen between
real radiographs of different sites (sources in ``SHIFTS``): they are meant to be plausible, not
adversarial. Every transform is deterministic given the image path and the condition.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

PLAIN = "plain"
LEVELS = ("mild", "strong")


@dataclass(frozen=True)
class Shift:
    """One kind of acquisition shift: ``apply(image, strength, sign)`` and its two strengths."""

    name: str
    apply: Callable[[np.ndarray, float, int], np.ndarray]
    strengths: tuple[float, float]  # mild, strong
    meaning: str  # what the strength is, in units, and where real radiographs vary by that much


def _gamma(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    return np.power(image, strength if sign > 0 else 1.0 / strength)


def _contrast(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    factor = strength if sign > 0 else 1.0 / strength
    mean = float(image.mean())
    return (image - mean) * factor + mean


def _blur(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(image, sigma=strength * image.shape[1], preserve_range=True)


def _sharpen(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    from skimage.filters import unsharp_mask

    return unsharp_mask(image, radius=0.01 * image.shape[1], amount=strength, preserve_range=True)


def _noise(image: np.ndarray, strength: float, sign: int, seed: int = 0) -> np.ndarray:
    return image + np.random.default_rng(seed).normal(0.0, strength, image.shape).astype(np.float32)


def _jpeg(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, "JPEG", quality=int(strength))
    buffer.seek(0)
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0


def _scale(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    from skimage.transform import AffineTransform, warp

    factor = strength if sign > 0 else 1.0 / strength  # > 1 zooms in (tighter collimation), < 1 out
    h, w = image.shape
    centre = np.array([w / 2, h / 2])
    transform = (
        AffineTransform(translation=-centre) + AffineTransform(scale=factor) + AffineTransform(translation=centre)
    )
    return warp(image, transform.inverse, order=1, mode="constant", cval=0.0, preserve_range=True)


def _rotation(image: np.ndarray, strength: float, sign: int) -> np.ndarray:
    from skimage.transform import rotate

    return rotate(image, sign * strength, order=1, mode="reflect", preserve_range=True)


SHIFTS: dict[str, Shift] = {
    s.name: s
    for s in (
        Shift(
            "exposure",
            _gamma,
            (1.25, 1.6),
            "gamma exponent (either direction): the spread of display LUTs / exposure between vendors",
        ),
        Shift(
            "contrast",
            _contrast,
            (1.25, 1.6),
            "contrast factor about the mean (either direction): window width / processing differences",
        ),
        Shift(
            "blur", _blur, (0.004, 0.009), "Gaussian sigma as a fraction of the image width: detector MTF, resampling"
        ),
        Shift(
            "sharpen",
            _sharpen,
            (0.7, 1.5),
            "unsharp-mask amount (radius a hundredth of the width): vendor edge enhancement",
        ),
        Shift(
            "noise",
            _noise,
            (0.02, 0.05),
            "Gaussian noise SD on the unit grey scale: quantum noise of low-dose or portable films",
        ),
        Shift("jpeg", _jpeg, (70, 30), "JPEG quality: lossy PACS exports and screenshots"),
        Shift(
            "scale",
            _scale,
            (1.1, 1.25),
            "zoom factor (either direction; zoom-out pads with black): collimation and patient size",
        ),
        Shift("rotation", _rotation, (5.0, 10.0), "degrees (either direction): patient positioning"),
    )
}


def conditions() -> list[str]:
    """Every shifted condition as ``"name/level"`` (16), in table order; ``"plain"`` is not among them."""
    return [f"{name}/{level}" for name in SHIFTS for level in LEVELS]


def _seed(path: str, condition: str) -> int:
    """A stable 32-bit seed for one image under one condition."""
    return zlib.crc32(f"{path}|{condition}".encode())


def apply_condition(image: np.ndarray, condition: str, path: str = "") -> np.ndarray:
    """``image`` (H, W) float32 in [0, 1] rendered under ``condition`` (``"plain"`` or ``"name/level"``).

    Returns float32 (H, W) in [0, 1]. Shifts with two directions (exposure, contrast, scale, rotation)
    and the noise draw depend only on ``path`` and ``condition``, so a condition always renders a file
    the same way. Raises ``ValueError`` for an unknown condition.
    """
    if condition == PLAIN:
        return image
    name, _, level = condition.partition("/")
    if name not in SHIFTS or level not in LEVELS:
        raise ValueError(f"unknown shift condition {condition!r}; expected 'plain' or one of {conditions()}")
    shift = SHIFTS[name]
    seed = _seed(path, condition)
    sign = 1 if seed % 2 else -1
    strength = shift.strengths[LEVELS.index(level)]
    image = np.asarray(image, dtype=np.float32)
    out = _noise(image, strength, sign, seed) if name == "noise" else shift.apply(image, strength, sign)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def shift_frame(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    """The shift-validation rows: every row of ``frame`` plain, then ``copies`` shifted renderings.

    Image ``i`` (in a fixed order) takes conditions ``(copies * i + k) mod 16`` for ``k < copies``, so
    every condition gets about ``copies * n / 16`` images and each image distinct conditions. Returns
    the rows of ``frame`` repeated, with a ``condition`` column (``"plain"`` first); patient ids are
    kept, so bootstrap CIs resample patients. Raises ``ValueError`` when ``copies`` is negative or
    above 16.
    """
    names = conditions()
    if not 0 <= copies <= len(names):
        raise ValueError(f"shift copies must be between 0 and {len(names)}, got {copies}")
    parts = [frame.assign(condition=PLAIN)]
    order = np.arange(len(frame))
    for k in range(copies):
        parts.append(frame.assign(condition=[names[(copies * i + k) % len(names)] for i in order]))
    return pd.concat(parts, ignore_index=True)


def validation_rows(frame: pd.DataFrame, copies: int, splits=()) -> pd.DataFrame:
    """The whole shift validation of a run: the ``val`` rows of ``frame`` plain and shifted
    (``shift_frame``), then the rows of each split in ``splits`` (e.g. Kermany's ``official_val``,
    original-resolution films of a later collection) unshifted, with that split as their condition."""
    missing = [name for name in splits if not (frame["split"] == name).any()]
    if missing:
        raise ValueError(
            f"shift validation split(s) {missing} have no images; splits present: {sorted(frame['split'].unique())}"
        )
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    extra = [frame[frame["split"] == name].assign(condition=name) for name in splits]
    return pd.concat([shift_frame(val, copies), *extra], ignore_index=True)


def rendering(condition: str) -> str:
    """The shift a row's condition renders with: its own for ``name/level``, else ``"plain"``
    (plain rows and rows of another split, such as ``official_val``)."""
    return condition if "/" in condition else PLAIN


def condition_table(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per condition (plain, each ``name/level``, and per level pooled): n, AUC, sensitivity,
    specificity and balanced accuracy at ``threshold``; rows of ``scored`` need ``label``,
    ``probability`` and ``condition``."""
    from pneumocxr.evaluate.metrics import metrics_at_threshold, safe_auc

    def row(name: str, part: pd.DataFrame) -> dict:
        at = metrics_at_threshold(part["label"], part["probability"], threshold)
        return {
            "condition": name,
            "n": len(part),
            "auc": safe_auc(part["label"].to_numpy(), part["probability"].to_numpy()),
            "sensitivity": at["sensitivity"],
            "specificity": at["specificity"],
            "balanced_accuracy": (at["sensitivity"] + at["specificity"]) / 2,
            "accuracy": at["accuracy"],
        }

    rows = [row(name, part) for name, part in scored.groupby("condition", sort=False)]
    level = scored["condition"].str.partition("/")[2].replace("", PLAIN)
    rows += [row(f"all/{lv}", scored[level == lv]) for lv in LEVELS if (level == lv).any()]
    rows.append(row("pooled", scored))
    return pd.DataFrame(rows)


def shift_summary(scored: pd.DataFrame, threshold: float, config) -> dict:
    """The ``shift_validation`` record of ``metrics.json``: pooled metrics with patient-bootstrap CIs
    and the ``condition_table`` rows, at ``threshold``; ``scored`` as for ``condition_table``."""
    from pneumocxr.evaluate.metrics import evaluate_predictions

    pooled = evaluate_predictions(
        scored.drop(columns="condition"), threshold, n_boot=config.threshold.n_boot, seed=config.data.seed
    )
    keys = (
        "n",
        "n_patients",
        "n_pos",
        "auc",
        "auc_ci95",
        "accuracy",
        "accuracy_ci95",
        "sensitivity",
        "sensitivity_ci95",
        "specificity",
        "specificity_ci95",
        "ece",
    )
    table = condition_table(scored, threshold)
    shifted = scored["condition"].str.contains("/", regex=False)
    return {
        "copies": int(shifted.sum() // max(1, (scored["condition"] == PLAIN).sum())),
        "pooled": {k: pooled[k] for k in keys},
        "balanced_accuracy_worst": float(table["balanced_accuracy"].min()),
        "conditions": table.to_dict(orient="records"),
        "shifts": {name: {"strengths": list(s.strengths), "meaning": s.meaning} for name, s in SHIFTS.items()},
    }


def shift_description(copies: int, splits=()) -> str:
    """What a run's validation was, for ``threshold.json``: ``"plain"`` or ``"shift (2 shifted copies + official_val)"``."""
    if not copies and not splits:
        return PLAIN
    return f"shift ({copies} shifted copies" + "".join(f" + {name}" for name in splits) + ")"
