"""Exploratory data analysis step: every EDA number, table and figure, from the dataset loaders.

``tables`` (the metadata tables and the ``eda.json`` summary, keys documented there), ``pixels`` (the
pixel statistics of the real NIH PNGs present), ``figures`` (metadata figures) and ``image_figures``
(RSNA and pixel figures). ``run_eda(root, out_dir)`` computes them all and writes PNG figures, CSV
tables and ``eda.json``; it lives here so neither figures module imports the tables' module back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from pneumocxr.datasets import with_images
from pneumocxr.eda.figures import (
    plot_age_distribution,
    plot_comorbidity,
    plot_cooccurrence,
    plot_finding_frequency,
    plot_findings_per_image,
    plot_images_per_patient,
    plot_official_split,
    plot_pneumonia_rate,
    plot_sex_and_view,
)
from pneumocxr.eda.image_figures import (
    plot_image_size_spacing,
    plot_mean_image,
    plot_pixel_intensity,
    plot_rsna_box_sizes,
    plot_rsna_labels,
)
from pneumocxr.eda.pixels import PixelStatistics, read_pixel_statistics
from pneumocxr.eda.tables import compute_summary, compute_tables, load_eda_inputs
from pneumocxr.runs import write_json

log = logging.getLogger(__name__)

__all__ = ["EdaResult", "all_figures", "run_eda", "save_figures"]


def all_figures(
    nih: pd.DataFrame, tables: dict[str, pd.DataFrame], pixels: PixelStatistics, summary: dict
) -> dict[str, Figure]:
    """Every EDA figure by name (file name without .png)."""
    rates = {name: tables[f"pneumonia_rate_by_{name}"] for name in ("age_band", "sex", "view")}
    comorbidity = tables["comorbidity_with_pneumonia"].set_index("finding")["n_pneumonia_images"]
    return {
        "age_distribution": plot_age_distribution(nih),
        "sex_and_view": plot_sex_and_view(nih),
        "images_per_patient": plot_images_per_patient(nih),
        "finding_frequency": plot_finding_frequency(tables["finding_frequency"]),
        "findings_per_image": plot_findings_per_image(tables["findings_per_image"]),
        "cooccurrence_heatmap": plot_cooccurrence(tables["cooccurrence"].set_index("finding")),
        "comorbidity_with_pneumonia": plot_comorbidity(
            comorbidity, summary["n_pneumonia_images"], summary["n_pneumonia_alone"]
        ),
        "pneumonia_rate_by_group": plot_pneumonia_rate(rates, summary["pneumonia_prevalence"]["per_image"]),
        "official_split": plot_official_split(tables["official_split"].set_index("split"), nih),
        "rsna_labels": plot_rsna_labels(tables["rsna_classes"], summary["rsna"]["boxes_per_image"]),
        "rsna_box_sizes": plot_rsna_box_sizes(tables["rsna_boxes"]),
        "pixel_intensity_by_finding": plot_pixel_intensity(pixels),
        "image_size_and_spacing": plot_image_size_spacing(nih, pixels),
        "mean_image": plot_mean_image(pixels),
    }


def save_figures(figures: dict[str, Figure], out_dir: str | os.PathLike, dpi: int = 110) -> dict[str, Path]:
    """Write each figure as ``out_dir/<name>.png``, close it, and return the paths by name."""
    paths = {}
    for name, figure in figures.items():
        paths[name] = Path(out_dir) / f"{name}.png"
        figure.savefig(paths[name], dpi=dpi, bbox_inches="tight")
        plt.close(figure)
    return paths


@dataclass
class EdaResult:
    """What ``run_eda`` computed and wrote: the eda.json summary, tables and figure paths."""

    summary: dict
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Path] = field(default_factory=dict)


def run_eda(root: str | os.PathLike, out_dir: str | os.PathLike) -> EdaResult:
    """Compute the whole EDA from data root ``root``; write figures, CSV tables and eda.json to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = load_eda_inputs(root)
    images = with_images(inputs.nih)
    if images.empty:
        raise FileNotFoundError(f"{Path(root) / 'nih' / 'images'}: no NIH PNG images; the pixel statistics need some")
    pixels = read_pixel_statistics(images)
    tables = compute_tables(inputs, pixels)
    summary = compute_summary(inputs, tables, pixels)
    figures = save_figures(all_figures(inputs.nih, tables, pixels, summary), out_dir)
    for name, table in tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
    summary["figures"] = sorted(path.name for path in figures.values())
    summary["tables"] = sorted(f"{name}.csv" for name in tables)
    write_json(out_dir / "eda.json", summary)
    log.info("EDA: %d figures, %d tables and eda.json written to %s", len(figures), len(tables), out_dir)
    return EdaResult(summary=summary, tables=tables, figures=figures)
