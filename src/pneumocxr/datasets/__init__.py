"""Dataset step: one loader per public dataset, all returning the same core columns.

Every loader returns a DataFrame with at least ``path`` (str, or None when the file is absent),
``label`` (1 = pneumonia), ``patient_id`` (str) and ``split``; dataset-specific columns follow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pneumocxr.datasets.kermany import load_kermany
from pneumocxr.datasets.nih import load_nih, load_nih_sample
from pneumocxr.datasets.pneumoniamnist import load_pneumoniamnist
from pneumocxr.datasets.registry import DATASETS, dataset
from pneumocxr.datasets.rsna import load_rsna
from pneumocxr.datasets.splits import assert_patient_disjoint, patient_wise_split, stratified_limit

CORE_COLUMNS = ("path", "label", "patient_id", "split")
LOADERS = {name: row.loader for name, row in DATASETS.items()}


def load_dataset(name: str, root: str | Path, **options) -> pd.DataFrame:
    """Load dataset ``name`` (a key of ``registry.DATASETS``) from data root ``root``; options go to its loader.

    Raises
    ------
    ValueError
        ``name`` is not a known dataset.
    """
    return dataset(name).loader(Path(root), **options)


def with_images(df: pd.DataFrame) -> pd.DataFrame:
    """Only rows whose image file is present; the number dropped is available as ``attrs['n_missing']``."""
    present = df[df["path"].notna()].copy()
    present.attrs["n_missing"] = int(len(df) - len(present))
    return present


__all__ = [
    "CORE_COLUMNS",
    "DATASETS",
    "LOADERS",
    "dataset",
    "assert_patient_disjoint",
    "load_dataset",
    "load_kermany",
    "load_nih",
    "load_nih_sample",
    "load_pneumoniamnist",
    "load_rsna",
    "patient_wise_split",
    "stratified_limit",
    "with_images",
]
