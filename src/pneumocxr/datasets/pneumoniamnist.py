"""Dataset step, PneumoniaMNIST (MedMNIST, 28x28): arrays from the .npz, official splits."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = {"train": "train", "val": "val", "test": "test"}
MEMBER_SUFFIX = ".npz"


def npz_path(root: Path) -> Path:
    """Location of ``pneumoniamnist.npz`` under the data root."""
    return Path(root) / "pneumoniamnist" / "pneumoniamnist.npz"


def load_pneumoniamnist(root: Path) -> pd.DataFrame:
    """One row per image: ``path`` ('<npz>#<split>/<index>'), ``label``, ``patient_id``, ``split``, ``index``.

    MedMNIST ships no patient ids; its official splits are used as they are and each image is
    its own ``patient_id`` (so the leakage check is vacuous here, and says so in its name).
    """
    source = npz_path(root)
    if not source.exists():
        raise FileNotFoundError(f"{source}: PneumoniaMNIST archive missing (run `pneumocxr data setup`)")
    with np.load(source) as arrays:
        frames = []
        for split in SPLITS:
            labels = arrays[f"{split}_labels"].reshape(-1).astype(int)
            frames.append(
                pd.DataFrame(
                    {
                        "path": [f"{source}#{split}/{i}" for i in range(len(labels))],
                        "label": labels,
                        "split": split,
                        "index": np.arange(len(labels)),
                        "patient_id": [f"mnist-{split}-{i}" for i in range(len(labels))],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def pneumoniamnist_pixels(root: Path, split: str) -> np.ndarray:
    """The (N, 28, 28) uint8 images of one split."""
    with np.load(npz_path(root)) as arrays:
        return arrays[f"{split}_images"]


@lru_cache(maxsize=8)
def _split_images(source: str, split: str) -> np.ndarray:
    """The (N, 28, 28) uint8 images of one split of one archive, read once per process."""
    with np.load(source) as arrays:
        return arrays[f"{split}_images"]


def read_member(path: str) -> np.ndarray:
    """Pixels of one image named ``'<npz>#<split>/<index>'`` as (28, 28) float32 in [0, 1].

    Raises
    ------
    ValueError
        The path does not name a split and index, or the index is out of range.
    OSError
        The archive cannot be read.
    """
    source, _, member = str(path).partition("#")
    split, _, index = member.partition("/")
    if split not in SPLITS or not index.isdigit():
        raise ValueError(f"expected '<archive>.npz#<split>/<index>' with split in {sorted(SPLITS)}")
    try:
        images = _split_images(source, split)
    except KeyError as exc:
        raise ValueError(f"archive has no {split}_images array") from exc
    if int(index) >= len(images):
        raise ValueError(f"index {index} is past the {len(images)} images of split '{split}'")
    return images[int(index)].astype(np.float32) / 255.0
