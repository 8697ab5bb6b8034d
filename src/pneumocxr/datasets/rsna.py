"""Dataset step, RSNA Pneumonia Detection Challenge: labels, boxes, three classes, DICOM headers."""

from __future__ import annotations

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
    df = pd.DataFrame({
        "patient_id": list(grouped.groups),
        "label": grouped["Target"].max().astype(int).to_numpy(),
        "class": grouped["class"].first().to_numpy(),
        "n_boxes": grouped["x"].count().to_numpy(),
        "boxes": grouped.apply(lambda g: [tuple(r) for r in g[["x", "y", "width", "height"]].dropna().to_numpy()],
                               include_groups=False).to_numpy(),
    })
    # stage_2_detailed_class_info.csv lacks one positive image; Target 1 is by definition "Lung Opacity"
    df["class"] = df["class"].where(df["class"].notna() | (df["label"] == 0), "Lung Opacity")
    headers_path = base / "kaggle_stage_2_train_images_dicom_headers.csv.gz"
    if headers_path.exists():
        names = {"PatientID": "patient_id", "PatientAge": "age", "PatientSex": "sex", "ViewPosition": "view",
                 "Modality": "modality", "BodyPartExamined": "body_part"}
        headers = pd.read_csv(headers_path, usecols=list(names)).rename(columns=names)
        df = df.merge(headers.drop_duplicates("patient_id"), on="patient_id", how="left")
    images = base / "stage_2_train_images"
    df["path"] = [str(images / f"{pid}.dcm") if (images / f"{pid}.dcm").exists() else None for pid in df["patient_id"]]
    df["split"] = patient_wise_split(df, val_fraction, seed)
    return df
