"""Exploratory data analysis step, tables: every EDA number and table, from the dataset loaders.

The data come only through ``pneumocxr.datasets`` (``load_nih`` for the full 112,120-row metadata
and the official split, ``load_nih_sample`` for ``sample_labels.csv``, ``load_rsna``) and, for the
pixel statistics, the real NIH PNGs present under ``data/nih/images`` read with
``pneumocxr.preprocess.load_pixels`` (``pixels``). ``pneumocxr.eda.run_eda(root, out_dir)`` writes PNG
figures, CSV tables and ``eda.json``.

``eda.json`` keys (stable; the report generator reads them). Counts are ints, rates are fractions in
[0, 1], ages are years, sizes are pixels, spacings are millimetres per pixel:

- ``n_images``, ``n_patients``, ``n_pneumonia_images``, ``n_pneumonia_patients``: full NIH metadata.
- ``pneumonia_prevalence``: ``{"per_image", "per_patient"}``.
- ``age``: ``{"median", "q1", "q3", "iqr" ([q1, q3]), "mean", "min", "max", "n_valid", "n_cleaned",
  "max_plausible"}``; ``n_cleaned`` counts ages > ``max_plausible`` (100) or < 0, set to missing.
- ``sex``, ``view``: label -> number of images.
- ``images_per_patient``: ``{"median", "q1", "q3", "mean", "max", "n_single_image_patients"}``;
  ``follow_up``: ``{"max", "n_follow_up_images"}`` (images with Follow-up # > 0).
- ``pneumonia_positive``: the same population keys (``n_images``, ``n_patients``, ``age``, ``sex``,
  ``view``, ``images_per_patient``, ``follow_up``) over the pneumonia-positive images.
- ``findings``: label (14 findings and ``No Finding``) -> number of images;
  ``findings_per_image``: number of findings (``"0"`` = No Finding) -> number of images.
- ``comorbidity_with_pneumonia``: finding -> number of pneumonia images that also carry it;
  ``n_pneumonia_alone``: pneumonia images with no other finding.
- ``pneumonia_rate``: ``{"age_band" | "sex" | "view": {group: {"n_images", "n_pneumonia", "rate",
  "ci95": [low, high]}}}`` (Wilson 95 % interval).
- ``split``: NIH official split, ``{"train_val" | "test": {"n_images", "n_patients", "n_pneumonia",
  "n_pneumonia_patients", "prevalence", "age_median", "pct_female", "pct_pa"}}``;
  ``split_patient_overlap``: patients found in both official splits (0 = patient-disjoint);
  ``project_split``: the same keys for the loader's ``train`` / ``val`` / ``test`` split.
- ``original_size``: ``{"width" | "height" | "pixel_spacing": {"median", "min", "max"}}`` from the metadata.
- ``rsna``: ``{"n_images", "n_patients", "classes" (class -> images), "n_lung_opacity_images",
  "boxes_per_image" (count -> images), "n_boxes", "box_width", "box_height" ({"median", "q1", "q3"}, px
  in the 1024 px image), "box_area_fraction" ({"median", "q1", "q3"}), "age", "sex", "view"}``.
- ``pixels``: ``{"n_images", "n_patients", "groups" (group -> images), "png_size" ("WxH" -> images),
  "intensity" (group -> {"mean", "std", "median"} of pixel values in [0, 1]),
  "effective_pixel_spacing" ({"median", "min", "max"} mm of the released PNG)}`` - the pixel
  statistics rest on these ``n_images`` real PNGs only.
- ``sample``: ``sample_labels.csv``: ``n_images``, ``n_patients``, ``n_pneumonia_images``, ``age``,
  ``sex``, ``view``, ``n_with_png``.
- ``figures``, ``tables``: file names written beside ``eda.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.datasets import load_nih, load_nih_sample, load_rsna
from pneumocxr.datasets.nih import FINDINGS
from pneumocxr.eda.pixels import PixelStatistics, pixel_summary

MAX_PLAUSIBLE_AGE = 100
AGE_BAND_EDGES = (0, 18, 30, 40, 50, 60, 70, 80, np.inf)
AGE_BAND_LABELS = ("0-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+")
LABELS = (*FINDINGS, "No Finding")
RSNA_IMAGE_SIZE = 1024


@dataclass
class EdaInputs:
    """The three metadata tables the EDA reads (from the dataset loaders)."""

    nih: pd.DataFrame
    sample: pd.DataFrame
    rsna: pd.DataFrame


def load_eda_inputs(root: str | os.PathLike) -> EdaInputs:
    """NIH full metadata, NIH sample_labels.csv and RSNA labels, from the dataset loaders."""
    root = Path(root)
    return EdaInputs(nih=load_nih(root), sample=load_nih_sample(root), rsna=load_rsna(root))


def cleaned_ages(ages: pd.Series, max_age: float = MAX_PLAUSIBLE_AGE) -> pd.Series:
    """Ages in years with impossible values (> ``max_age`` or < 0) set to NaN."""
    ages = pd.to_numeric(ages, errors="coerce").astype(float)
    return ages.where((ages >= 0) & (ages <= max_age))


def quartiles(values: pd.Series) -> dict:
    """Median, first and third quartile of the non-missing values."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    q1, median, q3 = (float(values.quantile(q)) for q in (0.25, 0.5, 0.75))
    return {"median": median, "q1": q1, "q3": q3}


def age_summary(ages: pd.Series, max_age: float = MAX_PLAUSIBLE_AGE) -> dict:
    """Median, IQR, range and counts of ages after cleaning impossible values."""
    raw = pd.to_numeric(ages, errors="coerce")
    clean = cleaned_ages(raw, max_age)
    summary = quartiles(clean)
    summary.update(
        iqr=[summary["q1"], summary["q3"]],
        mean=float(clean.mean()),
        min=float(clean.min()),
        max=float(clean.max()),
        n_valid=int(clean.notna().sum()),
        n_cleaned=int((raw.notna() & clean.isna()).sum()),
        max_plausible=max_age,
    )
    return summary


def value_counts(values: pd.Series) -> dict[str, int]:
    """Label -> count, most frequent first (missing values counted as 'missing')."""
    return {str(k): int(v) for k, v in values.fillna("missing").value_counts().items()}


def images_per_patient(df: pd.DataFrame) -> pd.Series:
    """Number of images of each patient."""
    return df.groupby("patient_id").size()


def population_summary(df: pd.DataFrame) -> dict:
    """Images, patients, age, sex, view, images per patient and follow-up counts of ``df``."""
    per_patient = images_per_patient(df)
    return {
        "n_images": int(len(df)),
        "n_patients": int(df["patient_id"].nunique()),
        "age": age_summary(df["age"]),
        "sex": value_counts(df["sex"]),
        "view": value_counts(df["view"]),
        "images_per_patient": {
            **quartiles(per_patient),
            "mean": float(per_patient.mean()),
            "max": int(per_patient.max()),
            "n_single_image_patients": int((per_patient == 1).sum()),
        },
        "follow_up": {"max": int(df["follow_up"].max()), "n_follow_up_images": int((df["follow_up"] > 0).sum())},
    }


def prevalence_summary(df: pd.DataFrame) -> dict:
    """Image and patient counts, pneumonia counts and prevalence per image and per patient."""
    positive_patients = df.loc[df["label"] == 1, "patient_id"].nunique()
    n_patients = df["patient_id"].nunique()
    return {
        "n_images": int(len(df)),
        "n_patients": int(n_patients),
        "n_pneumonia_images": int(df["label"].sum()),
        "n_pneumonia_patients": int(positive_patients),
        "pneumonia_prevalence": {
            "per_image": float(df["label"].mean()),
            "per_patient": float(positive_patients / n_patients),
        },
    }


def finding_frequency(df: pd.DataFrame) -> pd.DataFrame:
    """Per label (14 findings and No Finding): images, % of images, patients; most frequent first."""
    no_finding = df["n_findings"] == 0
    rows = []
    for label in LABELS:
        has = no_finding if label == "No Finding" else df[label] == 1
        rows.append(
            {
                "label": label,
                "n_images": int(has.sum()),
                "pct_images": 100.0 * has.mean(),
                "n_patients": int(df.loc[has, "patient_id"].nunique()),
            }
        )
    return pd.DataFrame(rows).sort_values("n_images", ascending=False, ignore_index=True)


def findings_per_image(df: pd.DataFrame) -> pd.DataFrame:
    """Images by number of findings (0 = No Finding): all images and pneumonia images."""
    counts = pd.DataFrame(
        {
            "all_images": df["n_findings"].value_counts(),
            "pneumonia_images": df.loc[df["label"] == 1, "n_findings"].value_counts(),
        }
    )
    counts = counts.fillna(0).astype(int).sort_index()
    counts.index.name = "n_findings"
    return counts.reset_index()


def cooccurrence(df: pd.DataFrame) -> pd.DataFrame:
    """14 x 14 counts of images carrying both findings (diagonal: images with the finding)."""
    onehot = df[list(FINDINGS)].to_numpy(dtype=np.int64)
    return pd.DataFrame(onehot.T @ onehot, index=list(FINDINGS), columns=list(FINDINGS))


def comorbidity_with_pneumonia(df: pd.DataFrame) -> pd.Series:
    """Other finding -> number of pneumonia images that also carry it, most frequent first."""
    others = [f for f in FINDINGS if f != "Pneumonia"]
    counts = df.loc[df["label"] == 1, others].sum().astype(int).sort_values(ascending=False)
    counts.index.name, counts.name = "finding", "n_pneumonia_images"
    return counts


def age_band(ages: pd.Series) -> pd.Series:
    """Age band labels (0-17 ... 80+) of cleaned ages; impossible ages give NaN."""
    return pd.cut(cleaned_ages(ages), AGE_BAND_EDGES, right=False, labels=list(AGE_BAND_LABELS))


def wilson_interval(successes: np.ndarray, totals: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of a binomial proportion; NaN where the total is 0."""
    k, n = np.asarray(successes, dtype=float), np.asarray(totals, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def pneumonia_rate_by(df: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Images, pneumonia images, rate and Wilson 95 % CI per value of ``groups`` (aligned with df)."""
    table = df["label"].groupby(groups, observed=False).agg(n_images="size", n_pneumonia="sum")
    table["n_pneumonia"] = table["n_pneumonia"].astype(int)
    table["rate"] = table["n_pneumonia"] / table["n_images"].where(table["n_images"] > 0)
    table["ci_low"], table["ci_high"] = wilson_interval(table["n_pneumonia"], table["n_images"])
    table.index.name = "group"
    return table.reset_index()


def pneumonia_rate_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Pneumonia rate tables by age band, sex and view position."""
    return {
        "age_band": pneumonia_rate_by(df, age_band(df["age"])),
        "sex": pneumonia_rate_by(df, df["sex"]),
        "view": pneumonia_rate_by(df, df["view"]),
    }


def split_summary(df: pd.DataFrame, column: str = "official_split") -> pd.DataFrame:
    """Per split: images, patients, pneumonia images and patients, prevalence, age median, % female, % PA."""
    rows = {}
    for name, part in df.groupby(column, sort=False):
        rows[name] = {
            **{k: v for k, v in prevalence_summary(part).items() if k != "pneumonia_prevalence"},
            "prevalence": float(part["label"].mean()),
            "age_median": float(cleaned_ages(part["age"]).median()),
            "pct_female": 100.0 * float((part["sex"] == "F").mean()),
            "pct_pa": 100.0 * float((part["view"] == "PA").mean()),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.rename(columns={"n_pneumonia_images": "n_pneumonia"})
    table.index.name = "split"
    return table


def split_patient_overlap(df: pd.DataFrame, column: str = "official_split") -> int:
    """Number of patients whose images fall in more than one split (0 when patient-disjoint)."""
    return int((df.groupby("patient_id")[column].nunique() > 1).sum())


def original_size_summary(df: pd.DataFrame) -> dict:
    """Median and range of the original image width, height (px) and pixel spacing (mm) in the metadata."""
    columns = {"width": "width", "height": "height", "pixel_spacing": "pixel_spacing_x"}
    return {
        key: {"median": float(df[col].median()), "min": float(df[col].min()), "max": float(df[col].max())}
        for key, col in columns.items()
    }


def rsna_box_table(rsna: pd.DataFrame) -> pd.DataFrame:
    """One row per RSNA box: patient_id, x, y, width, height (px) and area as a fraction of the image."""
    rows = [(pid, *box) for pid, boxes in zip(rsna["patient_id"], rsna["boxes"]) for box in boxes]
    boxes = pd.DataFrame(rows, columns=["patient_id", "x", "y", "width", "height"])
    boxes["area_fraction"] = boxes["width"] * boxes["height"] / RSNA_IMAGE_SIZE**2
    return boxes


def rsna_summary(rsna: pd.DataFrame, boxes: pd.DataFrame) -> dict:
    """RSNA class balance, boxes per image, box size quartiles and header demographics."""
    summary = {
        "n_images": int(len(rsna)),
        "n_patients": int(rsna["patient_id"].nunique()),
        "classes": value_counts(rsna["class"]),
        "n_lung_opacity_images": int(rsna["label"].sum()),
        "boxes_per_image": {str(k): int(v) for k, v in rsna["n_boxes"].value_counts().sort_index().items()},
        "n_boxes": int(len(boxes)),
        "box_width": quartiles(boxes["width"]),
        "box_height": quartiles(boxes["height"]),
        "box_area_fraction": quartiles(boxes["area_fraction"]),
    }
    for key in ("age", "sex", "view"):
        if key in rsna:
            summary[key] = age_summary(rsna[key]) if key == "age" else value_counts(rsna[key])
    return summary


def sample_summary(sample: pd.DataFrame) -> dict:
    """Counts, age (cleaned), sex and view of sample_labels.csv, and how many of its PNGs are present."""
    population = population_summary(sample)
    return {
        "n_images": population["n_images"],
        "n_patients": population["n_patients"],
        "n_pneumonia_images": int(sample["label"].sum()),
        "age": population["age"],
        "sex": population["sex"],
        "view": population["view"],
        "n_with_png": int(sample["path"].notna().sum()),
    }


def rate_records(table: pd.DataFrame) -> dict:
    """A pneumonia-rate table as {group: {n_images, n_pneumonia, rate, ci95}} for eda.json."""
    return {
        str(r.group): {
            "n_images": int(r.n_images),
            "n_pneumonia": int(r.n_pneumonia),
            "rate": r.rate,
            "ci95": [r.ci_low, r.ci_high],
        }
        for r in table.itertuples(index=False)
    }


def compute_tables(inputs: EdaInputs, pixels: PixelStatistics) -> dict[str, pd.DataFrame]:
    """Every CSV table of the EDA, by name (file name without .csv)."""
    nih = inputs.nih
    rates = pneumonia_rate_tables(nih)
    return {
        "finding_frequency": finding_frequency(nih),
        "findings_per_image": findings_per_image(nih),
        "cooccurrence": cooccurrence(nih).rename_axis("finding").reset_index(),
        "comorbidity_with_pneumonia": comorbidity_with_pneumonia(nih).reset_index(),
        **{f"pneumonia_rate_by_{name}": table for name, table in rates.items()},
        "official_split": split_summary(nih, "official_split").reset_index(),
        "project_split": split_summary(nih, "split").reset_index(),
        "rsna_boxes": rsna_box_table(inputs.rsna),
        "rsna_classes": inputs.rsna["class"].value_counts().rename_axis("class").reset_index(name="n_images"),
        "pixel_statistics": pixels.table,
    }


def compute_summary(inputs: EdaInputs, tables: dict[str, pd.DataFrame], pixels: PixelStatistics) -> dict:
    """The eda.json dictionary (keys documented in this module's docstring)."""
    nih = inputs.nih
    population = population_summary(nih)
    comorbidity = comorbidity_with_pneumonia(nih)
    splits = {
        name: split_summary(nih, column).to_dict(orient="index")
        for name, column in (("split", "official_split"), ("project_split", "split"))
    }
    return {
        **prevalence_summary(nih),
        **{k: population[k] for k in ("age", "sex", "view", "images_per_patient", "follow_up")},
        "pneumonia_positive": population_summary(nih[nih["label"] == 1]),
        "findings": dict(zip(tables["finding_frequency"]["label"], tables["finding_frequency"]["n_images"])),
        "findings_per_image": {
            str(r.n_findings): int(r.all_images) for r in tables["findings_per_image"].itertuples(index=False)
        },
        "comorbidity_with_pneumonia": {k: int(v) for k, v in comorbidity.items()},
        "n_pneumonia_alone": int(((nih["label"] == 1) & (nih["n_findings"] == 1)).sum()),
        "pneumonia_rate": {
            name: rate_records(tables[f"pneumonia_rate_by_{name}"]) for name in ("age_band", "sex", "view")
        },
        **splits,
        "split_patient_overlap": split_patient_overlap(nih, "official_split"),
        "original_size": original_size_summary(nih),
        "rsna": rsna_summary(inputs.rsna, tables["rsna_boxes"]),
        "pixels": pixel_summary(pixels),
        "sample": sample_summary(inputs.sample),
    }
