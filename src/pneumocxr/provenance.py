"""Provenance: what identifies a run's inputs and code - file digests, the data list hash, code and package versions.

``runs.write_manifest`` records them in ``manifest.json``; ``prepare`` stamps shards with the data list
hash; data set-up checks downloads with ``file_digest``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from pneumocxr import __version__
from pneumocxr.config import PROJECT_ROOT

TRACKED_PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scikit-learn", "scikit-image", "pydicom", "pneumocxr")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest (``sha256`` or ``md5``, any name ``hashlib.new`` takes) of a file's bytes, read in chunks.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        ``algorithm`` is not a hash ``hashlib`` knows.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (``file_digest`` with ``sha256``)."""
    return file_digest(path, "sha256")


def data_list_hash(rows: Iterable[tuple[Any, ...]]) -> str:
    """SHA-256 over sorted (path name, label, split) tuples: identifies exactly which images a run saw."""
    digest = hashlib.sha256()
    for row in sorted(tuple(str(v) for v in r) for r in rows):
        digest.update(("\t".join(row) + "\n").encode())
    return digest.hexdigest()


def git_output(folder: str | os.PathLike, *args: str) -> str | None:
    """Standard output of ``git -C folder ARGS`` (stripped), or None when git is missing, fails or takes over 10 s."""
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def code_version() -> str:
    """Package version plus the git commit (with '-dirty' when the tree has changes)."""
    sha = git_output(PROJECT_ROOT, "describe", "--always", "--dirty")
    return f"{__version__}+{'unknown' if sha is None else sha}"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
