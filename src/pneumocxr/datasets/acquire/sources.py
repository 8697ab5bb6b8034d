"""Data set-up step, the source table: which public files the project needs, read from ``sources.toml``.

The table is data, not code: each ``[[source]]`` names a URL (or how to get the file by hand), its
expected digest and size, and where it lands under the data root (or how its archive unpacks).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SOURCES_TOML = Path(__file__).with_name("sources.toml")
ARCHIVE_KINDS = ("tar.gz", "zip")


class SourceTableError(ValueError):
    """A source table that cannot be used, with the file and entry named."""


@dataclass(frozen=True)
class Group:
    """A set of sources selected together (``--only NAME``)."""

    name: str
    description: str
    required: bool


@dataclass(frozen=True)
class Source:
    """One file or folder of the data root: where it comes from, how it is checked, where it goes."""

    name: str
    group: str
    url: str | None = None
    derive: str | None = None
    manual: str | None = None
    target: str | None = None
    into: str | None = None
    extract: str | None = None
    member: str | None = None
    archive: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    rows: int | None = None
    strip_components: int = 0
    skip: tuple[str, ...] = ()
    note: str | None = None

    @property
    def destination(self) -> str:
        """Where the source ends up, relative to the data root (a file, or the unpacked folder)."""
        return self.target or self.into  # type: ignore[return-value]

    @property
    def archive_name(self) -> str:
        """File name of the downloaded archive in ``<root>/downloads``."""
        return self.archive or f"{self.name}.{self.extract}"


@dataclass(frozen=True)
class SharedFile:
    """A file of the shared folder outside its ``data/`` that is linked into the data root."""

    group: str
    source: str
    target: str
    sha256: str | None = None


@dataclass(frozen=True)
class SourceTable:
    """The whole table: groups, sources, shared files, project links and expected counts."""

    groups: dict[str, Group]
    sources: tuple[Source, ...]
    shared_files: tuple[SharedFile, ...]
    project_links: dict[str, str]
    expected: dict[str, Any]
    path: Path


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table, rejecting unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SourceTableError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except TypeError as exc:
        raise SourceTableError(f"{where}: {exc}") from exc


def _check_source(source: Source, groups: dict[str, Group], where: str) -> None:
    """Raise ``SourceTableError`` when a source entry is inconsistent."""
    if source.group not in groups:
        raise SourceTableError(f"{where}: group '{source.group}' is not declared under [groups]")
    if sum(bool(v) for v in (source.url, source.derive, source.manual)) != 1:
        raise SourceTableError(f"{where}: needs exactly one of url, derive or manual")
    if source.extract is None:
        if not source.target or source.into or source.member:
            raise SourceTableError(f"{where}: a single file needs a target (and no into/member)")
    elif source.extract not in ARCHIVE_KINDS or not source.url:
        raise SourceTableError(f"{where}: extract must be one of {ARCHIVE_KINDS}, for a url")
    elif bool(source.member) == bool(source.into) or bool(source.member) != bool(source.target):
        raise SourceTableError(f"{where}: an archive source needs either member + target, or into")
    for path in filter(None, (source.target, source.into)):
        if Path(path).is_absolute() or ".." in Path(path).parts or path in (".", ""):
            raise SourceTableError(f"{where}: '{path}' must be a path inside the data root")


def _check_archives(sources: tuple[Source, ...], where: str) -> None:
    """Sources sharing an archive file must agree on its URL and digests."""
    seen: dict[str, Source] = {}
    for source in sources:
        if not source.extract:
            continue
        first = seen.setdefault(source.archive_name, source)
        if (first.url, first.sha256, first.md5, first.size) != (source.url, source.sha256, source.md5, source.size):
            raise SourceTableError(
                f"{where}: sources '{first.name}' and '{source.name}' share archive "
                f"'{source.archive_name}' but not its url/digests"
            )


def load_sources(path: str | Path | None = None) -> SourceTable:
    """Read and check the source table (default: the package's ``sources.toml``)."""
    path = Path(path or SOURCES_TOML)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourceTableError(f"{path}: cannot read the source table ({exc})") from exc
    groups = {
        name: Group(name=name, description=v.get("description", ""), required=bool(v.get("required", False)))
        for name, v in raw.get("groups", {}).items()
    }
    sources = tuple(
        _build(Source, entry, f"{path} [[source]] #{i + 1}") for i, entry in enumerate(raw.get("source", []))
    )
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceTableError(f"{path}: duplicate source name(s) {duplicates}")
    for source in sources:
        _check_source(source, groups, f"{path} [[source]] '{source.name}'")
    _check_archives(sources, str(path))
    shared = tuple(
        _build(SharedFile, entry, f"{path} [[shared_file]] #{i + 1}")
        for i, entry in enumerate(raw.get("shared_file", []))
    )
    return SourceTable(
        groups=groups,
        sources=sources,
        shared_files=shared,
        project_links=dict(raw.get("project_links", {})),
        expected=dict(raw.get("expected", {})),
        path=path,
    )


def parse_only(text: str | None, table: SourceTable) -> set[str] | None:
    """Group names from a comma-separated ``--only`` value (None = every group); unknown names raise."""
    if not text:
        return None
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(table.groups))
    if unknown:
        raise SourceTableError(f"unknown group(s) {unknown} in --only; known: {sorted(table.groups)}")
    return chosen


def select_sources(table: SourceTable, groups: Iterable[str] | None = None) -> list[Source]:
    """The sources of the chosen groups (all when ``groups`` is None), in table order."""
    chosen = None if groups is None else set(groups)
    return [s for s in table.sources if chosen is None or s.group in chosen]


def top_folders(table: SourceTable, groups: Iterable[str] | None = None) -> set[str]:
    """First path component of every destination of the chosen groups (the folders to link)."""
    chosen = None if groups is None else set(groups)
    paths = [s.destination for s in select_sources(table, chosen)]
    paths += [f.target for f in table.shared_files if chosen is None or f.group in chosen]
    return {Path(p).parts[0] for p in paths}
