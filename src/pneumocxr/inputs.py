"""What a batch is made of: every input named or found, exactly once, whatever its name or link.

``walk_inputs`` turns the paths a user gives (files and folders) into ``Found`` items, lazily and in
order: files as given; folders walked recursively in sorted order (hidden entries - names starting
with "." - skipped, as folders' own bookkeeping files). Nothing found is dropped silently:

* a dangling symbolic link, a symbolic-link loop, a folder that cannot be listed, a folder with no
  files, and a link to a folder already walked in this batch each become an item with a ``problem``
  (the reason its row will carry);
* linked folders are followed once (loops are detected by device and inode, not by name);
* any name the operating system returns - 250 characters, bytes that are not UTF-8 - is kept as the
  OS gave it (``os.fsencode`` recovers the bytes).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Found:
    """One input of a batch: its path and, when it cannot be read as a file, why."""

    path: Path
    problem: str | None = None


def _os_reason(exc: OSError) -> str:
    """A short reason for an OS error, without the path (which may carry identity)."""
    return exc.strerror or type(exc).__name__


def link_problem(path: Path) -> str | None:
    """Why ``path`` cannot be opened as a file when it is a broken link or a link loop, else None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop: the link never reaches a file"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "dangling symbolic link: its target does not exist"
        if exc.errno == errno.ENAMETOOLONG:
            return "file name too long for this system"
    return None


def _walk(folder: Path, seen: set[tuple[int, int]]) -> Iterator[Found]:
    """Items under ``folder`` (sorted, recursive, links followed once)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        yield Found(folder, f"folder cannot be listed ({_os_reason(exc)})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        problem = link_problem(path)
        if problem:
            yield Found(path, problem)
            continue
        try:
            is_dir = entry.is_dir()
        except OSError as exc:
            yield Found(path, f"cannot be read ({_os_reason(exc)})")
            continue
        if is_dir:
            yield from _folder(path, seen, named=False)
        else:
            yield Found(path)


def _folder(folder: Path, seen: set[tuple[int, int]], named: bool = True) -> Iterator[Found]:
    """A folder's items; or one item saying why it has none: already walked (reached again through a
    link), or empty when the user ``named`` it (an empty sub-folder is no input and gets no row)."""
    try:
        info = os.stat(folder)
    except OSError as exc:
        yield Found(folder, f"folder cannot be read ({_os_reason(exc)})")
        return
    key = (info.st_dev, info.st_ino)
    if key in seen:
        yield Found(folder, "link to a folder already walked in this batch (skipped to avoid a loop)")
        return
    seen.add(key)
    found = False
    for item in _walk(folder, seen):
        found = True
        yield item
    if not found and named:
        yield Found(folder, "is a folder with no files in it")


def walk_inputs(paths: Iterable[str | os.PathLike | Found]) -> Iterator[Found]:
    """Every input named in ``paths`` or found in its folders, once each, in order (see module doc)."""
    seen: set[tuple[int, int]] = set()
    for item in paths:
        if isinstance(item, Found):
            yield item
            continue
        path = Path(item)
        problem = link_problem(path)
        if problem is None and path.is_dir():
            yield from _folder(path, seen)
        else:
            yield Found(path, problem)
