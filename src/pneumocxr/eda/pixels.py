"""Exploratory data analysis step, pixel statistics: the real NIH PNGs present, read once through ``load_pixels``.

Per-image intensity percentiles, sizes and effective pixel spacing (millimetres per pixel after the
PNG export), intensity histograms per group (pneumonia, other finding, no finding) and the mean and
standard-deviation images; ``pixel_summary`` is the ``pixels`` key of ``eda.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pneumocxr.preprocess import load_pixels

PIXEL_GROUPS = ("pneumonia", "other finding", "no finding")


@dataclass
class PixelStatistics:
    """Per-image pixel statistics, intensity histograms and mean/std images of the real PNGs."""

    table: pd.DataFrame
    histograms: np.ndarray
    bin_edges: np.ndarray
    mean_image: np.ndarray
    std_image: np.ndarray


def pixel_group(df: pd.DataFrame) -> pd.Series:
    """'pneumonia', 'other finding' or 'no finding' for each image."""
    groups = np.where(df["label"] == 1, "pneumonia", np.where(df["n_findings"] == 0, "no finding", "other finding"))
    return pd.Series(groups, index=df.index, name="group")


def read_pixel_statistics(images: pd.DataFrame, bins: int = 64) -> PixelStatistics:
    """Load every image in ``images`` (rows with a ``path``) once; per-image stats, histograms, mean image."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, histograms, total, total_sq, shape = [], [], None, None, None
    for row, group in zip(images.itertuples(index=False), pixel_group(images)):
        pixels = load_pixels(row.path).astype(np.float64)
        if shape is None:
            shape, total, total_sq = pixels.shape, np.zeros(pixels.shape), np.zeros(pixels.shape)
        if pixels.shape == shape:
            total += pixels
            total_sq += pixels**2
        histograms.append(np.histogram(pixels, bins=edges, density=True)[0])
        p05, p50, p95 = np.percentile(pixels, [5, 50, 95])
        rows.append(
            {
                "image_index": row.image_index,
                "patient_id": row.patient_id,
                "group": group,
                "png_height": pixels.shape[0],
                "png_width": pixels.shape[1],
                "mean": pixels.mean(),
                "std": pixels.std(),
                "p05": p05,
                "median": p50,
                "p95": p95,
                "original_width": row.width,
                "original_pixel_spacing": row.pixel_spacing_x,
                "effective_pixel_spacing": row.pixel_spacing_x * row.width / pixels.shape[1],
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError("read_pixel_statistics: no image rows with a path were given")
    n_same = int(((table["png_height"] == shape[0]) & (table["png_width"] == shape[1])).sum())
    mean = total / n_same
    std = np.sqrt(np.maximum(total_sq / n_same - mean**2, 0.0))
    return PixelStatistics(table, np.vstack(histograms), edges, mean.astype(np.float32), std.astype(np.float32))


def pixel_summary(stats: PixelStatistics) -> dict:
    """How many real images the pixel statistics rest on, per group, sizes and intensity summaries."""
    table = stats.table
    sizes = (table["png_width"].astype(str) + "x" + table["png_height"].astype(str)).value_counts()
    spacing = table["effective_pixel_spacing"]
    return {
        "n_images": int(len(table)),
        "n_patients": int(table["patient_id"].nunique()),
        "groups": {g: int((table["group"] == g).sum()) for g in PIXEL_GROUPS},
        "png_size": {str(k): int(v) for k, v in sizes.items()},
        "intensity": {
            g: {
                "mean": float(part["mean"].mean()),
                "std": float(part["std"].mean()),
                "median": float(part["median"].median()),
            }
            for g, part in table.groupby("group")
        },
        "effective_pixel_spacing": {
            "median": float(spacing.median()),
            "min": float(spacing.min()),
            "max": float(spacing.max()),
        },
    }
