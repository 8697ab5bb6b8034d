"""Dataset step, Kermany pediatric chest X-rays: folder layout, patient ids from file names."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pneumocxr.datasets.splits import patient_wise_split

CLASSES = {"NORMAL": 0, "PNEUMONIA": 1}
_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_"),  # person1000_bacteria_2931.jpeg
    re.compile(r"^(NORMAL2-IM-\d+)-"),  # NORMAL2-IM-1427-0001.jpeg
    re.compile(r"^(IM-\d+)-"),  # IM-0115-0001.jpeg
)


def patient_id_from_name(name: str) -> str:
    """Patient id carried in a Kermany file name; raise ``ValueError`` naming the file."""
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1)
    raise ValueError(f"{name}: file name carries no patient id (expected personN_, IM-XXXX- or NORMAL2-IM-XXXX-)")


def pathogen_from_name(name: str) -> str:
    """'bacteria', 'virus' or 'none' from the file name."""
    lowered = name.lower()
    return "bacteria" if "bacteria" in lowered else "virus" if "virus" in lowered else "none"


def load_kermany(root: Path, val_fraction: float = 0.15, seed: int = 42) -> pd.DataFrame:
    """Every image under ``kermany/{train,val,test}/{NORMAL,PNEUMONIA}`` with ``path``, ``label``,
    ``patient_id``, ``pathogen``, ``official_split`` and ``split``.

    ``split``: the official train folder is divided patient-wise into train / val; the official
    16-image val folder becomes ``official_val``; the test folder (when present) stays ``test``.
    """
    base = Path(root) / "kermany"
    rows = []
    for official in ("train", "val", "test"):
        for cls, label in CLASSES.items():
            folder = base / official / cls
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in (".jpeg", ".jpg", ".png"):
                    rows.append(
                        {
                            "path": str(path),
                            "label": label,
                            "patient_id": patient_id_from_name(path.name),
                            "pathogen": pathogen_from_name(path.name),
                            "official_split": official,
                        }
                    )
    if not rows:
        raise FileNotFoundError(
            f"{base}: no images in train/val/test NORMAL|PNEUMONIA folders (run `pneumocxr data setup`)"
        )
    df = pd.DataFrame(rows)
    df["split"] = df["official_split"].map({"train": "train", "val": "official_val", "test": "test"})
    train = df["official_split"] == "train"
    df.loc[train, "split"] = patient_wise_split(df[train], val_fraction, seed)
    return df
