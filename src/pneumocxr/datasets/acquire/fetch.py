"""Data set-up step, downloads: resumable HTTP transfer, digest check, archive unpacking.

A file is fetched into ``<dest>.part`` (resumed with an HTTP ``Range`` request after an
interruption), checked against its size and sha256/md5 when the source table gives them, and
only then renamed to ``dest`` - so a file at its final name is always complete and verified.
Archives unpack into ``<folder>.partial`` and are renamed when complete, for the same reason;
a single member of an archive (even of an archive inside it) is written the same way.
"""

from __future__ import annotations

import fnmatch
import http.client
import io
import logging
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pneumocxr import __version__
from pneumocxr.provenance import file_digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = f"pneumocxr/{__version__} (data setup; python urllib)"
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download or unpacking that failed; the message names the URL (or archive) and the reason."""


class _Retryable(Exception):
    """A transient failure (connection dropped, 5xx): the transfer is resumed."""


def content_range_start(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from a ``Content-Range: bytes a-b/total`` header (None when absent)."""
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", header or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Open ``url`` from byte ``offset``; HTTP errors become ``DownloadError`` or ``_Retryable``."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise  # handled by the caller: the server has nothing after ``offset``
        if exc.code in RETRYABLE_HTTP:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retryable(str(getattr(exc, "reason", exc))) from exc


def transfer(url: str, part: Path, size: int | None = None, timeout: float = 60.0, progress: bool = True) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its current length) until complete.

    Raises ``_Retryable`` when the connection fails part-way (what is written stays for the
    next attempt) and ``DownloadError`` for errors a retry cannot fix.
    """
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:
        if have > size:
            part.unlink()
            have = 0
        else:
            return
    try:
        response = _open(url, have, timeout)
    except urllib.error.HTTPError as exc:  # 416: nothing left after ``have`` - the part is whole
        log.info("%s: server has no bytes after %d (%s); checking the partial file", url, have, exc.reason)
        return
    with response:
        start, total = content_range_start(response.headers.get("Content-Range"))
        if have and (response.status != 206 or start != have):
            log.info("%s: server ignored the resume request; starting again from byte 0", url)
            have = 0
        length = response.headers.get("Content-Length")
        if total is None and length is not None:
            total = have + int(length)
        name = part.name.removesuffix(".part")
        with (
            open(part, "ab" if have else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name,
                disable=None if progress else True,
                leave=False,
            ) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(f"connection lost after {out.tell()} bytes ({exc!r})") from exc
    written = part.stat().st_size
    if total is not None and written < total:
        raise _Retryable(f"connection closed after {written} of {total} bytes")


def verify_file(
    path: Path, url: str, size: int | None = None, sha256: str | None = None, md5: str | None = None
) -> None:
    """Raise ``DownloadError`` naming ``url`` when the file's size or digest is not the expected one."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadError(f"{url}: size mismatch, expected {size} bytes, got {actual_size}")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                raise DownloadError(f"{url}: {algorithm} mismatch, expected {expected}, got {actual}")


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with resume, retries and digest check; return ``dest``.

    The bytes go to ``dest.part``; after ``retries`` failed attempts the part is kept (the next
    run resumes it). A part with the wrong size or digest is deleted and ``DownloadError`` names
    the URL, the expected and the actual value. ``dest`` appears only once verified.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            transfer(url, part, size, timeout, progress)
            break
        except _Retryable as exc:
            last = exc
            log.warning("%s: attempt %d of %d failed: %s", url, attempt, retries, exc)
            if attempt < retries:
                time.sleep(backoff * attempt)
    else:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{url}: failed after {retries} attempts ({last}); {kept} bytes kept in {part} for the next run to resume"
        )
    try:
        verify_file(part, url, size, sha256, md5)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def member_path(name: str, strip_components: int = 0, skip: tuple[str, ...] = ()) -> PurePosixPath | None:
    """Where an archive member goes inside the output folder (None = skipped); unsafe names raise."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in skip):
        return None
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"member '{name}' would be written outside the output folder")
    parts = [p for p in path.parts if p not in ("", ".")][strip_components:]
    return PurePosixPath(*parts) if parts else None


def _unpack_tar(archive: Path, staging: Path, strip_components: int, skip: tuple[str, ...]) -> int:
    """Unpack a .tar.gz into ``staging`` (``data`` filter: no links out, no devices); files written."""
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            relative = member_path(member.name, strip_components, skip)
            if relative is None or not (member.isfile() or member.isdir()):
                continue
            tar.extract(member.replace(name=str(relative), deep=False), staging, filter="data")
            count += member.isfile()
        while tar.fileobj.read(CHUNK):  # read to the end: a truncated .gz fails its end-of-stream check
            pass
    return count


def _unpack_zip(archive: Path, staging: Path, strip_components: int, skip: tuple[str, ...]) -> int:
    """Unpack a .zip into ``staging``; files written."""
    count = 0
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            relative = member_path(info.filename, strip_components, skip)
            if relative is None or info.is_dir():
                continue
            target = staging.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            count += 1
    return count


def extract_archive(
    archive: str | os.PathLike,
    into: str | os.PathLike,
    kind: str,
    strip_components: int = 0,
    skip: tuple[str, ...] = (),
) -> int:
    """Unpack ``archive`` (``tar.gz`` or ``zip``) so that ``into`` appears complete or not at all.

    Members matching a ``skip`` pattern are left out and ``strip_components`` leading folders
    dropped. Returns the number of files written; a damaged archive raises ``DownloadError``.
    """
    archive, into = Path(archive), Path(into)
    if into.exists():
        raise DownloadError(f"{archive}: {into} already exists; not overwriting it")
    staging = into.with_name(into.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    unpack = {"tar.gz": _unpack_tar, "zip": _unpack_zip}[kind]
    try:
        count = unpack(archive, staging, strip_components, skip)
    except (tarfile.TarError, zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: cannot unpack as {kind} ({exc})") from exc
    if count == 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: no files to unpack (after skip rules and strip_components={strip_components})")
    os.replace(staging, into)
    return count


def _read_member(archive: Path, kind: str, member: str) -> bytes:
    """The bytes of one member of a ``tar.gz`` or ``zip`` archive; KeyError when absent."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as bundle:
            return bundle.read(member)
    with tarfile.open(archive, "r:*") as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise KeyError(f"{member} is not a regular file")
        return handle.read()


def extract_member(archive: str | os.PathLike, kind: str, member: str, dest: str | os.PathLike) -> Path:
    """Write one archive member to ``dest`` (atomic); ``"outer.zip!inner.csv"`` reaches into a
    zip stored inside the archive. A missing member or damaged archive raises ``DownloadError``."""
    archive, dest = Path(archive), Path(dest)
    outer, *inner = member.split("!")
    try:
        data = _read_member(archive, kind, outer)
        for name in inner:
            with zipfile.ZipFile(io.BytesIO(data)) as nested:
                data = nested.read(name)
    except KeyError as exc:
        raise DownloadError(f"{archive}: no member '{member}' ({exc})") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DownloadError(f"{archive}: cannot read member '{member}' ({exc})") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.replace(part, dest)
    return dest
