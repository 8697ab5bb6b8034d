"""Data set-up step, inventory: what of each dataset is present under the data root, what is missing.

Every check compares a count (rows of a label file, images in a folder) or a digest with what
the source table expects; ``required`` comes from the table's groups, so a caller can fail when
something the demo and the tests need is absent.
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumocxr.datasets.acquire.sources import SourceTable, load_sources
from pneumocxr.datasets.kermany import CLASSES as KERMANY_CLASSES
from pneumocxr.datasets.nih import image_folders, index_images
from pneumocxr.provenance import file_digest

IMAGE_SUFFIXES = (".png", ".jpeg", ".jpg")
PROBLEMS = ("missing", "partial", "mismatch")


@dataclass(frozen=True)
class Check:
    """One item of the inventory: what was found against what was expected."""

    group: str
    item: str
    status: str  # ok | missing | partial | mismatch | info
    found: Any = None
    expected: Any = None
    required: bool = False
    detail: str = ""

    @property
    def failed(self) -> bool:
        """True when a required item is missing, short or wrong."""
        return self.required and self.status in PROBLEMS

    def to_dict(self) -> dict[str, Any]:
        """The check as a plain dict (for JSON and tables)."""
        return asdict(self)


def count_rows(path: Path) -> int:
    """Data rows of a CSV (after the header) or non-empty lines of a ``.txt`` list; ``.gz`` read through."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        if ".csv" in path.suffixes:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
        return sum(1 for line in handle if line.strip())


def count_images(folder: Path) -> int:
    """Image files (PNG/JPEG) directly in ``folder``; 0 when it is absent."""
    if not folder.is_dir():
        return 0
    return sum(1 for entry in os.scandir(folder) if entry.name.lower().endswith(IMAGE_SUFFIXES))


def compare(group: str, item: str, found: int, expected: int | None, required: bool, detail: str = "") -> Check:
    """``ok`` when ``found`` equals ``expected`` (or nothing is expected and something was found)."""
    if not found:
        status = "missing"
    elif expected is None or found == expected:
        status = "ok"
    else:
        status = "partial" if found < expected else "mismatch"
    return Check(group, item, status, found, expected, required, detail)


def source_checks(root: Path, table: SourceTable) -> list[Check]:
    """Presence (and row count where the table gives one) of every single-file source."""
    checks = []
    for source in table.sources:
        if source.into:  # unpacked folders are counted by the dataset checks below
            continue
        required = table.groups[source.group].required
        path = root / source.destination
        if not path.exists():
            how = source.manual or source.url or f"derived ({source.derive})"
            checks.append(Check(source.group, source.destination, "missing", None, source.rows, required, how))
        elif source.rows is not None:
            checks.append(compare(source.group, source.destination, count_rows(path), source.rows, required, "rows"))
        else:
            checks.append(
                Check(source.group, source.destination, "ok", path.stat().st_size, source.size, required, "bytes")
            )
    return checks


def nih_checks(root: Path, table: SourceTable) -> list[Check]:
    """NIH patients and pneumonia images in the metadata, and the NIH PNGs found on disk."""
    expected, nih = table.expected, root / "nih"
    checks = []
    metadata = sorted(nih.glob("Data_Entry_2017*.csv*")) if nih.is_dir() else []
    if metadata:
        patients, pneumonia = set(), 0
        opener = gzip.open if metadata[-1].suffix == ".gz" else open
        with opener(metadata[-1], "rt", newline="") as handle:
            for row in csv.DictReader(handle):
                patients.add(row["Patient ID"])
                pneumonia += "Pneumonia" in row["Finding Labels"].split("|")
        required = table.groups["nih-metadata"].required
        checks.append(compare("nih-metadata", "NIH patients", len(patients), expected.get("nih_patients"), required))
        checks.append(
            compare("nih-metadata", "NIH pneumonia images", pneumonia, expected.get("nih_pneumonia"), required)
        )
    folders = image_folders(nih)
    found = len(index_images(folders))
    detail = ", ".join(str(f.relative_to(root)) for f in folders) or "no nih/images or nih/images_0NN folder"
    checks.append(
        compare(
            "nih-images",
            "NIH PNG images",
            found,
            expected.get("nih_images"),
            table.groups["nih-images"].required,
            detail,
        )
    )
    return checks


def kermany_checks(root: Path, table: SourceTable) -> list[Check]:
    """Images per official split and class; the train folders are what the loader needs."""
    required = table.groups["kermany"].required
    checks = []
    for split in ("train", "val", "test"):
        for cls in KERMANY_CLASSES:
            found = count_images(root / "kermany" / split / cls)
            if split == "train":
                checks.append(compare("kermany", f"kermany/{split}/{cls}", found, None, required, "images"))
            else:
                checks.append(
                    Check(
                        "kermany",
                        f"kermany/{split}/{cls}",
                        "ok" if found else "info",
                        found,
                        None,
                        False,
                        "images" if found else "absent (optional split)",
                    )
                )
    return checks


def rsna_checks(root: Path, table: SourceTable) -> list[Check]:
    """RSNA DICOMs found (labels are checked as sources; images are optional)."""
    folder = root / "rsna" / "stage_2_train_images"
    found = sum(1 for e in os.scandir(folder) if e.name.endswith(".dcm")) if folder.is_dir() else 0
    return [
        Check(
            "rsna",
            "rsna/stage_2_train_images",
            "ok" if found else "info",
            found,
            table.expected.get("rsna_images"),
            False,
            "DICOMs (optional; labels suffice for EDA)",
        )
    ]


def pneumoniamnist_checks(root: Path, table: SourceTable) -> list[Check]:
    """Images per split in the PneumoniaMNIST archive."""
    path = root / "pneumoniamnist" / "pneumoniamnist.npz"
    expected = table.expected.get("pneumoniamnist", {})
    required = table.groups["pneumoniamnist"].required
    if not path.exists():
        return []  # reported as a missing source already
    with np.load(path) as arrays:
        return [
            compare(
                "pneumoniamnist",
                f"pneumoniamnist {split}",
                len(arrays[f"{split}_labels"]),
                expected.get(split),
                required,
                "images",
            )
            for split in ("train", "val", "test")
        ]


def weights_checks(root: Path, table: SourceTable) -> list[Check]:
    """Each shared file (the VGG16 weights): present, and its sha256 the known one."""
    checks = []
    for shared in table.shared_files:
        path = root / shared.target
        required = table.groups[shared.group].required
        if not path.exists():
            checks.append(
                Check(
                    shared.group,
                    shared.target,
                    "missing",
                    None,
                    shared.sha256,
                    required,
                    "absent; keras.applications downloads weights='imagenet' itself",
                )
            )
            continue
        digest = file_digest(path, "sha256")
        status = "ok" if not shared.sha256 or digest == shared.sha256 else "mismatch"
        # a file that is there but wrong fails even when the group is optional
        checks.append(Check(shared.group, shared.target, status, digest, shared.sha256, True, "sha256"))
    return checks


def project_link_checks(root: Path, project_dir: Path, table: SourceTable) -> list[Check]:
    """The project-level links the notebooks open resolve to the data root's files."""
    checks = []
    for name, relative in table.project_links.items():
        link = project_dir / name
        ok = link.exists() and link.resolve() == (root / relative).resolve()
        checks.append(
            Check(
                "project-links",
                str(link),
                "ok" if ok else "missing",
                str(link.resolve()) if link.exists() else None,
                str((root / relative).resolve()),
                True,
                "made by `pneumocxr data setup`",
            )
        )
    return checks


def verify_data(
    root: str | os.PathLike, project_dir: str | os.PathLike | None = None, table: SourceTable | None = None
) -> list[Check]:
    """Every check of the inventory, dataset by dataset (project links when ``project_dir`` is given)."""
    root = Path(root)
    table = table or load_sources()
    checks = source_checks(root, table) + nih_checks(root, table) + kermany_checks(root, table)
    checks += rsna_checks(root, table) + pneumoniamnist_checks(root, table) + weights_checks(root, table)
    if project_dir is not None:
        checks += project_link_checks(root, Path(project_dir), table)
    order = list(table.groups) + ["project-links"]
    return sorted(checks, key=lambda c: order.index(c.group) if c.group in order else len(order))
