"""Dataset step, PneumoniaMNIST (MedMNIST, 28x28): arrays from the .npz, official splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = {"train": "train", "val": "val", "test": "test"}


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
            frames.append(pd.DataFrame({
                "path": [f"{source}#{split}/{i}" for i in range(len(labels))],
                "label": labels, "split": split, "index": np.arange(len(labels)),
                "patient_id": [f"mnist-{split}-{i}" for i in range(len(labels))],
            }))
    return pd.concat(frames, ignore_index=True)


def pneumoniamnist_pixels(root: Path, split: str) -> np.ndarray:
    """The (N, 28, 28) uint8 images of one split."""
    with np.load(npz_path(root)) as arrays:
        return arrays[f"{split}_images"]
