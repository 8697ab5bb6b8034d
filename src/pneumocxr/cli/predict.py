"""``pneumocxr predict``: a run's model on DICOM files and folders, one row per input, streamed."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pneumocxr.cli.table import format_table

TABLE_COLUMNS = ["path", "accepted", "probability", "label", "threshold", "heatmap", "reasons"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict", help="gate, preprocess and score DICOM files with a trained run (one row per input)",
        description="For each input: the DICOM gate, the one preprocessing function, the run's model and saved "
                    "threshold. Rejected inputs get null probability and label and their reasons. Folders are "
                    "walked lazily and rows are written batch by batch, so any number of files streams in flat "
                    "memory. Output is a decision aid, not a diagnosis. Exit status 0 when every input got a row.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (config.toml, model.keras, threshold.json)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--json", action="store_true", help="print a JSON array of rows on stdout")
    parser.add_argument("--out", metavar="CSV", help="write rows to this CSV file, appended batch by batch")
    parser.add_argument("--heatmaps", metavar="DIR", help="save a Grad-CAM overlay PNG per accepted image here")
    parser.add_argument("--dicom-out", metavar="DIR", help="write a DICOM Secondary Capture of each overlay here")
    parser.add_argument("--sc-identity", choices=("copy", "blank"), default="copy",
                        help="patient identity in the Secondary Capture: copy (for PACS filing, default) or blank "
                             "(research; PatientID becomes the salted hash)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per model call (default 16)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="float32 (bit-reproducible, default) or bfloat16 (faster on CPUs with bf16)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="decoding threads (default 2)")
    parser.set_defaults(func=run)


def csv_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as CSV cells: reasons joined with '; ', None as an empty cell."""
    return {k: "; ".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()}


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path, columns: list[str], flush_every: int = 16) -> Iterator[dict[str, Any]]:
    """Write rows to a CSV file as they come (flushed every ``flush_every`` rows), passing them on."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for count, row in enumerate(rows, start=1):
            writer.writerow(csv_record(row))
            if count % flush_every == 0:
                handle.flush()
            yield row


def stream_json(rows: Iterable[dict[str, Any]], out: TextIO) -> Iterator[dict[str, Any]]:
    """Print rows as one JSON array, element by element, passing them on."""
    out.write("[")
    for count, row in enumerate(rows):
        out.write(("," if count else "") + "\n  " + json.dumps(row))
        yield row
    out.write("\n]\n")
    out.flush()


def stream_table(rows: Iterable[dict[str, Any]], out: TextIO, every: int) -> Iterator[dict[str, Any]]:
    """Print rows as text tables of ``every`` rows (header on the first only), passing them on."""
    block: list[dict[str, Any]] = []
    printed = False

    def flush() -> None:
        nonlocal printed
        lines = format_table(block, TABLE_COLUMNS).splitlines()
        out.write("\n".join(lines[1:] if printed else lines) + "\n")
        out.flush()
        printed = True
        block.clear()

    for row in rows:
        block.append(row)
        yield row
        if len(block) >= every:
            flush()
    if block:
        flush()


def summary(counts: Counter, n_inputs: int, destination: str | None) -> str:
    """One line: how many inputs, accepted, rejected and labelled each way."""
    text = (f"{counts['rows']} rows for {n_inputs} inputs: {counts['accepted']} accepted "
            f"({counts['pneumonia']} pneumonia, {counts['no_pneumonia']} no_pneumonia), "
            f"{counts['rows'] - counts['accepted']} rejected")
    return text + (f"; results in {destination}" if destination else "") + ". Decision aid, not a diagnosis."


def run(args: argparse.Namespace) -> int:
    """Predict every input and write the rows (CSV, JSON or a table) as they come."""
    from pneumocxr.infer import ROW_FIELDS, iter_inputs, load_predictor, predict_paths

    if args.batch_size < 1 or args.workers < 1:
        print("pneumocxr predict: --batch-size and --workers must be at least 1", file=sys.stderr)
        return 2
    predictor = load_predictor(args.run_dir, args.precision)  # a bad run directory: cli.main says so, exit 2
    n_inputs = 0

    def counted_inputs() -> Iterator[Path]:
        nonlocal n_inputs
        for path in iter_inputs(args.paths):
            n_inputs += 1
            yield path

    rows = predict_paths(predictor, counted_inputs(), batch_size=args.batch_size, heatmap_dir=args.heatmaps,
                         dicom_out_dir=args.dicom_out, sc_identity=args.sc_identity, workers=args.workers,
                         progress=None)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows = write_csv(rows, args.out, list(ROW_FIELDS), flush_every=args.batch_size)
    if args.json:
        rows = stream_json(rows, sys.stdout)
    elif not args.out:
        rows = stream_table(rows, sys.stdout, every=args.batch_size)
    counts: Counter = Counter()
    for row in rows:
        counts.update(rows=1, accepted=int(bool(row["accepted"])), **({row["label"]: 1} if row["label"] else {}))
    print(summary(counts, n_inputs, args.out), file=sys.stderr)
    return 0 if counts["rows"] == n_inputs else 1
