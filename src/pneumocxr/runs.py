"""Run directory: what a training run leaves behind, and the one place that reads it back.

Layout (``runs/NAME/``): ``config.toml`` (resolved), ``model.keras``, ``threshold.json``,
``history.csv``, ``metrics.json``, ``plots/*.png``, ``manifest.json``, ``eval/DATASET-SPLIT/``.
Reports and inference read only from here, never from a notebook's memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from pneumocxr import __version__
from pneumocxr.config import PROJECT_ROOT, Config, load_config, save_config

TRACKED_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scikit-learn", "scikit-image", "pydicom", "pneumocxr")


class RunError(FileNotFoundError):
    """A run directory that lacks a file it needs; the message names the file."""


def create_run_dir(path: str | os.PathLike, config: Config) -> Path:
    """Make ``path`` and ``path/plots`` and write the resolved ``config.toml``."""
    run = Path(path)
    (run / "plots").mkdir(parents=True, exist_ok=True)
    save_config(config, run / "config.toml")
    return run


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as stable, sorted, indented JSON (NaN written as null), atomically."""
    from pneumocxr.atomic import atomic_write_text

    return atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON artifact, raising ``RunError`` naming the file when it is absent."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: missing (is this a finished run directory?)")
    return json.loads(path.read_text())


def load_run_config(run_dir: str | os.PathLike) -> Config:
    """The resolved config a run was trained with."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise RunError(f"{path}: missing (is this a run directory?)")
    return load_config(path)


def save_threshold(run_dir: str | os.PathLike, threshold: dict[str, Any]) -> Path:
    """Write ``threshold.json`` (must hold at least ``threshold`` and ``rule``)."""
    missing = {"threshold", "rule"} - set(threshold)
    if missing:
        raise ValueError(f"threshold record lacks {sorted(missing)}")
    return write_json(Path(run_dir) / "threshold.json", threshold)


def load_threshold(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The saved operating point of a run."""
    return read_json(Path(run_dir) / "threshold.json")


def load_model(run_dir: str | os.PathLike):
    """The trained ``keras.Model`` saved as ``model.keras`` in the run."""
    import keras

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise RunError(f"{path}: missing (train first: `pneumocxr train`)")
    return keras.models.load_model(path, compile=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_list_hash(rows: Iterable[tuple[Any, ...]]) -> str:
    """SHA-256 over sorted (path name, label, split) tuples: identifies exactly which images a run saw."""
    digest = hashlib.sha256()
    for row in sorted(tuple(str(v) for v in r) for r in rows):
        digest.update(("\t".join(row) + "\n").encode())
    return digest.hexdigest()


def code_version() -> str:
    """Package version plus the git commit (with '-dirty' when the tree has changes)."""
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return f"{__version__}+{sha}"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_manifest(run_dir: str | os.PathLike, config: Config, data_hash: str, weights_path: str | None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json``: run id, code version, seed, data hash, weights sha256, versions."""
    weights_sha = sha256_file(weights_path) if weights_path and Path(weights_path).is_file() else None
    manifest = {
        "run_id": Path(run_dir).resolve().name, "config_name": config.name, "code_version": code_version(),
        "seed": config.data.seed, "data_list_sha256": data_hash, "weights": weights_path or config.model.weights,
        "weights_sha256": weights_sha, "packages": package_versions(), **(extra or {}),
    }
    write_json(Path(run_dir) / "manifest.json", manifest)
    return manifest
