"""Reference boxes drawn by radiologists: NIH ChestX-ray14 ``BBox_List_2017.csv``, RSNA
``stage_2_train_labels.csv``, and the boxed films of ``data/boxes`` that carry both.

One small interface: every loader returns a ``pandas.DataFrame`` with the columns ``REFERENCE_COLUMNS``
(one row per box; an image read with no box - an RSNA Target=0 row - has NaN coordinates), and
``boxes_by_image`` turns it into ``{image_id: [Box, ...]}`` (``[]`` for an image read as empty).
Coordinates are original pixels (x = left column, y = top row), as both CSVs store them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.localize.boxes import Box

REFERENCE_COLUMNS = ["image_id", "finding", "x", "y", "width", "height"]
RSNA_FINDING = "Lung Opacity"
NIH_BBOX_FILE = "nih/BBox_List_2017.csv"
RSNA_LABELS_FILE = "rsna/stage_2_train_labels.csv"
BOXES_MANIFEST = "boxes/manifest.csv"


def _check_columns(frame: pd.DataFrame, needed: list[str], path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming the file and the missing columns."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; is this the right label file?")


def load_nih_boxes(path: str | os.PathLike, finding: str | None = None) -> pd.DataFrame:
    """NIH ``BBox_List_2017.csv`` (Image Index, Finding Label, Bbox [x,y,w,h]) as reference boxes.

    The header's ``Bbox [x,y,w,h]`` spans four columns, so the file is read by position. ``finding``
    keeps one finding (e.g. "Pneumonia"). Raises ``ValueError`` when the file has fewer than six
    columns or non-numeric coordinates.
    """
    raw = pd.read_csv(path, header=0)
    if raw.shape[1] < 6:
        raise ValueError(f"{path}: expected Image Index, Finding Label and 4 box columns, got {list(raw.columns)}")
    frame = pd.DataFrame({"image_id": raw.iloc[:, 0].astype(str), "finding": raw.iloc[:, 1].astype(str)})
    for column, index in zip(("x", "y", "width", "height"), range(2, 6)):
        values = pd.to_numeric(raw.iloc[:, index], errors="coerce")
        if values.isna().any():
            raise ValueError(f"{path}: non-numeric box coordinate in column {index + 1}")
        frame[column] = values.astype(float)
    return frame if finding is None else frame[frame["finding"] == finding].reset_index(drop=True)


def load_rsna_boxes(path: str | os.PathLike) -> pd.DataFrame:
    """RSNA ``stage_2_train_labels.csv`` (patientId, x, y, width, height, Target) as reference boxes.

    Target=1 rows are "Lung Opacity" boxes; Target=0 rows keep the image with NaN coordinates (read,
    no box). Raises ``ValueError`` when a column is missing or a Target=1 row lacks coordinates.
    """
    raw = pd.read_csv(path)
    _check_columns(raw, ["patientId", "x", "y", "width", "height", "Target"], path)
    positive = raw["Target"] == 1
    if raw.loc[positive, ["x", "y", "width", "height"]].isna().any(axis=None):
        raise ValueError(f"{path}: a Target=1 row has no box coordinates")
    frame = pd.DataFrame(
        {"image_id": raw["patientId"].astype(str), "finding": np.where(positive, RSNA_FINDING, "none")}
    )
    for column in ("x", "y", "width", "height"):
        frame[column] = raw[column].astype(float).where(positive)
    return frame


def boxes_by_image(frame: pd.DataFrame, finding: str | None = None) -> dict[str, list[Box]]:
    """``{image_id: [Box, ...]}`` from a reference frame; images whose rows have no box map to ``[]``.

    With ``finding``, boxes of other findings are dropped but their images stay (as ``[]``).
    """
    out: dict[str, list[Box]] = {}
    for row in frame.itertuples(index=False):
        boxes = out.setdefault(row.image_id, [])
        if (finding is None or row.finding == finding) and not pd.isna(row.x):
            boxes.append(Box(row.x, row.y, row.width, row.height))
    return out


@dataclass(frozen=True)
class BoxedFilm:
    """A real radiograph with reference boxes: its file, NIH and RSNA ids and which part it is in."""

    path: Path
    nih_id: str | None
    rsna_id: str | None
    part: str  # "tune" (rules are chosen here) or "report" (metrics are reported here)


def split_part(key: str) -> str:
    """'tune' or 'report' from the first hex digit of SHA-256(key): fixed, seedless, about half each."""
    return "tune" if int(hashlib.sha256(key.encode()).hexdigest()[0], 16) < 8 else "report"


def load_boxed_films(root: str | os.PathLike) -> list[BoxedFilm]:
    """The films of ``ROOT/boxes/manifest.csv`` that are present, each with its NIH and/or RSNA id.

    Raises ``FileNotFoundError`` naming the manifest when it is absent.
    """
    root = Path(root)
    manifest_path = root / BOXES_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: boxed-film manifest not found; run `pneumocxr data setup`")
    manifest = pd.read_csv(manifest_path)
    _check_columns(manifest, ["file", "dataset", "image_id"], manifest_path)
    films = []
    for file, rows in manifest.groupby("file", sort=True):
        path = (manifest_path.parent / file).resolve()
        if not path.is_file():
            continue
        ids = {
            d: str(rows.loc[rows["dataset"] == d, "image_id"].iloc[0]) if (rows["dataset"] == d).any() else None
            for d in ("nih", "rsna")
        }
        films.append(BoxedFilm(path, ids["nih"], ids["rsna"], split_part(path.name)))
    return films


def manifest_boxes(root: str | os.PathLike) -> dict[tuple[str, str, str], list[Box]]:
    """``{(dataset, image_id, finding): [Box, ...]}`` as copied into the manifest (to cross-check the loaders)."""
    manifest = pd.read_csv(Path(root) / BOXES_MANIFEST)
    out: dict[tuple[str, str], list[Box]] = {}
    for row in manifest.itertuples(index=False):
        boxes = out.setdefault((row.dataset, str(row.image_id), row.finding), [])
        boxes.extend(Box(*map(float, xywh)) for xywh in json.loads(row.boxes_xywh))
    return out
