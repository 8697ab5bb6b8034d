"""``pneumocxr check``: the DICOM gate on files and folders, one row per input."""

from __future__ import annotations

import argparse
import json

from pneumocxr.cli.table import format_table
from pneumocxr.config import GateConfig, load_config
from pneumocxr.dicom import GATE_FIELDS, expand_inputs, gate_dicom


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` sub-command."""
    parser = subparsers.add_parser(
        "check",
        help="judge DICOM files against the intended use (one row per input)",
        description="Read each DICOM header and say whether the device may run on it, and why not. "
        "Folders are searched recursively. Exit status 0 when every input got a row.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--json", action="store_true", help="print a JSON array of gate results")
    parser.add_argument("--config", help="TOML config whose [gate] table sets what is accepted")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Gate every input and print the results."""
    gate = load_config(args.config).gate if args.config else GateConfig()
    inputs = expand_inputs(args.paths)
    rows = [gate_dicom(path, gate).to_dict() for path in inputs]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        columns = [
            "path",
            "accepted",
            "modality",
            "body_part",
            "view_position",
            "patient_position",
            "reasons",
            "warnings",
        ]
        print(format_table(rows, columns))
    return 0 if len(rows) == len(inputs) else 1


__all__ = ["register", "run", "GATE_FIELDS"]
