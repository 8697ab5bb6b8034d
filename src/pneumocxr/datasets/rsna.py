"""Dataset step, RSNA Pneumonia Detection Challenge: labels, boxes, three classes, DICOM headers."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pneumocxr.datasets.splits import patient_wise_split

CLASSES = ("Normal", "No Lung Opacity / Not Normal", "Lung Opacity")


def load_rsna_boxes(root: Path) -> pd.DataFrame:
    """One row per box (or per negative image): patientId, x, y, width, height, Target, class."""
    base = Path(root) / "rsna"
    labels = pd.read_csv(base / "stage_2_train_labels.csv")
    classes = pd.read_csv(base / "stage_2_detailed_class_info.csv").drop_duplicates("patientId")
    return labels.merge(classes, on="patientId", how="left")


def load_rsna(root: Path, val_fraction: float = 0.15, seed: int = 42) -> pd.DataFrame:
    """One row per RSNA image: ``path`` (None when the DICOM is absent), ``label`` (Target),
    ``patient_id``, ``class``, ``n_boxes``, ``boxes`` (list of (x, y, w, h)), header values
    (age, sex, view, modality, body_part) and a patient-wise ``split``.
    """
    base = Path(root) / "rsna"
    boxes = load_rsna_boxes(root)
    grouped = boxes.groupby("patientId", sort=False)
    label = grouped["Target"].max().astype(int)
    located = boxes.dropna(subset=["x"])
    box_lists = (
        pd.Series(
            list(zip(located["x"], located["y"], located["width"], located["height"])), index=located["patientId"]
        )
        .groupby(level=0, sort=False)
        .agg(list)
    )
    df = pd.DataFrame(
        {
            "patient_id": label.index.to_numpy(),
            "label": label.to_numpy(),
            "class": grouped["class"].first().reindex(label.index).to_numpy(),
            "n_boxes": grouped["x"].count().reindex(label.index).to_numpy(),
            "boxes": [found if isinstance(found, list) else [] for found in box_lists.reindex(label.index)],
        }
    )
    # stage_2_detailed_class_info.csv lacks one positive image; Target 1 is by definition "Lung Opacity"
    df["class"] = df["class"].where(df["class"].notna() | (df["label"] == 0), "Lung Opacity")
    headers_path = base / "kaggle_stage_2_train_images_dicom_headers.csv.gz"
    if headers_path.exists():
        names = {
            "PatientID": "patient_id",
            "PatientAge": "age",
            "PatientSex": "sex",
            "ViewPosition": "view",
            "Modality": "modality",
            "BodyPartExamined": "body_part",
        }
        headers = pd.read_csv(headers_path, usecols=list(names)).rename(columns=names)
        df = df.merge(headers.drop_duplicates("patient_id"), on="patient_id", how="left")
    images = base / "stage_2_train_images"
    present = {entry.name for entry in os.scandir(images)} if images.is_dir() else set()
    df["path"] = [str(images / f"{pid}.dcm") if f"{pid}.dcm" in present else None for pid in df["patient_id"]]
    df["split"] = patient_wise_split(df, val_fraction, seed)
    return df
