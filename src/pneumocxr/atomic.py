"""Atomic, honest outputs: every file the product writes appears whole or not at all.

* ``atomic_path`` / ``atomic_write_bytes`` / ``atomic_write_text``: the content goes to a temporary
  file beside the target (same folder, so same file system), is flushed and fsync'd, then renamed over
  the target with ``os.replace`` (atomic on POSIX). A failure or a kill leaves the previous file (or no
  file), never a half-written one; the temporary file is removed on failure.
* ``OutputLock``: an exclusive, non-blocking ``flock`` on ``<target>.lock`` (or ``<folder>/.pneumocxr.lock``)
  so that a second writer to the same output is refused at once (``OutputBusyError``) instead of
  interleaving its rows with the first. The lock is released when its process ends, killed or not.
* ``PartialFile``: a stream written as ``<target>.partial`` and renamed to ``<target>`` only when the
  stream ended; an interrupted run leaves a file whose name says it is incomplete.
* ``check_output_kinds``: an existing folder where a file is needed (or the reverse) is refused before
  any work (``OutputConflictError``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
FOLDER_LOCK = ".pneumocxr.lock"


class OutputBusyError(RuntimeError):
    """Another process holds the output's lock."""


class OutputConflictError(ValueError):
    """An output path is of the wrong kind (a file where a folder is needed, or the reverse)."""


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse to open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``target``; on a clean exit it is renamed to ``target``, else removed.

    ``suffix`` (default: the target's own suffixes, e.g. ``.weights.h5``) lets writers that insist on
    a file extension (Keras ``save_weights``) write the temporary file. Parent folders are created.

    Raises
    ------
    OSError
        When the folder cannot be written; the target is then untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes[-2:]) if suffix is None else suffix
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_folder(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (see ``atomic_path``) and return the target."""
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically (see ``atomic_path``) and return the target."""
    return atomic_write_bytes(target, text.encode(encoding))


class OutputLock:
    """An exclusive lock on one output (a file or a folder), refused at once when already held.

    Parameters
    ----------
    target : path
        The output file (lock file ``<target>.lock`` beside it) or, with ``folder=True``, the output
        folder (lock file ``<folder>/.pneumocxr.lock``, created with the folder).
    """

    def __init__(self, target: str | os.PathLike, folder: bool = False) -> None:
        self.target = Path(target)
        self.path = self.target / FOLDER_LOCK if folder else self.target.with_name(self.target.name + LOCK_SUFFIX)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock; raise ``OutputBusyError`` naming the output when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputBusyError(
                    f"{self.target}: another process is writing this output (lock {self.path} is held)"
                ) from None
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the lock file between our open and our lock: take the new one
            os.close(fd)
            return self.acquire()
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock and remove the lock file (when still ours)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class PartialFile:
    """A text stream written as ``<target>.partial`` and renamed to ``<target>`` by ``commit()``.

    Closing without ``commit()`` (an error, an interruption) leaves the ``.partial`` file: the name
    says the results are incomplete. Rows are flushed as they come, so they survive a kill.
    """

    def __init__(self, target: str | os.PathLike, newline: str | None = None, encoding: str = "utf-8") -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + PARTIAL_SUFFIX)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.handle: IO[str] = open(self.partial, "w", newline=newline, encoding=encoding)

    def commit(self) -> Path:
        """Flush, fsync and rename the partial file to its target; return the target."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.target)
        _fsync_folder(self.target.parent)
        return self.target

    def close(self) -> None:
        """Close without committing (the ``.partial`` file stays)."""
        if not self.handle.closed:
            self.handle.close()


def check_output_kinds(
    files: list[str | os.PathLike | None] = (), folders: list[str | os.PathLike | None] = ()
) -> None:
    """Refuse outputs of the wrong kind before any work.

    Raises
    ------
    OutputConflictError
        A path in ``files`` is an existing folder, a path in ``folders`` an existing non-folder, or an
        ancestor of either is an existing non-folder; the message names the path and the conflict.
    """
    for path, want_folder in [*((p, False) for p in files if p), *((p, True) for p in folders if p)]:
        path = Path(path)
        if path.exists() and path.is_dir() != want_folder:
            kind = "a folder" if path.is_dir() else "a file"
            raise OutputConflictError(f"{path}: is {kind}, but a {'folder' if want_folder else 'file'} is needed here")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputConflictError(f"{path}: {parent} is a file, so this output cannot be created")
                break
