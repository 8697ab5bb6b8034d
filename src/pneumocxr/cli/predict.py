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

from pneumocxr.cli.options import add_command, add_run_dir
from pneumocxr.cli.table import format_table

TABLE_COLUMNS = ["input", "path", "accepted", "probability", "label", "threshold", "heatmap", "reasons", "warnings"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = add_command(
        subparsers,
        "predict",
        run,
        help="gate, preprocess and score DICOM files with a trained run (one row per input)",
        description="For each input: the DICOM gate, the one preprocessing function, the run's model and saved "
        "threshold. Rejected inputs get null probability and label and their reasons. Folders are "
        "walked lazily and rows are written batch by batch, so any number of files streams in flat "
        "memory. Rows, logs and overlay titles name inputs by position and a salted path hash (site salt: "
        "$PNEUMOCXR_PATIENT_SALT, else $PNEUMOCXR_SALT_FILE, else ~/.config/pneumocxr/site-salt, made "
        "at the first run, mode 0600); output files are named by that hash. Every output is written "
        "atomically and locked against a second writer. Output is a decision aid, not a diagnosis. "
        "Exit status 0 when every input got a row; 2 when the options or the run are refused.",
    )
    add_run_dir(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--json", action="store_true", help="print a JSON array of rows on stdout")
    parser.add_argument(
        "--out",
        metavar="CSV",
        help="write rows to this CSV file: to CSV.partial batch by batch, renamed to CSV when every "
        "input has its row; a second writer to the same CSV is refused (exit 2)",
    )
    parser.add_argument("--heatmaps", metavar="DIR", help="save a Grad-CAM overlay PNG per accepted image here")
    parser.add_argument("--dicom-out", metavar="DIR", help="write a DICOM Secondary Capture of each overlay here")
    parser.add_argument(
        "--sc-identity",
        choices=("copy", "blank"),
        default="copy",
        help="patient identity in the Secondary Capture: copy (for PACS filing, default) or blank "
        "(research: DICOM PS3.15 E.1 basic profile for what it writes; PatientID becomes the "
        "salted hash, UIDs salted hashes, dates and comments removed)",
    )
    parser.add_argument(
        "--show-paths",
        action="store_true",
        help="put each input's path in the rows and its file name in overlay titles (default: inputs "
        "are named by position and a salted path hash, since file names may carry identity)",
    )
    parser.add_argument(
        "--no-boxes",
        dest="boxes",
        action="store_false",
        help="skip the Grad-CAM boxes of images labelled pneumonia (field 'boxes' left empty); "
        "by default each accepted row has 'boxes': [{x, y, width, height, score}, ...] in "
        "original pixels, highest score first, [] when none (docs/localisation.md)",
    )
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per model call (default 16)")
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="float32 (bit-reproducible, default) or bfloat16 (faster on CPUs with bf16)",
    )
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="decoding threads (default 2)")


def csv_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as CSV cells: reasons joined with '; ', boxes as a JSON list, None as an empty cell."""

    def cell(key: str, value: Any) -> Any:
        if key == "boxes" and value is not None:
            return json.dumps(value)
        return "; ".join(value) if isinstance(value, list) else ("" if value is None else value)

    return {k: cell(k, v) for k, v in row.items()}


def write_csv(
    rows: Iterable[dict[str, Any]], path: str | Path, columns: list[str], flush_every: int = 16
) -> Iterator[dict[str, Any]]:
    """Write rows to ``<path>.partial`` as they come (flushed every ``flush_every`` rows), passing them on;
    rename it to ``path`` once every row is written, so an interrupted run leaves only the ``.partial`` file."""
    from pneumocxr.atomic import PartialFile

    partial = PartialFile(path, newline="")
    try:
        writer = csv.DictWriter(partial.handle, fieldnames=columns)
        writer.writeheader()
        for count, row in enumerate(rows, start=1):
            writer.writerow(csv_record(row))
            if count % flush_every == 0:
                partial.handle.flush()
            yield row
        partial.commit()
    finally:
        partial.close()


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
    text = (
        f"{counts['rows']} rows for {n_inputs} inputs: {counts['accepted']} accepted "
        f"({counts['pneumonia']} pneumonia, {counts['no_pneumonia']} no_pneumonia), "
        f"{counts['rows'] - counts['accepted']} rejected"
    )
    if counts["warned"]:  # e.g. outside the training population: the console must say so, not only the CSV
        text += f"; {counts['warned']} accepted with warnings (see the warnings column)"
    return text + (f"; results in {destination}" if destination else "") + ". Decision aid, not a diagnosis."


def _locks(args: argparse.Namespace) -> list:
    """One exclusive lock per output (``--out`` file, ``--heatmaps`` and ``--dicom-out`` folders), all taken."""
    from pneumocxr.atomic import OutputLock

    locks = [OutputLock(args.out)] if args.out else []
    locks += [OutputLock(folder, folder=True) for folder in {args.heatmaps, args.dicom_out} if folder]
    taken = []
    try:
        for lock in locks:
            taken.append(lock.acquire())
    except BaseException:
        for lock in taken:
            lock.release()
        raise
    return taken


def _refusal(args: argparse.Namespace) -> str | None:
    """Why the options cannot run (checked before any work), or None."""
    from pneumocxr.atomic import check_output_kinds

    if args.batch_size < 1 or args.workers < 1:
        return "--batch-size and --workers must be at least 1"
    try:
        check_output_kinds(files=[args.out], folders=[args.heatmaps, args.dicom_out])
    except ValueError as exc:
        return str(exc)
    return None


def predict_outputs(predictor, paths: Iterable[Any], args: argparse.Namespace) -> Counter:
    """Predict every input and write the rows (CSV, JSON or a table) as they come; return the counts.

    ``counts["rows"]`` rows were written for ``counts["inputs"]`` inputs found.
    """
    from pneumocxr.infer import ROW_FIELDS, iter_inputs, predict_paths

    counts: Counter = Counter()

    def counted_inputs() -> Iterator[Any]:
        for found in iter_inputs(paths):
            counts.update(inputs=1)
            yield found

    rows = predict_paths(
        predictor,
        counted_inputs(),
        batch_size=args.batch_size,
        heatmap_dir=args.heatmaps,
        dicom_out_dir=args.dicom_out,
        sc_identity=args.sc_identity,
        workers=args.workers,
        progress=None,
        show_paths=args.show_paths,
        boxes=args.boxes,
    )
    if args.out:
        rows = write_csv(rows, args.out, list(ROW_FIELDS), flush_every=args.batch_size)
    if args.json:
        rows = stream_json(rows, sys.stdout)
    elif not args.out:
        rows = stream_table(rows, sys.stdout, every=args.batch_size)
    for row in rows:
        counts.update(rows=1, accepted=int(bool(row["accepted"])), **({row["label"]: 1} if row["label"] else {}))
        counts.update(warned=int(bool(row["accepted"] and row.get("warnings"))))
    return counts


def run(args: argparse.Namespace) -> int:
    """Refuse conflicting outputs, lock them, predict every input and write the rows as they come."""
    from pneumocxr.atomic import OutputBusyError
    from pneumocxr.infer import load_predictor

    refusal = _refusal(args)
    if refusal:
        print(f"pneumocxr predict: error: {refusal}", file=sys.stderr)
        return 2
    try:
        locks = _locks(args)
    except (OutputBusyError, OSError) as exc:
        print(f"pneumocxr predict: error: {exc}", file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.run_dir, args.precision)  # a bad run directory: cli.main says so, exit 2
        counts = predict_outputs(predictor, args.paths, args)
    finally:
        for lock in locks:
            lock.release()
    print(summary(counts, counts["inputs"], args.out), file=sys.stderr)
    return 0 if counts["rows"] == counts["inputs"] else 1
