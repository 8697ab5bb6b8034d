"""``pneumocxr demo``: the whole path on the default data - the three notebooks, then the report."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pneumocxr.config import PROJECT_ROOT
from pneumocxr.notebooks import execute_notebook

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo", help="execute EDA, training and inference notebooks, then write FDA_Submission.md/.pdf",
        description="Runs the three notebooks top to bottom on the default data (in place, so they keep "
                    "their outputs), trains the demo config into RUN_DIR and generates the report from it.")
    parser.add_argument("--config", default="configs/demo-cpu.toml", help="training config (default: %(default)s)")
    parser.add_argument("--run-dir", default="runs/demo", help="run directory to write (default: %(default)s)")
    parser.add_argument("--eda-dir", default="reports/eda", help="EDA output folder (default: %(default)s)")
    parser.add_argument("--report", default="FDA_Submission.md", help="report markdown (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute the notebooks in order, then generate the report markdown and PDF."""
    from pneumocxr.cli import main

    steps = [
        ("EDA.ipynb", {"DATA_ROOT": "data", "OUT_DIR": args.eda_dir}),
        ("Build_and_train_model.ipynb", {"CONFIG": args.config, "RUN_DIR": args.run_dir}),
        ("Inference.ipynb", {"RUN_DIR": args.run_dir, "DICOM_DIR": "test_dicoms"}),
    ]
    for name, parameters in steps:
        started = time.perf_counter()
        print(f"[demo] executing {name} with {parameters}", flush=True)
        execute_notebook(name, PROJECT_ROOT / name, parameters)
        print(f"[demo] {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    report = Path(args.report)
    status = main(["report", args.run_dir, "--eda", args.eda_dir, "--out", str(report),
                   "--pdf", str(report.with_suffix(".pdf"))])
    print(f"[demo] model and plots in {args.run_dir}/, report in {report} and {report.with_suffix('.pdf')}")
    return status
