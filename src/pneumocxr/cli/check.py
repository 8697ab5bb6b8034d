"""``pneumocxr check``: the DICOM gate on files and folders, one row per input.

Inputs are found as ``predict`` finds them (``inputs.walk_inputs``: every file named or found, dangling
links, link loops and folders without files included, whatever the name's length or encoding) and named
as ``predict`` names them: by position and a salted path hash (``privacy.input_label``), with the path
only under ``--show-paths``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from pneumocxr.cli.options import add_command
from pneumocxr.cli.table import format_table
from pneumocxr.config import GateConfig, load_config
from pneumocxr.dicom import GATE_FIELDS, GateResult, gate_dicom
from pneumocxr.inputs import Found, walk_inputs
from pneumocxr.privacy import display_path, input_label, resolve_salt, scrub_row

TABLE_COLUMNS = [
    "input",
    "accepted",
    "modality",
    "body_part",
    "view_position",
    "patient_position",
    "reasons",
    "warnings",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` sub-command."""
    parser = add_command(
        subparsers,
        "check",
        run,
        help="judge DICOM files against the intended use (one row per input)",
        description="Read each DICOM header and say whether the device may run on it, and why not. "
        "Folders are searched recursively; every input named or found gets one row (dangling links, "
        "link loops and empty folders with their reason). Rows name inputs by position and a salted "
        "path hash (the site salt, as `predict --help` says), unless --show-paths. Exit status 0 when "
        "every input got a row.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--json", action="store_true", help="print a JSON array of gate results")
    parser.add_argument("--config", help="TOML config whose [gate] table sets what is accepted")
    parser.add_argument(
        "--show-paths",
        action="store_true",
        help="put each input's path in the rows (default: inputs are named by position and a salted "
        "path hash, since file names may carry identity)",
    )


def check_row(found: Found, position: int, gate: GateConfig, salt: str, show_paths: bool = False) -> dict[str, Any]:
    """The gate's row for one input: ``input`` (position and hash), ``path`` (None without ``show_paths``)
    and the ``GATE_FIELDS``; an input the walker could not open gets its ``problem`` as the reason.

    Never raises (``gate_dicom`` turns every file problem into a reason).
    """
    label = input_label(position, found.path, salt)
    result = GateResult(path="", reasons=[found.problem]) if found.problem else gate_dicom(found.path, gate)
    row = {"input": label, **result.to_dict(), "path": display_path(found.path) if show_paths else None}
    return row if show_paths else scrub_row(row, found.path, label)


def check_rows(
    paths: Iterable[str | os.PathLike], gate: GateConfig, salt: str, show_paths: bool = False
) -> Iterator[dict[str, Any]]:
    """One ``check_row`` per input of ``walk_inputs(paths)``, in order, lazily."""
    for position, found in enumerate(walk_inputs(paths), start=1):
        yield check_row(found, position, gate, salt, show_paths)


def run(args: argparse.Namespace) -> int:
    """Gate every input and print the results."""
    gate = load_config(args.config).gate if args.config else GateConfig()
    rows = list(check_rows(args.paths, gate, resolve_salt(), args.show_paths))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        columns = TABLE_COLUMNS[:1] + ["path"] * args.show_paths + TABLE_COLUMNS[1:]
        print(format_table(rows, columns))
    return 0


__all__ = ["register", "run", "check_row", "check_rows", "GATE_FIELDS"]
