"""Exploratory data analysis step, figures: one function per EDA figure, from the tables of ``pneumocxr.eda.tables``.

Every function returns a matplotlib ``Figure`` with a title, axis labels and units; ``save_figures``
writes them as PNG files. Colours are fixed: all images grey-blue, pneumonia red.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pneumocxr.eda import tables as eda

ALL_COLOUR, PNEUMONIA_COLOUR = "#4c72b0", "#c44e52"
GROUP_COLOURS = {"pneumonia": PNEUMONIA_COLOUR, "other finding": "#dd8452", "no finding": "#55a868"}
SPLIT_COLOURS = {"train_val": "#4c72b0", "test": "#8172b3"}
IMAGES_PER_PATIENT_BINS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 50), (51, 10_000))

plt.rcParams.update(
    {
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "figure.titlesize": 13,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _label_bars(ax, bars, texts: list[str], fontsize: int = 8, horizontal: bool = False) -> None:
    """Write ``texts`` at the end of each bar (right of horizontal bars, above vertical ones)."""
    for bar, text in zip(bars, texts):
        if horizontal:
            ax.annotate(
                text,
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=fontsize,
            )
        else:
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=fontsize,
            )


def _percent_bars(ax, categories: list[str], series: dict[str, pd.Series], colours: list[str]) -> None:
    """Grouped vertical bars of the % of each series' total per category, annotated with counts."""
    width = 0.8 / len(series)
    x = np.arange(len(categories))
    for i, ((name, counts), colour) in enumerate(zip(series.items(), colours)):
        counts = counts.reindex(categories).fillna(0)
        pct = 100 * counts / counts.sum()
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, pct, width, label=name, color=colour)
        _label_bars(ax, bars, [f"{p:.0f}%\n(n={int(c):,})" for p, c in zip(pct, counts)], fontsize=7)
    ax.set_xticks(x, categories)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)


def plot_age_distribution(nih: pd.DataFrame) -> Figure:
    """Histogram of patient age, all images vs pneumonia images, with medians."""
    ages = eda.cleaned_ages(nih["age"])
    n_cleaned = int(ages.isna().sum() - nih["age"].isna().sum())
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bins = np.arange(0, 101, 5)
    for name, values, colour in (
        ("all images", ages, ALL_COLOUR),
        ("pneumonia images", ages[nih["label"] == 1], PNEUMONIA_COLOUR),
    ):
        values = values.dropna()
        ax.hist(
            values,
            bins=bins,
            weights=np.full(len(values), 100 / len(values)),
            histtype="step",
            lw=2,
            color=colour,
            label=f"{name} (n={len(values):,}, median {values.median():.0f} y)",
        )
        ax.axvline(values.median(), color=colour, ls="--", lw=1)
    ax.set(
        xlabel="Patient age at imaging (years)",
        ylabel="Share of images (% per 5-year bin)",
        xlim=(0, 100),
        title=f"NIH ChestX-ray14: age distribution ({n_cleaned} impossible ages > {eda.MAX_PLAUSIBLE_AGE} y removed)",
    )
    ax.set_ylim(0, ax.get_ylim()[1] * 1.2)
    ax.legend(frameon=False, loc="upper left")
    return fig


def plot_sex_and_view(nih: pd.DataFrame) -> Figure:
    """Sex and view position as % of images, all images vs pneumonia images."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    positive = nih[nih["label"] == 1]
    for ax, column, categories, title, xlabel in (
        (axes[0], "sex", ["M", "F"], "Patient sex", "Sex (M = male, F = female)"),
        (axes[1], "view", ["PA", "AP"], "View position", "View (PA = posterior-anterior, AP = anterior-posterior)"),
    ):
        _percent_bars(
            ax,
            categories,
            {"all images": nih[column].value_counts(), "pneumonia images": positive[column].value_counts()},
            [ALL_COLOUR, PNEUMONIA_COLOUR],
        )
        ax.set(title=title, ylabel="Share of images (%)", xlabel=xlabel)
    axes[0].legend(frameon=False, loc="upper right")
    fig.suptitle("NIH ChestX-ray14: sex and view position, all vs pneumonia-positive images")
    fig.tight_layout()
    return fig


def images_per_patient_bins(per_patient: pd.Series) -> pd.Series:
    """Number of patients per images-per-patient bin (1, 2, 3, 4-5, 6-10, 11-20, 21-50, 51+)."""
    labels = [
        f"{lo}" if lo == hi else (f"{lo}+" if hi >= 10_000 else f"{lo}-{hi}") for lo, hi in IMAGES_PER_PATIENT_BINS
    ]
    counts = [int(((per_patient >= lo) & (per_patient <= hi)).sum()) for lo, hi in IMAGES_PER_PATIENT_BINS]
    return pd.Series(counts, index=labels)


def plot_images_per_patient(nih: pd.DataFrame) -> Figure:
    """Images per patient, all patients vs pneumonia-positive patients (all their images counted)."""
    per_patient = eda.images_per_patient(nih)
    positive_ids = nih.loc[nih["label"] == 1, "patient_id"].unique()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    all_bins, pos_bins = images_per_patient_bins(per_patient), images_per_patient_bins(per_patient[positive_ids])
    _percent_bars(
        ax,
        list(all_bins.index),
        {
            f"all patients (n={len(per_patient):,})": all_bins,
            f"pneumonia-positive patients (n={len(positive_ids):,})": pos_bins,
        },
        [ALL_COLOUR, PNEUMONIA_COLOUR],
    )
    ax.set(
        xlabel="Images per patient (follow-up studies included)",
        ylabel="Share of patients (%)",
        title="NIH ChestX-ray14: images per patient - positives have many follow-ups, so split by patient",
    )
    ax.legend(frameon=False)
    return fig


def plot_finding_frequency(table: pd.DataFrame) -> Figure:
    """Horizontal bars of images per label (14 findings and No Finding), pneumonia highlighted."""
    table = table.sort_values("n_images")
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = [PNEUMONIA_COLOUR if label == "Pneumonia" else ALL_COLOUR for label in table["label"]]
    bars = ax.barh(table["label"], table["n_images"], color=colours)
    _label_bars(
        ax, bars, [f"{n:,} ({p:.1f}%)" for n, p in zip(table["n_images"], table["pct_images"])], horizontal=True
    )
    ax.set(
        xlabel="Images carrying the label (count)",
        xlim=(0, table["n_images"].max() * 1.2),
        title=f"NIH ChestX-ray14: label frequency ({int(table['n_images'].sum()):,} labels on the images)",
    )
    return fig


def plot_findings_per_image(table: pd.DataFrame) -> Figure:
    """Share of images with 0, 1, 2 ... findings, all images vs pneumonia images."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    binned = table.assign(n_findings=[str(k) if k < 5 else "5+" for k in table["n_findings"]])
    counts = binned.groupby("n_findings", sort=False).sum()
    categories = list(counts.index)
    _percent_bars(
        ax,
        categories,
        {"all images": counts["all_images"], "pneumonia images": counts["pneumonia_images"]},
        [ALL_COLOUR, PNEUMONIA_COLOUR],
    )
    ax.set(
        xlabel="Number of findings on the image (0 = No Finding)",
        ylabel="Share of images (%)",
        title="NIH ChestX-ray14: findings per image - pneumonia rarely comes alone",
    )
    ax.legend(frameon=False)
    return fig


def plot_cooccurrence(matrix: pd.DataFrame) -> Figure:
    """Heatmap (log colour) of images carrying both findings, annotated with counts."""
    values = matrix.to_numpy()
    fig, ax = plt.subplots(figsize=(10.5, 9))
    image = ax.imshow(np.where(values > 0, values, np.nan), cmap="viridis", norm=LogNorm(vmin=1, vmax=values.max()))
    for (i, j), count in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{count:,}",
            ha="center",
            va="center",
            fontsize=6.5,
            color="white" if count < np.sqrt(values.max()) else "black",
            fontweight="bold" if "Pneumonia" in (matrix.index[i], matrix.columns[j]) else "normal",
        )
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    ax.set(title="NIH ChestX-ray14: co-occurrence of findings (images with both; diagonal = images with the finding)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Images (count, log scale)")
    ax.spines[:].set_visible(False)
    return fig


def plot_comorbidity(comorbidity: pd.Series, n_pneumonia: int, n_alone: int) -> Figure:
    """Share of pneumonia images that also carry each other finding (and pneumonia alone)."""
    series = pd.concat([comorbidity, pd.Series({"(pneumonia alone)": n_alone})]).sort_values()
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = ["#937860" if name == "(pneumonia alone)" else PNEUMONIA_COLOUR for name in series.index]
    bars = ax.barh(series.index, 100 * series / n_pneumonia, color=colours)
    _label_bars(ax, bars, [f"{n:,}" for n in series], horizontal=True)
    ax.set(
        xlabel=f"Share of the {n_pneumonia:,} pneumonia images also carrying the finding (%)",
        title="NIH ChestX-ray14: findings co-occurring with pneumonia",
        xlim=(0, 100 * series.max() / n_pneumonia * 1.15),
    )
    return fig


def plot_pneumonia_rate(rates: dict[str, pd.DataFrame], prevalence: float) -> Figure:
    """Pneumonia rate (% of images, Wilson 95 % CI) by age band, sex and view position."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), gridspec_kw={"width_ratios": [4, 1.4, 1.4]}, sharey=True)
    for ax, (name, title) in zip(axes, (("age_band", "Age band (years)"), ("sex", "Sex"), ("view", "View position"))):
        table = rates[name][rates[name]["n_images"] > 0]
        x = np.arange(len(table))
        rate = 100 * table["rate"].to_numpy()
        errors = [rate - 100 * table["ci_low"].to_numpy(), 100 * table["ci_high"].to_numpy() - rate]
        ax.errorbar(x, rate, yerr=errors, fmt="o", color=PNEUMONIA_COLOUR, capsize=4)
        for xi, r, n in zip(x, rate, table["n_images"]):
            ax.annotate(f"n={n:,}", (xi, r), xytext=(6, 0), textcoords="offset points", fontsize=7, va="center")
        ax.axhline(100 * prevalence, color="grey", ls="--", lw=1, label=f"overall {100 * prevalence:.2f}%")
        ax.set_xticks(x, table["group"].astype(str))
        ax.set_xlim(-0.5, len(x) - 0.2)
        ax.set(xlabel=title, title=f"by {title.split(' (')[0].lower()}")
    axes[0].set_ylabel("Pneumonia rate (% of images, 95% CI)")
    axes[0].legend(frameon=False, loc="lower left")
    fig.suptitle("NIH ChestX-ray14: pneumonia rate by age band, sex and view position")
    fig.tight_layout()
    return fig


def plot_official_split(split_table: pd.DataFrame, nih: pd.DataFrame) -> Figure:
    """Official split: sizes, pneumonia prevalence, age distribution, % female and % PA per split."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    names = list(split_table.index)
    colours = [SPLIT_COLOURS.get(n, ALL_COLOUR) for n in names]
    bars = axes[0, 0].bar(names, split_table["n_images"], color=colours)
    _label_bars(
        axes[0, 0],
        bars,
        [f"{i:,} images\n{p:,} patients" for i, p in zip(split_table["n_images"], split_table["n_patients"])],
    )
    axes[0, 0].set(
        title="Size", ylabel="Images (count)", xlabel="Official split", ylim=(0, split_table["n_images"].max() * 1.25)
    )
    bars = axes[0, 1].bar(names, 100 * split_table["prevalence"], color=colours)
    _label_bars(
        axes[0, 1],
        bars,
        [f"{100 * r:.2f}%\n({n:,} images)" for r, n in zip(split_table["prevalence"], split_table["n_pneumonia"])],
    )
    axes[0, 1].set(
        title="Pneumonia prevalence",
        ylabel="Pneumonia images (% of images)",
        xlabel="Official split",
        ylim=(0, 100 * split_table["prevalence"].max() * 1.3),
    )
    bins = np.arange(0, 101, 5)
    for name, colour in zip(names, colours):
        ages = eda.cleaned_ages(nih.loc[nih["official_split"] == name, "age"]).dropna()
        axes[1, 0].hist(
            ages,
            bins=bins,
            weights=np.full(len(ages), 100 / len(ages)),
            histtype="step",
            lw=2,
            color=colour,
            label=f"{name} (median {ages.median():.0f} y)",
        )
    axes[1, 0].set(title="Age", xlabel="Patient age (years)", ylabel="Share of images (% per 5-year bin)")
    axes[1, 0].legend(frameon=False)
    x = np.arange(2)
    for i, (name, colour) in enumerate(zip(names, colours)):
        values = split_table.loc[name, ["pct_female", "pct_pa"]].to_numpy(dtype=float)
        bars = axes[1, 1].bar(x + (i - 0.5) * 0.38, values, 0.38, color=colour, label=name)
        _label_bars(axes[1, 1], bars, [f"{v:.1f}%" for v in values])
    axes[1, 1].set_xticks(x, ["female", "PA view"])
    axes[1, 1].set(title="Sex and view", ylabel="Share of images (%)", ylim=(0, 100))
    axes[1, 1].legend(frameon=False)
    fig.suptitle("NIH official patient-wise split: train_val vs test")
    fig.tight_layout()
    return fig


def plot_rsna_labels(rsna_classes: pd.DataFrame, boxes_per_image: dict[str, int]) -> Figure:
    """RSNA class balance (three classes) and number of boxes per image."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.4, 1]})
    total = rsna_classes["n_images"].sum()
    colours = [PNEUMONIA_COLOUR if c == "Lung Opacity" else ALL_COLOUR for c in rsna_classes["class"]]
    bars = axes[0].bar(rsna_classes["class"].str.replace(" / ", " /\n"), rsna_classes["n_images"], color=colours)
    _label_bars(axes[0], bars, [f"{n:,} ({100 * n / total:.1f}%)" for n in rsna_classes["n_images"]])
    axes[0].set(
        title=f"Class balance ({total:,} images)",
        ylabel="Images (count)",
        xlabel="RSNA class",
        ylim=(0, rsna_classes["n_images"].max() * 1.15),
    )
    counts = pd.Series(boxes_per_image)
    bars = axes[1].bar(counts.index, counts.to_numpy(), color=ALL_COLOUR)
    _label_bars(axes[1], bars, [f"{n:,}" for n in counts])
    axes[1].set(
        title="Boxes per image", xlabel="Lung-opacity boxes on the image (count)", ylabel="Images (count)", yscale="log"
    )
    fig.suptitle("RSNA Pneumonia Detection Challenge: labels")
    fig.tight_layout()
    return fig


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


def plot_pixel_intensity(pixels: eda.PixelStatistics) -> Figure:
    """Intensity histograms by group: mean density with the 10-90 % band across images."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    centres = (pixels.bin_edges[:-1] + pixels.bin_edges[1:]) / 2
    groups = pixels.table["group"].to_numpy()
    for group in eda.PIXEL_GROUPS:
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


def plot_image_size_spacing(nih: pd.DataFrame, pixels: eda.PixelStatistics) -> Figure:
    """Original image size and pixel spacing (full metadata) and the effective spacing of the 1024-px PNGs."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    hexes = axes[0].hexbin(nih["width"], nih["height"], gridsize=40, cmap="viridis", mincnt=1, norm=LogNorm())
    fig.colorbar(hexes, ax=axes[0], label="Images (count, log scale)")
    axes[0].set(title=f"Original size ({len(nih):,} images)", xlabel="Width (px)", ylabel="Height (px)")
    spacing = nih["pixel_spacing_x"].round(3).value_counts().sort_index()
    spacing = spacing[spacing >= 100]
    bars = axes[1].bar([f"{s:.3f}" for s in spacing.index], spacing.to_numpy(), color=ALL_COLOUR)
    _label_bars(axes[1], bars, [f"{n:,}" for n in spacing])
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


def plot_mean_image(pixels: eda.PixelStatistics) -> Figure:
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


def all_figures(
    nih: pd.DataFrame, tables: dict[str, pd.DataFrame], pixels: eda.PixelStatistics, summary: dict
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
