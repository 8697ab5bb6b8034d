"""Dataset table: everything the project knows about a dataset, in one place.

Adding a dataset means writing its loader (a module of this package) and adding one ``Dataset`` row to
``DATASETS``: the loader, whether it takes a patient-wise ``val_fraction``/``seed``, the pixel reader for
rows whose ``path`` is not an image file (an archive member such as ``pneumoniamnist.npz#train/0``), the
institution its images come from, its title and population text for the report, and the subgroup
columns it carries. ``config`` validates ``[data] dataset`` against this table; ``datasets.load_dataset``,
``pipeline``, ``preprocess.load_pixels`` and the report read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.datasets.kermany import load_kermany
from pneumocxr.datasets.nih import load_nih
from pneumocxr.datasets.pneumoniamnist import MEMBER_SUFFIX, load_pneumoniamnist, read_member
from pneumocxr.datasets.rsna import load_rsna

NIH_SOURCE = "NIH Clinical Center"
GUANGZHOU_SOURCE = "Guangzhou Women and Children's Medical Center"


@dataclass(frozen=True)
class Dataset:
    """One dataset's facts.

    Attributes
    ----------
    name : str
        The ``[data] dataset`` value.
    loader : callable
        ``loader(root: Path, **options) -> DataFrame`` with at least ``path``, ``label``, ``patient_id``,
        ``split`` (``datasets.CORE_COLUMNS``).
    patient_split : bool
        True when the loader carves a patient-wise validation split (takes ``val_fraction`` and ``seed``);
        False when it ships official splits.
    member_suffix : str or None
        Archive suffix (``".npz"``) of rows whose ``path`` names an archive member ``ARCHIVE#split/index``.
    read_member : callable or None
        ``read_member(path: str) -> ndarray`` (H, W) float32 in [0, 1] for such a path.
    source : str
        Institution the images come from: evaluations on the training source are internal.
    title : str
        Name in the report.
    description : str
        Population text for the report (who was imaged, how labels were made).
    pediatric : bool
        True when the patients are children (the report and the gate's age range follow).
    subgroup_columns : tuple of str
        Demographic columns the loader fills (``sex``, ``age``, ``view``), for subgroup tables.
    """

    name: str
    loader: Callable[..., pd.DataFrame]
    patient_split: bool
    source: str
    title: str
    description: str
    pediatric: bool = False
    subgroup_columns: tuple[str, ...] = ()
    member_suffix: str | None = None
    read_member: Callable[[str], np.ndarray] | None = None


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "nih",
            load_nih,
            True,
            NIH_SOURCE,
            "NIH ChestX-ray14",
            "frontal chest radiographs (PA and AP) of mostly adult patients of the NIH Clinical Center (Wang et al. "
            "2017), each with report-mined finding labels; pneumonia is one of fourteen findings and often occurs "
            "with others.",
            subgroup_columns=("sex", "age", "view"),
        ),
        Dataset(
            "kermany",
            load_kermany,
            True,
            GUANGZHOU_SOURCE,
            "Kermany pediatric chest X-rays",
            "anterior-posterior chest radiographs of children from routine care at Guangzhou Women and Children's "
            "Medical Center (Kermany et al. 2018), graded normal or pneumonia (bacterial or viral).",
            pediatric=True,
        ),
        Dataset(
            "rsna",
            load_rsna,
            True,
            NIH_SOURCE,
            "RSNA Pneumonia (NIH images)",
            "NIH ChestX-ray14 images re-read by radiologists for the RSNA Pneumonia Detection Challenge, labelled by "
            "whether they show lung opacity suggestive of pneumonia.",
            subgroup_columns=("sex", "age", "view"),
        ),
        Dataset(
            "pneumoniamnist",
            load_pneumoniamnist,
            False,
            GUANGZHOU_SOURCE,
            "PneumoniaMNIST (downsampled Kermany)",
            "the Kermany pediatric radiographs downsampled to 28 x 28 thumbnails (MedMNIST, Yang et al. 2023), "
            "with MedMNIST's official splits.",
            pediatric=True,
            member_suffix=MEMBER_SUFFIX,
            read_member=read_member,
        ),
    )
}


def dataset(name: str) -> Dataset:
    """The table row of dataset ``name``.

    Raises
    ------
    ValueError
        ``name`` is not in ``DATASETS``; the message lists the known names.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset '{name}'; expected one of {', '.join(sorted(DATASETS))}") from None


def member_reader(path: str) -> Callable[[str], np.ndarray] | None:
    """The reader of an archive-member path (``ARCHIVE.npz#split/index``), or None for a plain file path."""
    archive, sep, _ = str(path).partition("#")
    if not sep:
        return None
    suffix = Path(archive).suffix.lower()
    for row in DATASETS.values():
        if row.member_suffix == suffix and row.read_member is not None:
            return row.read_member
    return None
