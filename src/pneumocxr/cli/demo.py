"""``pneumocxr demo`` and ``pneumocxr deliverables``: the whole path, for a visitor and for the repository.

``demo`` trains the demo config and executes the three notebooks and the report into a git-ignored folder
(``reports/demo/``): a fresh clone stays clean and the committed deliverables stay as shipped.
``deliverables RUN`` refreshes what the repository ships from a finished run: the three notebooks executed
in place against RUN (JPEG figures, long outputs cut, so a code host renders them) and
``FDA_Submission.md`` / ``.pdf`` at the project root.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pneumocxr.cli.options import add_command, add_run_dir
from pneumocxr.config import PROJECT_ROOT
from pneumocxr.notebooks import compact_outputs, execute_notebook


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` and ``deliverables`` sub-commands."""
    demo = add_command(
        subparsers,
        "demo",
        run_demo,
        help="train the demo config, execute the three notebooks and write the report into reports/demo/",
        description="Runs the whole path on the default data without touching tracked files: trains CONFIG into "
        "RUN_DIR, executes copies of EDA, training and inference notebooks into OUT, and writes "
        "OUT/FDA_Submission.md and .pdf from the run.",
    )
    demo.add_argument("--config", default="configs/demo-cpu.toml", help="training config (default: %(default)s)")
    demo.add_argument("--run-dir", default="runs/demo", help="run directory to write (default: %(default)s)")
    demo.add_argument("--out", default="reports/demo", help="executed notebooks, EDA and report (default: %(default)s)")

    deliverables = add_command(
        subparsers,
        "deliverables",
        run_deliverables,
        help="refresh the committed notebooks and FDA_Submission.md/.pdf from a finished run",
        description="Executes EDA.ipynb, Build_and_train_model.ipynb and Inference.ipynb IN PLACE against RUN_DIR "
        "(a finished run: nothing is retrained), compacts their outputs (JPEG figures) and writes "
        "FDA_Submission.md/.pdf at the project root. These are the tracked files a visitor reads.",
    )
    add_run_dir(deliverables, "finished run directory, e.g. runs/kermany-cpu")
    deliverables.add_argument("--eda-dir", default="reports/eda", help="EDA output folder (default: %(default)s)")
    deliverables.add_argument("--dicom-dir", default="test_dicoms", help="inputs of the inference notebook")
    deliverables.add_argument("--root", default=str(PROJECT_ROOT), help="folder holding the notebooks and report")


def execute_all(
    run_dir: str,
    eda_dir: str,
    dicom_dir: str,
    out_dir: Path,
    config: str | None = None,
    source_dir: Path = PROJECT_ROOT,
) -> list[Path]:
    """Execute the three notebooks in order into ``out_dir``; the training notebook trains only when
    ``config`` is given (otherwise it reads the finished ``run_dir``). Returns the executed notebooks."""
    from pneumocxr.runs import load_run_config

    train = {"RUN_DIR": run_dir, "CONFIG": config or str(Path(run_dir) / "config.toml")}
    if config is None:
        load_run_config(run_dir)  # a finished run is needed: fail now, with the file named
    steps = [
        ("EDA.ipynb", {"DATA_ROOT": "data", "OUT_DIR": eda_dir}),
        ("Build_and_train_model.ipynb", train),
        ("Inference.ipynb", {"RUN_DIR": run_dir, "DICOM_DIR": dicom_dir, "OUT_DIR": str(Path(out_dir) / "inference")}),
    ]
    written = []
    for name, parameters in steps:
        started = time.perf_counter()
        print(f"[{out_dir}] executing {name}", flush=True)
        written.append(execute_notebook(name, Path(out_dir) / name, parameters, source_dir=source_dir))
        print(f"[{out_dir}] {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    return written


def write_report_files(run_dir: str, eda_dir: str, markdown: Path) -> None:
    """``pneumocxr report RUN_DIR --eda EDA --out MARKDOWN --pdf MARKDOWN.pdf``."""
    from pneumocxr.report.render import write_report

    write_report(run_dir, markdown, eda_dir=eda_dir, pdf=markdown.with_suffix(".pdf"))


def run_demo(args: argparse.Namespace) -> int:
    """Train, execute the notebooks and write the report, all under ``args.out`` and ``args.run_dir``."""
    out = Path(args.out)
    execute_all(args.run_dir, str(out / "eda"), "test_dicoms", out, config=args.config)
    write_report_files(args.run_dir, str(out / "eda"), out / "FDA_Submission.md")
    print(f"[demo] model and plots in {args.run_dir}/; notebooks, EDA and FDA_Submission.md/.pdf in {out}/")
    return 0


def run_deliverables(args: argparse.Namespace) -> int:
    """Execute the committed notebooks in place against a finished run, compact them, write the report."""
    root = Path(args.root)
    for notebook in execute_all(args.run_dir, args.eda_dir, args.dicom_dir, root, source_dir=root):
        compact_outputs(notebook)
    write_report_files(args.run_dir, args.eda_dir, root / "FDA_Submission.md")
    print(f"[deliverables] notebooks and FDA_Submission.md/.pdf in {root} refreshed from {args.run_dir}")
    return 0
