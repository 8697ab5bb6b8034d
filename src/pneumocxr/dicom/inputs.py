"""Input step: the files named or found in folders, in order, each to get one result row."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, sorted, listing one directory at a time (hidden files skipped)."""
    try:
        entries = sorted(Path(e.path) for e in os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.is_file() and not entry.name.startswith("."):
            yield entry


def iter_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files given, plus the files inside folders given (sorted, recursive), in input order, lazily.

    A path that does not exist, or a folder with no files, is kept so that it gets its own row.
    """
    for item in map(Path, paths):
        found = False
        if item.is_dir():
            for file in _walk(item):
                found = True
                yield file
        if not found:
            yield item


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """``iter_inputs`` as a list (for small batches such as ``pneumocxr check``)."""
    return list(iter_inputs(paths))
