"""``pneumocxr train``, ``evaluate`` and ``sweep``: fit a config into a run directory, score a split, compare runs."""

from __future__ import annotations

import argparse
import logging

from pneumocxr.cli.options import add_command, add_root, add_run_dir
from pneumocxr.cli.table import format_table
from pneumocxr.datasets.registry import DATASETS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``evaluate`` and ``sweep`` sub-commands."""
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_sweep(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    train = add_command(
        subparsers,
        "train",
        run_train,
        help="train a config into a run directory (model, threshold, metrics, plots, manifest)",
        description="Fits the config's model (feature cache and fine-tune stages as configured), chooses the "
        "threshold on the validation split, and writes RUN_DIR. --resume continues an interrupted run.",
    )
    train.add_argument("--config", help="TOML config (optional with --resume: the run's own config is used)")
    train.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    add_root(train)


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    evaluate = add_command(
        subparsers,
        "evaluate",
        run_evaluate,
        help="score a dataset split with a run's model at its saved threshold",
        description="Writes RUN_DIR/eval/DATASET-SPLIT/metrics.json, predictions.csv and plots/. "
        "`pneumocxr report` shows only evaluations of a whole split: an evaluation run with --limit is left out "
        "(named in the report, with the reason).",
    )
    add_run_dir(evaluate, "run directory written by `pneumocxr train`")
    evaluate.add_argument(
        "--dataset",
        required=True,
        choices=sorted(DATASETS),
        help="a dataset of pneumocxr.datasets.registry: %(choices)s",
    )
    add_root(evaluate, "the run config's, or $PNEUMOCXR_DATA")
    evaluate.add_argument("--split", required=True, help="train | val | official_val | test")
    evaluate.add_argument(
        "--limit",
        type=int,
        help="score at most N images (label mix kept); a limited evaluation is not reported by `pneumocxr report`",
    )
    evaluate.add_argument("--n-boot", type=int, help="bootstrap resamples for the CIs (default: the run config's)")
    evaluate.add_argument(
        "--shift",
        type=int,
        default=0,
        metavar="N",
        help="also score every image under N acquisition shifts (shift validation, 0-16)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics object as JSON")


def _register_sweep(subparsers: argparse._SubParsersAction) -> None:
    sweep = add_command(
        subparsers,
        "sweep",
        run_sweep,
        help="train several configs (or a sweep TOML's variants) and write one comparison table",
        description="Each config trains into OUT/NAME (finished runs are reused); writes OUT/sweep.csv and OUT/sweep.md.",
    )
    sweep.add_argument(
        "--configs",
        nargs="+",
        required=True,
        metavar="TOML",
        help="run configs, or one sweep TOML with a [base] and [[variant]] tables",
    )
    sweep.add_argument("--out", default="runs/sweep", help="sweep directory (default: %(default)s)")
    add_root(sweep, "each config's, or $PNEUMOCXR_DATA")


def _progress_logging() -> None:
    """Show the training modules' progress lines even without ``-v``."""
    for name in ("pneumocxr.train.stages", "pneumocxr.train.run", "pneumocxr.train.features", "pneumocxr.train.sweep"):
        logging.getLogger(name).setLevel(logging.INFO)


def run_train(args: argparse.Namespace) -> int:
    """Train and print where the run is and its validation numbers."""
    from pneumocxr.runs import load_metrics
    from pneumocxr.train.run import train_run

    _progress_logging()
    run_dir = train_run(args.config, args.out, resume=args.resume, root=args.root)
    metrics = load_metrics(run_dir / "metrics.json").model_dump()
    row = {k: metrics.get(k) for k in ("n", "auc", "threshold", "accuracy", "sensitivity", "specificity")}
    print(format_table([{"run": str(run_dir), **{k: _fmt(v) for k, v in row.items()}}], ["run", *row]))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print a summary row, or the whole metrics object with ``--json``."""
    from pneumocxr.train.score import evaluate_dir, evaluate_run

    metrics = evaluate_run(
        args.run_dir,
        args.dataset,
        args.split,
        root=args.root,
        limit=args.limit,
        n_boot=args.n_boot,
        shift_copies=args.shift,
    )
    if args.json:
        print((evaluate_dir(args.run_dir, args.dataset, args.split, args.shift) / "metrics.json").read_text(), end="")
    else:
        columns = ["dataset", "split", "n", "auc", "threshold", "accuracy", "sensitivity", "specificity", "f1"]
        rows = [{k: _fmt(metrics.get(k)) for k in columns}]
        if args.shift:
            pooled = metrics["shift_validation"]["pooled"]
            rows.append(
                {
                    **{k: _fmt(pooled.get(k)) for k in columns},
                    "dataset": args.dataset,
                    "split": f"{args.split}+{args.shift} shifts",
                    "threshold": _fmt(metrics["threshold"]),
                }
            )
        print(format_table(rows, columns))
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """Run the sweep and print its table."""
    from pneumocxr.train.sweep import run_sweep as sweep

    _progress_logging()
    table = sweep(args.configs, args.out, root=args.root)
    print(table.attrs.get("markdown") or table.to_string())
    return 0


def _fmt(value) -> str:
    """Numbers to 4 significant digits for the printed table."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
