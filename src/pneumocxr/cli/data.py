"""``pneumocxr data setup`` and ``pneumocxr data verify``: fill the data root, then take stock of it."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from pneumocxr.cli.options import add_command, add_root
from pneumocxr.cli.table import format_table

QUIET_ACTIONS = {"present"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` sub-command with ``setup`` and ``verify``."""
    parser = subparsers.add_parser(
        "data",
        help="set up (link or download) and verify the data root",
        description="Fill the data root and check what is in it.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    setup = add_command(
        actions,
        "setup",
        run_setup,
        help="link the shared data folder, or download the public releases",
        description="Links every dataset folder of a shared data folder (--shared, $PNEUMOCXR_SHARED or "
        "../shared beside the project) into the data root; without one, downloads the public "
        "releases listed in pneumocxr/datasets/acquire/sources.toml (resumable, checksummed). Then links "
        "test_dicoms and sample_labels.csv into the project folder. Never overwrites anything; "
        "a second run changes nothing.",
    )
    setup.add_argument("--root", help="data root to fill (default: $PNEUMOCXR_DATA or data/ of the project)")
    setup.add_argument("--shared", help="shared folder holding data/ (and weights/) to link")
    setup.add_argument(
        "--project", help="folder that gets the test_dicoms and sample_labels.csv links (default: the project folder)"
    )
    setup.add_argument(
        "--download",
        choices=("auto", "never", "always"),
        default="auto",
        help="auto: download only when there is no shared folder; never: only link; "
        "always: link what the shared folder has, download the rest (default: %(default)s)",
    )
    setup.add_argument("--only", metavar="GROUP[,GROUP]", help="restrict to some groups of the source table")
    setup.add_argument("--keep-archives", action="store_true", help="keep downloaded archives after unpacking")
    setup.add_argument("--retries", type=int, default=4, help="attempts per download (default: %(default)s)")
    setup.add_argument("--list", action="store_true", help="print the source table's groups and exit")

    verify = add_command(
        actions,
        "verify",
        run_verify,
        help="report what each dataset has and lacks (exit 1 when something required is missing)",
        description="Counts label rows, images per folder and checks digests against the source table.",
    )
    add_root(verify, "$PNEUMOCXR_DATA or data/ of the project")
    verify.add_argument(
        "--project",
        help="folder whose test_dicoms and sample_labels.csv links are checked (default: the project folder)",
    )
    verify.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def run_setup(args: argparse.Namespace) -> int:
    """Link or download the data; print what changed; 1 when a download failed."""
    from pneumocxr.config import PROJECT_ROOT
    from pneumocxr.datasets.acquire.fetch import DownloadError
    from pneumocxr.datasets.acquire.setup import find_shared, setup_data, setup_root
    from pneumocxr.datasets.acquire.sources import SourceTableError, load_sources, parse_only

    try:
        table = load_sources()
        if args.list:
            print(format_table([g.__dict__ for g in table.groups.values()], ["name", "required", "description"]))
            return 0
        root, shared = setup_root(args.root), find_shared(args.shared)
        steps = setup_data(
            root,
            shared,
            args.download,
            parse_only(args.only, table),
            args.project or PROJECT_ROOT,
            table=table,
            keep_archives=args.keep_archives,
            retries=args.retries,
        )
    except (SourceTableError, FileNotFoundError, DownloadError, ValueError) as exc:
        print(f"pneumocxr data setup: {exc}", file=sys.stderr)
        return 1
    shown = [s.to_dict() for s in steps if s.action not in QUIET_ACTIONS and s.required]
    if shown:
        print(format_table(shown, ["path", "action", "detail"]))
    kinds = Counter(s.action if s.required else "optional, not fetched" for s in steps)
    counts = ", ".join(f"{n} {action}" for action, n in sorted(kinds.items()))
    print(f"data setup: {root} ({'linked from ' + str(shared) if shared else 'no shared folder'}): {counts}")
    if any(s.action in ("manual", "missing") and s.required for s in steps):
        print("some required files are not in place; `pneumocxr data verify` lists what is required")
    return 1 if any(s.action == "failed" for s in steps) else 0


def run_verify(args: argparse.Namespace) -> int:
    """Print the inventory; 1 when a required item is missing, short or wrong."""
    from pneumocxr.config import PROJECT_ROOT
    from pneumocxr.datasets.acquire.setup import setup_root
    from pneumocxr.datasets.acquire.verify import verify_data

    root = setup_root(args.root)
    checks = verify_data(root, args.project or PROJECT_ROOT)
    failed = [c for c in checks if c.failed]
    if args.json:
        print(json.dumps({"root": str(root), "ok": not failed, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        rows = [dict(c.to_dict(), required="yes" if c.required else "no") for c in checks]
        for row in rows:  # digests shortened in the table (full in --json)
            if row["detail"] == "sha256":
                row.update(found=short_digest(row["found"]), expected=short_digest(row["expected"]))
        print(format_table(rows, ["group", "item", "status", "found", "expected", "required", "detail"]))
        print(
            f"data verify: {root}: {len(checks) - len(failed)} of {len(checks)} checks pass"
            + (f"; required but missing or wrong: {', '.join(c.item for c in failed)}" if failed else "")
        )
    return 1 if failed else 0


def short_digest(value: str | None) -> str | None:
    """The first 12 hex digits of a digest, for tables."""
    return f"{value[:12]}..." if value else value
