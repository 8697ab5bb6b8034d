"""Exploratory data analysis step, metadata figures: one function per EDA figure, from the tables of ``tables``.

Every function returns a matplotlib ``Figure`` with a title, axis labels and units; ``save_figures``
writes them as PNG files. Colours are fixed: all images grey-blue, pneumonia red. Each figure is drawn
in the house style (``plotting.styled``); importing this module changes no global matplotlib setting.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pneumocxr.eda import tables as eda
from pneumocxr.plotting import styled

ALL_COLOUR, PNEUMONIA_COLOUR = "#4c72b0", "#c44e52"
GROUP_COLOURS = {"pneumonia": PNEUMONIA_COLOUR, "other finding": "#dd8452", "no finding": "#55a868"}
SPLIT_COLOURS = {"train_val": "#4c72b0", "test": "#8172b3"}
IMAGES_PER_PATIENT_BINS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 50), (51, 10_000))


def label_bars(ax, bars, texts: list[str], fontsize: int = 8, horizontal: bool = False) -> None:
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
        label_bars(ax, bars, [f"{p:.0f}%\n(n={int(c):,})" for p, c in zip(pct, counts)], fontsize=7)
    ax.set_xticks(x, categories)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)


@styled
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


@styled
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


@styled
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


@styled
def plot_finding_frequency(table: pd.DataFrame) -> Figure:
    """Horizontal bars of images per label (14 findings and No Finding), pneumonia highlighted."""
    table = table.sort_values("n_images")
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = [PNEUMONIA_COLOUR if label == "Pneumonia" else ALL_COLOUR for label in table["label"]]
    bars = ax.barh(table["label"], table["n_images"], color=colours)
    label_bars(ax, bars, [f"{n:,} ({p:.1f}%)" for n, p in zip(table["n_images"], table["pct_images"])], horizontal=True)
    ax.set(
        xlabel="Images carrying the label (count)",
        xlim=(0, table["n_images"].max() * 1.2),
        title=f"NIH ChestX-ray14: label frequency ({int(table['n_images'].sum()):,} labels on the images)",
    )
    return fig


@styled
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


@styled
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


@styled
def plot_comorbidity(comorbidity: pd.Series, n_pneumonia: int, n_alone: int) -> Figure:
    """Share of pneumonia images that also carry each other finding (and pneumonia alone)."""
    series = pd.concat([comorbidity, pd.Series({"(pneumonia alone)": n_alone})]).sort_values()
    fig, ax = plt.subplots(figsize=(9, 6))
    colours = ["#937860" if name == "(pneumonia alone)" else PNEUMONIA_COLOUR for name in series.index]
    bars = ax.barh(series.index, 100 * series / n_pneumonia, color=colours)
    label_bars(ax, bars, [f"{n:,}" for n in series], horizontal=True)
    ax.set(
        xlabel=f"Share of the {n_pneumonia:,} pneumonia images also carrying the finding (%)",
        title="NIH ChestX-ray14: findings co-occurring with pneumonia",
        xlim=(0, 100 * series.max() / n_pneumonia * 1.15),
    )
    return fig


@styled
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


@styled
def plot_official_split(split_table: pd.DataFrame, nih: pd.DataFrame) -> Figure:
    """Official split: sizes, pneumonia prevalence, age distribution, % female and % PA per split."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    names = list(split_table.index)
    colours = [SPLIT_COLOURS.get(n, ALL_COLOUR) for n in names]
    bars = axes[0, 0].bar(names, split_table["n_images"], color=colours)
    label_bars(
        axes[0, 0],
        bars,
        [f"{i:,} images\n{p:,} patients" for i, p in zip(split_table["n_images"], split_table["n_patients"])],
    )
    axes[0, 0].set(
        title="Size", ylabel="Images (count)", xlabel="Official split", ylim=(0, split_table["n_images"].max() * 1.25)
    )
    bars = axes[0, 1].bar(names, 100 * split_table["prevalence"], color=colours)
    label_bars(
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
        label_bars(axes[1, 1], bars, [f"{v:.1f}%" for v in values])
    axes[1, 1].set_xticks(x, ["female", "PA view"])
    axes[1, 1].set(title="Sex and view", ylabel="Share of images (%)", ylim=(0, 100))
    axes[1, 1].legend(frameon=False)
    fig.suptitle("NIH official patient-wise split: train_val vs test")
    fig.tight_layout()
    return fig
