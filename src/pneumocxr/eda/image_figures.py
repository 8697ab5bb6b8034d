"""Exploratory data analysis step, image figures: RSNA labels and boxes, and the pixel statistics of the real PNGs.

Same conventions as ``figures`` (its colours and bar labels): every function returns a matplotlib
``Figure`` with a title, axis labels and units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pneumocxr.eda.figures import ALL_COLOUR, GROUP_COLOURS, PNEUMONIA_COLOUR, label_bars
from pneumocxr.eda.pixels import PIXEL_GROUPS, PixelStatistics
from pneumocxr.plotting import styled


@styled
def plot_rsna_labels(rsna_classes: pd.DataFrame, boxes_per_image: dict[str, int]) -> Figure:
    """RSNA class balance (three classes) and number of boxes per image."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.4, 1]})
    total = rsna_classes["n_images"].sum()
    colours = [PNEUMONIA_COLOUR if c == "Lung Opacity" else ALL_COLOUR for c in rsna_classes["class"]]
    bars = axes[0].bar(rsna_classes["class"].str.replace(" / ", " /\n"), rsna_classes["n_images"], color=colours)
    label_bars(axes[0], bars, [f"{n:,} ({100 * n / total:.1f}%)" for n in rsna_classes["n_images"]])
    axes[0].set(
        title=f"Class balance ({total:,} images)",
        ylabel="Images (count)",
        xlabel="RSNA class",
        ylim=(0, rsna_classes["n_images"].max() * 1.15),
    )
    counts = pd.Series(boxes_per_image)
    bars = axes[1].bar(counts.index, counts.to_numpy(), color=ALL_COLOUR)
    label_bars(axes[1], bars, [f"{n:,}" for n in counts])
    axes[1].set(
        title="Boxes per image", xlabel="Lung-opacity boxes on the image (count)", ylabel="Images (count)", yscale="log"
    )
    fig.suptitle("RSNA Pneumonia Detection Challenge: labels")
    fig.tight_layout()
    return fig


@styled
def plot_rsna_box_sizes(boxes: pd.DataFrame) -> Figure:
    """RSNA box width vs height (px of the 1024 px image) and box area as % of the image."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    hexes = axes[0].hexbin(boxes["width"], boxes["height"], gridsize=40, cmap="viridis", mincnt=1)
    fig.colorbar(hexes, ax=axes[0], label="Boxes (count)")
    axes[0].set(
        title=f"Box size ({len(boxes):,} boxes)",
        xlabel="Box width (px, 1024-px image)",
        ylabel="Box height (px, 1024-px image)",
    )
    area = 100 * boxes["area_fraction"]
    axes[1].hist(area, bins=50, color=ALL_COLOUR)
    axes[1].axvline(area.median(), color=PNEUMONIA_COLOUR, ls="--", label=f"median {area.median():.1f}%")
    axes[1].set(title="Box area", xlabel="Box area (% of the image)", ylabel="Boxes (count)")
    axes[1].legend(frameon=False)
    fig.suptitle("RSNA Pneumonia Detection Challenge: lung-opacity boxes")
    fig.tight_layout()
    return fig


@styled
def plot_pixel_intensity(pixels: PixelStatistics) -> Figure:
    """Intensity histograms by group: mean density with the 10-90 % band across images."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    centres = (pixels.bin_edges[:-1] + pixels.bin_edges[1:]) / 2
    groups = pixels.table["group"].to_numpy()
    for group in PIXEL_GROUPS:
        rows = pixels.histograms[groups == group]
        if len(rows) == 0:
            continue
        colour = GROUP_COLOURS[group]
        ax.plot(centres, rows.mean(axis=0), color=colour, lw=2, label=f"{group} ({len(rows)} images)")
        if len(rows) > 1:
            ax.fill_between(centres, *np.percentile(rows, [10, 90], axis=0), color=colour, alpha=0.15)
    ax.set(
        xlabel="Pixel intensity (0 = black, 1 = white)",
        ylabel="Density (per unit intensity)",
        xlim=(0, 1),
        title=f"NIH PNG intensity histograms by finding - only {len(groups)} real images "
        f"({pixels.table['patient_id'].nunique()} patients); band = 10-90% of images",
    )
    ax.legend(frameon=False)
    return fig


@styled
def plot_image_size_spacing(nih: pd.DataFrame, pixels: PixelStatistics) -> Figure:
    """Original image size and pixel spacing (full metadata) and the effective spacing of the 1024-px PNGs."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    hexes = axes[0].hexbin(nih["width"], nih["height"], gridsize=40, cmap="viridis", mincnt=1, norm=LogNorm())
    fig.colorbar(hexes, ax=axes[0], label="Images (count, log scale)")
    axes[0].set(title=f"Original size ({len(nih):,} images)", xlabel="Width (px)", ylabel="Height (px)")
    spacing = nih["pixel_spacing_x"].round(3).value_counts().sort_index()
    spacing = spacing[spacing >= 100]
    bars = axes[1].bar([f"{s:.3f}" for s in spacing.index], spacing.to_numpy(), color=ALL_COLOUR)
    label_bars(axes[1], bars, [f"{n:,}" for n in spacing])
    axes[1].set(
        title="Original pixel spacing (values on >= 100 images)",
        xlabel="Pixel spacing (mm/px)",
        ylabel="Images (count)",
    )
    effective = nih["pixel_spacing_x"] * nih["width"] / 1024
    bins = np.arange(0.20, 0.52, 0.01)
    for values, colour, label, style in (
        (effective, ALL_COLOUR, f"all {len(effective):,} images (median {effective.median():.2f})", "stepfilled"),
        (pixels.table["effective_pixel_spacing"], PNEUMONIA_COLOUR, f"the {len(pixels.table)} PNGs here", "step"),
    ):
        axes[2].hist(
            values,
            bins=bins,
            weights=np.full(len(values), 100 / len(values)),
            histtype=style,
            lw=2,
            color=colour,
            alpha=0.8 if style == "stepfilled" else 1,
            label=label,
        )
    axes[2].set(
        title="Effective spacing of the released 1024-px PNGs",
        xlabel="Pixel spacing (mm/px)",
        ylabel="Share of images (% per 0.01 mm bin)",
    )
    axes[2].legend(frameon=False, loc="upper left", fontsize=8)
    fig.suptitle("NIH ChestX-ray14: image size and pixel spacing")
    fig.tight_layout()
    return fig


@styled
def plot_mean_image(pixels: PixelStatistics) -> Figure:
    """Pixel-wise mean and standard deviation of the real NIH PNGs."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    for ax, image, title in (
        (axes[0], pixels.mean_image, "Mean image"),
        (axes[1], pixels.std_image, "Standard deviation"),
    ):
        shown = ax.imshow(image, cmap="gray", vmin=0, vmax=1 if ax is axes[0] else float(image.max()))
        fig.colorbar(shown, ax=ax, shrink=0.8, label="Intensity (0-1)")
        ax.set(title=title, xlabel="x (px)", ylabel="y (px)")
    fig.suptitle(
        f"NIH PNGs: pixel-wise mean and spread over {len(pixels.table)} real images "
        f"({pixels.table['patient_id'].nunique()} patients)"
    )
    fig.tight_layout()
    return fig
