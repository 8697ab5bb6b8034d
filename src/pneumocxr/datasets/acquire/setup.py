"""Data set-up step: fill the data root from a shared data folder (links) or the public releases
(downloads), then make the project-level links the notebooks expect.

Nothing is ever overwritten: an existing file, folder or link that points elsewhere is reported
and left as it is. Run twice, the second run changes nothing and only stats a few paths.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pneumocxr.config import PROJECT_ROOT
from pneumocxr.datasets.acquire import fetch
from pneumocxr.datasets.acquire.derive import DeriveError, derive_file
from pneumocxr.datasets.acquire.sources import Source, SourceTable, load_sources, select_sources, top_folders
from pneumocxr.provenance import git_output

log = logging.getLogger(__name__)

DOWNLOAD_MODES = ("auto", "never", "always")
SHARED_ENV = "PNEUMOCXR_SHARED"


@dataclass(frozen=True)
class Step:
    """What set-up did (or could not do) for one path."""

    path: str
    action: str  # present linked relinked kept expanded downloaded derived unpacked manual missing failed
    detail: str = ""
    required: bool = True  # False for an item of an optional group (its absence is not a fault)

    def to_dict(self) -> dict[str, Any]:
        """The step as a plain dict (for JSON and tables)."""
        return asdict(self)


def find_shared(explicit: str | os.PathLike | None = None) -> Path | None:
    """The shared folder: ``explicit``, else ``$PNEUMOCXR_SHARED``, else ``../shared`` beside the project,
    else ``../shared`` beside the local repository this checkout was cloned from (so that
    ``git clone . /tmp/x && cd /tmp/x && make test`` finds the same data as the original).

    Returns None when no default location has a ``data/`` folder; a folder named explicitly
    (argument or environment) without ``data/`` raises ``FileNotFoundError``.
    """
    chosen = explicit or os.environ.get(SHARED_ENV)
    if chosen:
        path = Path(chosen).expanduser().absolute()
        if not (path / "data").is_dir():
            raise FileNotFoundError(f"{path}: shared folder has no data/ folder")
        return path
    candidates = [PROJECT_ROOT.parent / "shared"]
    origin = local_origin(PROJECT_ROOT)
    if origin is not None:
        candidates.append(origin.parent / "shared")
    return next((c for c in candidates if (c / "data").is_dir()), None)


def local_origin(project: Path) -> Path | None:
    """The folder of the ``origin`` remote when it is a local path, else None."""
    url = git_output(project, "config", "--get", "remote.origin.url")
    if url is None:  # no git, no repository or no origin remote
        return None
    path = Path(url.removeprefix("file://")) if url and "://" not in url.replace("file://", "") else None
    return path if path is not None and path.is_dir() else None


def setup_root(value: str | os.PathLike | None = None) -> Path:
    """The data root to fill: ``value`` or ``$PNEUMOCXR_DATA`` or ``data``; relative paths
    resolve against the working directory when that exists there, else the project folder."""
    path = Path(value or os.environ.get("PNEUMOCXR_DATA") or "data").expanduser()
    if path.is_absolute() or path.exists() or path.is_symlink():
        return path.absolute()
    return PROJECT_ROOT / path


def ensure_link(link: Path, target: Path, text: str | None = None) -> Step:
    """Make ``link`` a symlink to ``target`` (written as ``text`` if given); never replace a real
    file or folder, nor a working link that points elsewhere. A dangling link is replaced."""
    if link.exists() and link.resolve() == target.resolve():
        return Step(str(link), "present")  # a link to it, or inside a linked folder
    if link.is_symlink():
        if link.exists():
            return Step(str(link), "kept", f"links to {os.readlink(link)}, not {target}; left as it is")
        link.unlink()
        link.symlink_to(text or target)
        return Step(str(link), "relinked", f"-> {text or target} (the old link was dangling)")
    if link.exists():
        kind = "folder" if link.is_dir() else "file"
        return Step(str(link), "kept", f"a real {kind}, not a link to {target}; left as it is")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(text or target)
    return Step(str(link), "linked", f"-> {text or target}")


def link_shared(root: Path, shared: Path, table: SourceTable, groups: Iterable[str] | None = None) -> list[Step]:
    """Link every entry of ``<shared>/data`` (or those the chosen groups use) and the shared files."""
    data = shared / "data"
    names = sorted(entry.name for entry in data.iterdir())
    if groups is not None:
        wanted = top_folders(table, groups)
        names = [name for name in names if name in wanted]
    steps = [ensure_link(root / name, (data / name).absolute()) for name in names]
    for shared_file in table.shared_files:
        if groups is not None and shared_file.group not in groups:
            continue
        source = (shared / shared_file.source).absolute()
        if source.exists():
            steps.append(ensure_link(root / shared_file.target, source))
        else:
            steps.append(Step(str(root / shared_file.target), "missing", f"{source} is not in the shared folder"))
    return steps


def expand_link(folder: Path) -> Step | None:
    """Turn a link to a folder into a real folder of links to its entries, so downloads can add
    files beside them without writing into the (often read-only) linked folder."""
    if not (folder.is_symlink() and folder.is_dir()):
        return None
    target = folder.resolve()
    entries = sorted(target.iterdir())
    folder.unlink()
    folder.mkdir()
    for entry in entries:
        (folder / entry.name).symlink_to(entry)
    return Step(
        str(folder), "expanded", f"link to {target} replaced by a folder of links to its {len(entries)} entries"
    )


def fetch_archive(root: Path, source: Source, **options: Any) -> Path:
    """The source's archive in ``<root>/downloads`` (downloaded and verified once, then reused)."""
    archive = root / "downloads" / source.archive_name
    if archive.exists():
        return archive
    return fetch.download(source.url, archive, size=source.size, sha256=source.sha256, md5=source.md5, **options)


def fetch_source(root: Path, source: Source, **options: Any) -> Step:
    """Put one source in place under ``root`` (download, derive or unpack) unless it is already there."""
    dest = root / source.destination
    if dest.exists():
        return Step(str(dest), "present")
    if source.manual:
        return Step(str(dest), "manual", source.manual.replace("DATA/", f"{root}/"))
    if source.derive:
        derive_file(source.derive, root, dest, source.sha256)
        return Step(str(dest), "derived", f"rebuilt by '{source.derive}', sha256 checked")
    if not source.extract:
        fetch.download(source.url, dest, size=source.size, sha256=source.sha256, md5=source.md5, **options)
        return Step(str(dest), "downloaded", f"from {source.url}")
    archive = fetch_archive(root, source, **options)
    if source.member:
        fetch.extract_member(archive, source.extract, source.member, dest)
        return Step(str(dest), "unpacked", f"{source.member} of {source.url}")
    count = fetch.extract_archive(archive, dest, source.extract, source.strip_components, source.skip)
    return Step(str(dest), "unpacked", f"{count} files from {source.url}")


def fetch_sources(root: Path, sources: Iterable[Source], keep_archives: bool = False, **options: Any) -> list[Step]:
    """Fetch each source in turn; a failure is recorded as a step and the others still run.

    An archive is deleted as soon as no later source of this run needs it (unless ``keep_archives``).
    """
    sources = list(sources)
    uses = Counter(s.archive_name for s in sources if s.extract)
    steps = []
    for source in sources:
        try:
            steps.append(fetch_source(root, source, **options))
        except (fetch.DownloadError, DeriveError) as exc:
            log.error("%s", exc)
            steps.append(Step(str(root / source.destination), "failed", str(exc)))
        if source.extract:
            uses[source.archive_name] -= 1
            archive = root / "downloads" / source.archive_name
            if uses[source.archive_name] == 0 and not keep_archives and archive.exists():
                archive.unlink()
    return steps


def missing_sources(root: Path, sources: Iterable[Source], table: SourceTable) -> list[Step]:
    """One ``manual`` or ``missing`` step per group for the sources whose destination is absent."""
    absent: dict[tuple[str, bool], list[Source]] = {}
    for source in sources:
        if not (root / source.destination).exists():
            absent.setdefault((source.group, bool(source.manual)), []).append(source)
    steps = []
    for (group, manual), missing in absent.items():
        paths = [str(root / s.destination) for s in missing]
        where = paths[0] if len(paths) == 1 else f"{paths[0]} .. {Path(paths[-1]).name} ({len(paths)} items)"
        kind = "required" if table.groups[group].required else "optional"
        if manual:
            how = missing[0].manual.replace("DATA/", f"{root}/")
        else:
            how = (
                f"group {group} ({kind}) is not fetched while a shared folder is linked; "
                f"`pneumocxr data setup --download always --only {group}` fetches it"
            )
        steps.append(Step(where, "manual" if manual else "missing", how, table.groups[group].required))
    return steps


def link_project_files(root: Path, project_dir: Path, table: SourceTable) -> list[Step]:
    """The links in the project folder the notebooks open (``test_dicoms``, ``sample_labels.csv``)."""
    steps = []
    for name, relative in table.project_links.items():
        target = root / relative
        if not target.exists():
            steps.append(Step(str(project_dir / name), "missing", f"{target} is absent, so no link was made"))
            continue
        try:
            text = (
                os.path.relpath(target, project_dir)
                if target.absolute().is_relative_to(project_dir.absolute())
                else None
            )
        except ValueError:
            text = None
        steps.append(ensure_link(project_dir / name, target.absolute(), text))
    return steps


def setup_data(
    root: str | os.PathLike,
    shared: str | os.PathLike | None,
    download: str = "auto",
    only: Iterable[str] | None = None,
    project_dir: str | os.PathLike = PROJECT_ROOT,
    table: SourceTable | None = None,
    keep_archives: bool = False,
    **options: Any,
) -> list[Step]:
    """Fill the data root and make the project links; return one ``Step`` per path considered.

    ``shared`` is the shared folder to link (see ``find_shared``), or None when there is none.
    ``download``: ``auto`` links the shared folder when there is one and downloads otherwise;
    ``never`` only links; ``always`` links what the shared folder has, then downloads whatever
    chosen source is still missing. ``only`` restricts both to some groups of the source table.
    ``options`` go to ``fetch.download`` (``retries``, ``backoff``, ``timeout``, ``progress``).
    """
    if download not in DOWNLOAD_MODES:
        raise ValueError(f"download must be one of {DOWNLOAD_MODES}, got '{download}'")
    table = table or load_sources()
    groups = None if only is None else set(only)
    root, project_dir = Path(root).absolute(), Path(project_dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    shared_dir = Path(shared).absolute() if shared else None
    sources = select_sources(table, groups)
    steps = link_shared(root, shared_dir, table, groups) if shared_dir else []
    if download == "always" or (download == "auto" and shared_dir is None):
        to_fetch = [s for s in sources if not s.manual and not (root / s.destination).exists()]
        for top in sorted({Path(s.destination).parts[0] for s in to_fetch}):
            expanded = expand_link(root / top)
            steps += [expanded] if expanded else []
        steps += fetch_sources(root, sources, keep_archives, **options)
    else:
        steps += missing_sources(root, sources, table)
    return steps + link_project_files(root, project_dir, table)
