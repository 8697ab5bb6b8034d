"""Data set-up step, files rebuilt locally: NIH's official split lists from the NIH metadata.

NIH's split is by patient, and NIH publishes the two lists only inside its Box folder. The
packaged ``nih_test_patients.txt`` names the 2,797 official test patients; from it and
``Data_Entry_2017*.csv`` the lists are rebuilt byte for byte as NIH ships them: ``test_list.txt``
holds the test patients' images in metadata order, one per line; ``train_val_list.txt`` every
other image, sorted, lines joined without a final newline. The source table's sha256 of NIH's
own files is checked before a list is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pneumocxr.datasets.nih import find_metadata

TEST_PATIENTS = Path(__file__).with_name("nih_test_patients.txt")


class DeriveError(RuntimeError):
    """A file that could not be rebuilt; the message names the file and the reason."""


def official_test_patients(path: Path = TEST_PATIENTS) -> set[str]:
    """The 8-digit ids of NIH's official test patients."""
    return set(path.read_text().split())


def metadata_images(root: Path) -> pd.DataFrame:
    """``image`` and 8-digit ``patient`` of every NIH metadata row, in file order."""
    path = find_metadata(Path(root) / "nih")
    frame = pd.read_csv(path, usecols=["Image Index", "Patient ID"])
    return pd.DataFrame(
        {"image": frame["Image Index"], "patient": frame["Patient ID"].astype(int).map("{:08d}".format)}
    )


def nih_test_list(root: Path) -> bytes:
    """NIH's ``test_list.txt``: the test patients' images in metadata order, newline-terminated."""
    images = metadata_images(root)
    names = images.loc[images["patient"].isin(official_test_patients()), "image"]
    return "".join(f"{name}\n" for name in names).encode()


def nih_train_val_list(root: Path) -> bytes:
    """NIH's ``train_val_list.txt``: every non-test image, sorted, without a final newline."""
    images = metadata_images(root)
    names = sorted(images.loc[~images["patient"].isin(official_test_patients()), "image"])
    return "\n".join(names).encode()


RECIPES: dict[str, Callable[[Path], bytes]] = {
    "nih-test-list": nih_test_list,
    "nih-train-val-list": nih_train_val_list,
}


def derive_file(recipe: str, root: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Rebuild ``dest`` with ``recipe`` from files under ``root``; check ``sha256``; write atomically."""
    root, dest = Path(root), Path(dest)
    if recipe not in RECIPES:
        raise DeriveError(f"{dest}: unknown recipe '{recipe}'; known: {sorted(RECIPES)}")
    try:
        data = RECIPES[recipe](root)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise DeriveError(f"{dest}: cannot rebuild with '{recipe}' ({exc})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if sha256 and actual != sha256.lower():
        raise DeriveError(
            f"{dest}: rebuilt file has sha256 {actual}, expected {sha256} "
            "(is the metadata NIH's Data_Entry_2017_v2020?)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.replace(part, dest)
    return dest
