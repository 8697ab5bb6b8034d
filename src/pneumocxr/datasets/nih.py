"""Dataset step, NIH ChestX-ray14: metadata, multi-labels, official split, image paths."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.datasets.splits import patient_wise_split

log = logging.getLogger(__name__)

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
_RENAME = {
    "Image Index": "image_index",
    "Finding Labels": "finding_labels",
    "Follow-up #": "follow_up",
    "Patient ID": "patient_id",
    "Patient Age": "age",
    "Patient Gender": "sex",
    "View Position": "view",
    "OriginalImage[Width": "width",
    "Height]": "height",
    "OriginalImagePixelSpacing[x": "pixel_spacing_x",
    "y]": "pixel_spacing_y",
    "OriginalImageWidth": "width",
    "OriginalImageHeight": "height",
    "OriginalImagePixelSpacing_x": "pixel_spacing_x",
    "OriginalImagePixelSpacing_y": "pixel_spacing_y",
}


def find_metadata(nih_dir: Path) -> Path:
    """The ``Data_Entry_2017*.csv[.gz]`` file in ``nih_dir`` (the newest name wins)."""
    candidates = sorted(nih_dir.glob("Data_Entry_2017*.csv*"))
    if not candidates:
        raise FileNotFoundError(f"{nih_dir}: no Data_Entry_2017*.csv metadata file (run `pneumocxr data setup`)")
    return candidates[-1]


def parse_age(values: pd.Series) -> pd.Series:
    """Ages as float years from ints or '060Y'-style strings ('M'/'D' suffixes converted)."""
    text = values.astype(str).str.strip().str.upper()
    number = pd.to_numeric(text.str.extract(r"^(\d+)")[0], errors="coerce")
    unit = text.str.extract(r"([DWMY])$")[0].fillna("Y")
    return number / unit.map({"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0})


def read_metadata(path: Path) -> pd.DataFrame:
    """Read an NIH metadata CSV (Data_Entry or sample_labels) into the common columns."""
    df = pd.read_csv(path).rename(columns=_RENAME)
    df = df.loc[:, ~df.columns.str.startswith("Unnamed")]
    df["patient_id"] = pd.to_numeric(df["patient_id"]).astype(int).map("{:08d}".format)
    df["follow_up"] = pd.to_numeric(df["follow_up"]).astype(int)
    df["age"] = parse_age(df["age"])
    labels = df["finding_labels"].str.split("|")
    for finding in FINDINGS:
        df[finding] = labels.map(lambda names, f=finding: f in names).astype(np.int8)
    df["n_findings"] = df[list(FINDINGS)].sum(axis=1)
    df["label"] = df["Pneumonia"].astype(int)
    return df


def image_folders(nih_dir: Path) -> list[Path]:
    """The NIH image folders present: ``images/`` (flat) and the Kaggle ``images_0NN/`` folders."""
    nih_dir = Path(nih_dir)
    candidates = [nih_dir / "images", *sorted(nih_dir.glob("images_[0-9][0-9][0-9]"))]
    return [folder for folder in candidates if folder.is_dir()]


def index_images(images_dir: Path | list[Path] | None) -> dict[str, str]:
    """Map image file name -> path, for a flat folder or the Kaggle ``images_0NN/images`` layout
    (one folder or several; the first folder holding a name wins)."""
    folders = images_dir if isinstance(images_dir, list) else [images_dir]
    found: dict[str, str] = {}
    for folder in folders:
        if folder is None or not Path(folder).exists():
            continue
        for dirpath, _, filenames in os.walk(folder, followlinks=True):
            for name in filenames:
                if name.lower().endswith(".png"):
                    found.setdefault(name, os.path.join(dirpath, name))
    return found


def official_split(nih_dir: Path, names: pd.Series) -> pd.Series:
    """'train_val' or 'test' from NIH's ``train_val_list.txt`` / ``test_list.txt``."""
    test_list = nih_dir / "test_list.txt"
    if not test_list.exists():
        raise FileNotFoundError(f"{test_list}: official split list missing")
    test = set(test_list.read_text().split())
    return pd.Series(np.where(names.isin(test), "test", "train_val"), index=names.index)


def add_paths_and_splits(
    df: pd.DataFrame, nih_dir: Path, images_dir: Path | None, val_fraction: float, seed: int
) -> pd.DataFrame:
    """Add ``path`` (None when the image is absent), ``official_split`` and the patient-wise ``split``."""
    index = index_images(images_dir or image_folders(nih_dir))
    df["path"] = df["image_index"].map(index).astype(object).where(df["image_index"].isin(index), None)
    df["official_split"] = official_split(nih_dir, df["image_index"])
    inner = patient_wise_split(df[df["official_split"] == "train_val"], val_fraction, seed)
    df["split"] = inner.reindex(df.index).fillna("test")
    missing = int(df["path"].isna().sum())
    if missing:
        log.info("NIH: %d of %d rows have no image file under %s", missing, len(df), images_dir or nih_dir)
    return df


def load_nih(
    root: Path, images_dir: Path | None = None, val_fraction: float = 0.1, seed: int = 42, metadata: Path | None = None
) -> pd.DataFrame:
    """All NIH rows with ``path`` (None when the image is absent), ``label``, ``patient_id``,
    findings, demographics, ``official_split`` and ``split`` (train / val / test).

    ``split`` keeps NIH's official test list and carves a patient-wise validation set out of
    train_val. Images are looked up in ``images_dir`` (flat, or Kaggle ``images_0NN/images``),
    by default in ``nih/images`` and ``nih/images_0NN``. Rows without an image file are kept
    with ``path`` None and logged.
    """
    nih_dir = Path(root) / "nih"
    df = read_metadata(metadata or find_metadata(nih_dir))
    return add_paths_and_splits(df, nih_dir, images_dir, val_fraction, seed)


def load_nih_sample(
    root: Path, images_dir: Path | None = None, val_fraction: float = 0.1, seed: int = 42
) -> pd.DataFrame:
    """The 5,606-image ``sample_labels.csv`` with the same columns as ``load_nih``."""
    nih_dir = Path(root) / "nih"
    df = read_metadata(nih_dir / "sample_labels.csv")
    return add_paths_and_splits(df, nih_dir, images_dir, val_fraction, seed)
