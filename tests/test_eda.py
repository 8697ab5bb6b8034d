"""Tests of the EDA step (pneumocxr.eda: tables, pixels, figures, `pneumocxr eda`, EDA.ipynb).

Real-data tests: they read the real NIH metadata, RSNA labels and NIH PNGs under the data root
(`data/` or $PNEUMOCXR_DATA, linked to ../shared/data) and check the EDA's numbers against counts
computed here independently with plain pandas on the raw CSV files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pneumocxr.cli import main
from pneumocxr.datasets import load_nih, load_nih_sample
from pneumocxr.eda import pixels as pixel_stats
from pneumocxr.eda import tables as eda
from pneumocxr.runs import read_json

FIGURES = {
    "age_distribution",
    "sex_and_view",
    "images_per_patient",
    "finding_frequency",
    "findings_per_image",
    "cooccurrence_heatmap",
    "comorbidity_with_pneumonia",
    "pneumonia_rate_by_group",
    "official_split",
    "rsna_labels",
    "rsna_box_sizes",
    "pixel_intensity_by_finding",
    "image_size_and_spacing",
    "mean_image",
}
TABLES = {
    "finding_frequency",
    "findings_per_image",
    "cooccurrence",
    "comorbidity_with_pneumonia",
    "pneumonia_rate_by_age_band",
    "pneumonia_rate_by_sex",
    "pneumonia_rate_by_view",
    "official_split",
    "project_split",
    "rsna_boxes",
    "rsna_classes",
    "pixel_statistics",
}
REQUIRED_KEYS = {
    "n_images",
    "n_patients",
    "n_pneumonia_images",
    "n_pneumonia_patients",
    "pneumonia_prevalence",
    "age",
    "sex",
    "view",
    "comorbidity_with_pneumonia",
    "split",
    "rsna",
    "pixels",
    "sample",
}


@pytest.fixture(scope="module")
def raw(real_data: Path) -> pd.DataFrame:
    """The raw NIH v2020 metadata, read with plain pandas (independent of the loaders)."""
    return pd.read_csv(real_data / "nih" / "Data_Entry_2017_v2020.csv.gz")


@pytest.fixture(scope="module")
def nih(real_data: Path) -> pd.DataFrame:
    """The full NIH metadata through the project's loader."""
    return load_nih(real_data)


@pytest.fixture(scope="module")
def cli_out(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder written by `pneumocxr eda --out DIR --root DATA` on the real data."""
    out = tmp_path_factory.mktemp("eda")
    assert main(["eda", "--out", str(out), "--root", str(real_data)]) == 0
    return out


def has_label(raw: pd.DataFrame, label: str) -> pd.Series:
    """Rows of the raw metadata whose Finding Labels contain ``label``."""
    return raw["Finding Labels"].str.split("|").map(lambda names: label in names)


def test_prevalence_summary_matches_raw_metadata(nih, raw):
    summary = eda.prevalence_summary(nih)
    pneumonia = has_label(raw, "Pneumonia")
    assert summary["n_images"] == len(raw) == 112_120
    assert summary["n_patients"] == raw["Patient ID"].nunique() == 30_805
    assert summary["n_pneumonia_images"] == pneumonia.sum() == 1_431
    assert summary["n_pneumonia_patients"] == raw.loc[pneumonia, "Patient ID"].nunique()
    assert summary["pneumonia_prevalence"]["per_image"] == pytest.approx(1_431 / 112_120)
    assert summary["pneumonia_prevalence"]["per_patient"] == pytest.approx(summary["n_pneumonia_patients"] / 30_805)


def test_population_summary_matches_value_counts(nih, raw):
    population = eda.population_summary(nih)
    assert population["sex"] == raw["Patient Gender"].value_counts().to_dict()
    assert population["view"] == raw["View Position"].value_counts().to_dict()
    per_patient = raw["Patient ID"].value_counts()
    assert population["images_per_patient"]["max"] == per_patient.max()
    assert population["images_per_patient"]["n_single_image_patients"] == (per_patient == 1).sum()
    assert population["follow_up"]["n_follow_up_images"] == (raw["Follow-up #"] > 0).sum()
    assert population["age"]["median"] == raw["Patient Age"].median()
    assert population["age"]["iqr"] == [raw["Patient Age"].quantile(0.25), raw["Patient Age"].quantile(0.75)]
    assert population["age"]["n_cleaned"] == (raw["Patient Age"] > 100).sum() == 0


def test_age_cleaning_counts_impossible_ages():
    summary = eda.age_summary(pd.Series([30.0, 411.0, 50.0, -1.0, np.nan, 100.0]))
    assert summary["n_cleaned"] == 2
    assert summary["n_valid"] == 3
    assert summary["median"] == 50.0 and summary["max"] == 100.0


def test_sample_labels_has_one_impossible_age(real_data):
    sample = load_nih_sample(real_data)
    raw_ages = pd.read_csv(real_data / "nih" / "sample_labels.csv")["Patient Age"]
    impossible = (raw_ages.str.endswith("Y") & (raw_ages.str[:-1].astype(int) > 100)).sum()
    summary = eda.sample_summary(sample)
    assert summary["age"]["n_cleaned"] == impossible == 1
    assert summary["n_images"] == len(raw_ages) == 5_606
    assert summary["n_pneumonia_images"] == 62


def test_finding_frequency_matches_exploded_labels(nih, raw):
    expected = raw["Finding Labels"].str.split("|").explode().value_counts()
    table = eda.finding_frequency(nih).set_index("label")["n_images"]
    assert set(table.index) == set(eda.LABELS) == set(expected.index)
    assert table.to_dict() == expected.to_dict()
    assert table.iloc[0] == expected["No Finding"]


def test_findings_per_image_and_cooccurrence(nih, raw):
    n_labels = raw["Finding Labels"].str.split("|").map(len).where(raw["Finding Labels"] != "No Finding", 0)
    table = eda.findings_per_image(nih).set_index("n_findings")
    assert table["all_images"].to_dict() == n_labels.value_counts().to_dict()
    assert table.loc[0, "pneumonia_images"] == 0
    matrix = eda.cooccurrence(nih)
    assert (matrix.to_numpy() == matrix.to_numpy().T).all()
    assert matrix.loc["Pneumonia", "Pneumonia"] == 1_431
    assert (
        matrix.loc["Pneumonia", "Infiltration"] == (has_label(raw, "Pneumonia") & has_label(raw, "Infiltration")).sum()
    )


def test_comorbidity_with_pneumonia_counts(nih, raw):
    comorbidity = eda.comorbidity_with_pneumonia(nih)
    pneumonia = has_label(raw, "Pneumonia")
    assert "Pneumonia" not in comorbidity.index and len(comorbidity) == 13
    for finding in ("Infiltration", "Edema", "Hernia"):
        assert comorbidity[finding] == (pneumonia & has_label(raw, finding)).sum()
    assert comorbidity.index[0] == "Infiltration"
    assert comorbidity.is_monotonic_decreasing


def test_pneumonia_rate_by_view_and_wilson_interval(nih, raw):
    table = eda.pneumonia_rate_by(nih, nih["view"]).set_index("group")
    expected = has_label(raw, "Pneumonia").groupby(raw["View Position"]).mean()
    assert table["rate"].to_dict() == pytest.approx(expected.to_dict())
    assert (table["ci_low"] < table["rate"]).all() and (table["rate"] < table["ci_high"]).all()
    low, high = eda.wilson_interval(np.array([5]), np.array([10]))
    assert (low[0], high[0]) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    bands = eda.pneumonia_rate_tables(nih)["age_band"]
    assert list(bands["group"]) == list(eda.AGE_BAND_LABELS) and bands["n_images"].sum() == 112_120


def test_official_split_summary_matches_lists(nih, raw, real_data):
    test_names = set((real_data / "nih" / "test_list.txt").read_text().split())
    is_test = raw["Image Index"].isin(test_names)
    table = eda.split_summary(nih, "official_split")
    assert table.loc["test", "n_images"] == is_test.sum() == 25_596
    assert table.loc["train_val", "n_images"] == (~is_test).sum() == 86_524
    assert table.loc["test", "n_patients"] == raw.loc[is_test, "Patient ID"].nunique()
    assert table.loc["test", "n_pneumonia"] == (is_test & has_label(raw, "Pneumonia")).sum()
    assert table["n_pneumonia"].sum() == 1_431
    assert eda.split_patient_overlap(nih, "official_split") == 0
    mixed = pd.DataFrame({"patient_id": ["a", "a", "b"], "official_split": ["train_val", "test", "test"]})
    assert eda.split_patient_overlap(mixed) == 1


def test_pixel_statistics_on_real_pngs(nih):
    images = nih[nih["path"].notna()].head(5)
    stats = pixel_stats.read_pixel_statistics(images, bins=32)
    assert len(stats.table) == 5 and stats.histograms.shape == (5, 32)
    assert stats.mean_image.shape == (1024, 1024)
    width = stats.bin_edges[1] - stats.bin_edges[0]
    assert (stats.histograms.sum(axis=1) * width) == pytest.approx(np.ones(5))
    for row, path in zip(stats.table.itertuples(), images["path"]):
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0
        assert row.mean == pytest.approx(grey.mean(), abs=1e-6)
    assert stats.table["effective_pixel_spacing"].iloc[0] == pytest.approx(
        images["pixel_spacing_x"].iloc[0] * images["width"].iloc[0] / 1024
    )


def test_pixel_statistics_refuse_an_empty_image_list(nih):
    with pytest.raises(ValueError, match="no image rows"):
        pixel_stats.read_pixel_statistics(nih[nih["path"].notna()].head(0))


def test_pixel_group_decisions():
    frame = pd.DataFrame({"label": [1, 0, 0], "n_findings": [2, 0, 1]})
    assert list(pixel_stats.pixel_group(frame)) == ["pneumonia", "no finding", "other finding"]


def test_cli_writes_every_figure_table_and_eda_json(cli_out):
    assert {p.stem for p in cli_out.glob("*.png")} == FIGURES
    assert {p.stem for p in cli_out.glob("*.csv")} == TABLES
    for png in cli_out.glob("*.png"):
        with Image.open(png) as image:
            assert image.width > 500 and image.height > 300
    summary = read_json(cli_out / "eda.json")
    assert REQUIRED_KEYS <= set(summary)
    assert set(summary["figures"]) == {f"{name}.png" for name in FIGURES}
    assert set(summary["age"]) >= {"median", "iqr", "n_cleaned"}
    assert set(summary["split"]) == {"train_val", "test"}
    assert set(summary["split"]["test"]) >= {"n_images", "n_patients", "n_pneumonia"}


def test_cli_numbers_match_raw_files(cli_out, raw, real_data):
    summary = read_json(cli_out / "eda.json")
    assert (summary["n_images"], summary["n_patients"], summary["n_pneumonia_images"]) == (112_120, 30_805, 1_431)
    assert summary["comorbidity_with_pneumonia"]["Infiltration"] == 605
    labels = pd.read_csv(real_data / "rsna" / "stage_2_train_labels.csv")
    rsna = summary["rsna"]
    assert rsna["n_images"] == labels["patientId"].nunique()
    assert rsna["n_boxes"] == labels["x"].notna().sum()
    assert rsna["n_lung_opacity_images"] == labels.groupby("patientId")["Target"].max().sum()
    assert rsna["classes"]["Lung Opacity"] == rsna["n_lung_opacity_images"] and "missing" not in rsna["classes"]
    pixels = summary["pixels"]
    manifest = pd.read_csv(real_data / "nih" / "images_manifest.csv")
    assert pixels["n_images"] == len(manifest) == sum(pixels["groups"].values())
    assert pixels["groups"]["pneumonia"] == manifest["pneumonia"].sum()
    frequency = pd.read_csv(cli_out / "finding_frequency.csv")
    assert frequency.set_index("label")["n_images"].to_dict() == summary["findings"]


@pytest.mark.slow
def test_notebook_executes_and_writes_eda_json(real_data, raw, tmp_path):
    from pneumocxr.notebooks import execute_notebook

    out_dir = tmp_path / "eda"
    execute_notebook("EDA.ipynb", tmp_path / "EDA.ipynb", {"DATA_ROOT": str(real_data), "OUT_DIR": str(out_dir)})
    summary = read_json(out_dir / "eda.json")
    pneumonia = has_label(raw, "Pneumonia")
    assert summary["n_images"] == len(raw)
    assert summary["n_patients"] == raw["Patient ID"].nunique()
    assert summary["n_pneumonia_images"] == pneumonia.sum()
    assert summary["n_pneumonia_patients"] == raw.loc[pneumonia, "Patient ID"].nunique()
    assert summary["sex"] == raw["Patient Gender"].value_counts().to_dict()
    assert summary["split"]["train_val"]["n_images"] + summary["split"]["test"]["n_images"] == len(raw)
    assert {p.stem for p in out_dir.glob("*.png")} == FIGURES
