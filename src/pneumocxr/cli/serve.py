"""``pneumocxr serve`` (the DICOM node) and ``pneumocxr worklist`` (its prioritised list and figures)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pneumocxr.cli.options import add_command, add_run_dir
from pneumocxr.cli.table import format_table

WORKLIST_COLUMNS = ["received", "status", "label", "probability", "study_instance_uid", "sop_instance_uid", "reasons"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``worklist`` sub-commands."""
    parser = add_command(
        subparsers,
        "serve",
        run_serve,
        help="run a DICOM node: receive radiographs, triage them, send SR + SC results to the PACS",
        description="Storage SCP (AE title, allowed callers, optional TLS) writing each instance to a durable inbox "
        "and a SQLite journal before answering success; a worker scoring batches with the run's model "
        "exactly as `pneumocxr predict` does; C-STORE of a Structured Report (TID 1500) and a Grad-CAM "
        "Secondary Capture per accepted image to [destination], retried until acknowledged, once per "
        "source SOPInstanceUID. SIGTERM stops gracefully; a restart resumes from the journal. "
        "Decision aid, not a diagnosis. See docs/serve.md.",
    )
    add_run_dir(parser)
    parser.add_argument("--config", required=True, metavar="SERVE_TOML", help="node configuration (serve.toml)")
    wl = add_command(
        subparsers,
        "worklist",
        run_worklist,
        help="list a node's received studies by priority, or its health figures (--stats)",
        description="Rows from the node's journal: flagged first, then by probability, then by arrival, with status "
        "(queued, scored, rejected, delivered, failed) and reasons. No patient identity is shown.",
    )
    wl.add_argument("--config", required=True, metavar="SERVE_TOML", help="the node's serve.toml")
    wl.add_argument("--stats", action="store_true", help="queue depth, counts per status, latency, throughput")
    wl.add_argument("--status", action="append", default=[], metavar="STATUS", help="only this status (repeatable)")
    wl.add_argument("--limit", type=int, metavar="N", help="at most N rows")
    wl.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _config(path: str, command: str):
    """The serve config, or None after printing the error."""
    from pneumocxr.serve.config import ServeConfigError, load_serve_config

    try:
        return load_serve_config(path)
    except ServeConfigError as exc:
        print(f"pneumocxr {command}: error: {exc}", file=sys.stderr)
        return None


def run_serve(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM/SIGINT."""
    from pneumocxr.serve.node import serve

    config = _config(args.config, "serve")
    if config is None:
        return 2
    logging.getLogger("pneumocxr").setLevel(logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    try:
        return serve(config, args.run_dir)
    except (OSError, ValueError, KeyError) as exc:
        print(f"pneumocxr serve: error: {exc}", file=sys.stderr)
        return 2


def run_worklist(args: argparse.Namespace) -> int:
    """Print the worklist or the statistics of a node's journal."""
    from pneumocxr.serve.journal import STATUSES, Journal
    from pneumocxr.serve.worklist import stats, worklist

    config = _config(args.config, "worklist")
    if config is None:
        return 2
    bad = sorted(set(args.status) - set(STATUSES))
    if bad:
        print(f"pneumocxr worklist: error: unknown status {bad}; expected {list(STATUSES)}", file=sys.stderr)
        return 2
    if not config.journal_path.is_file():
        print(f"pneumocxr worklist: error: no journal at {config.journal_path} (has the node run?)", file=sys.stderr)
        return 2
    journal = Journal(config.journal_path)
    if args.stats:
        figures = stats(journal)
        print(json.dumps(figures, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
        return 0
    rows = worklist(journal, tuple(args.status), args.limit)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, WORKLIST_COLUMNS))
    return 0
