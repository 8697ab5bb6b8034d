"""Training step, scoring: a run's model on a dataset split at its saved threshold (``evaluate_run``).

``write_evaluation`` is shared with the end of a run (``run.finish_run`` scores the validation split
the same way): ``evaluate.evaluate_predictions`` at the run's threshold, written by
``evaluate.artifacts.save_evaluation``. Scoring reads the images through ``pipeline.score_frame``, the
inference function itself, never the shards.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from pneumocxr import runs
from pneumocxr.config import Config
from pneumocxr.train import pipeline
from pneumocxr.train.shift import PLAIN, shift_frame, shift_summary


def write_evaluation(
    run_dir: Path,
    config: Config,
    scored: pd.DataFrame,
    threshold: runs.ThresholdRecord,
    out_dir: Path,
    split: str,
    dataset: str,
    n_boot: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``evaluate_predictions`` at the run's threshold (plus ``extra`` keys), written with
    ``save_evaluation`` into ``out_dir``."""
    from pneumocxr.evaluate.artifacts import save_evaluation
    from pneumocxr.evaluate.metrics import evaluate_predictions

    n_boot = config.threshold.n_boot if n_boot is None else n_boot
    metrics = evaluate_predictions(
        scored,
        threshold.threshold,
        n_boot=n_boot,
        seed=config.data.seed,
        dataset=dataset,
        split=split,
        threshold_rule=threshold.rule,
    )
    metrics["run_id"] = run_dir.resolve().name
    metrics["n_boot"] = n_boot
    metrics.update(extra or {})
    save_evaluation(metrics, scored, out_dir, out_dir / "plots")
    return metrics


def evaluate_dir(run_dir: str | os.PathLike, dataset: str, split: str, shift_copies: int = 0) -> Path:
    """Where ``evaluate_run`` writes: ``RUN/eval/DATASET-SPLIT`` (``-shiftN`` with shifted copies)."""
    return Path(run_dir) / "eval" / (f"{dataset}-{split}" + (f"-shift{shift_copies}" if shift_copies else ""))


def evaluate_run(
    run_dir: str | os.PathLike,
    dataset: str,
    split: str,
    root: str | os.PathLike | None = None,
    limit: int | None = None,
    n_boot: int | None = None,
    shift_copies: int = 0,
) -> dict[str, Any]:
    """Score ``dataset``/``split`` with a run's model at its saved threshold; write ``evaluate_dir(...)``.

    ``shift_copies`` > 0 also renders every image under that many acquisition shifts
    (``shift.shift_frame``): the metrics stay those of the plain images and gain a
    ``shift_validation`` record (pooled and per condition). ``metrics.json`` records ``n_boot``,
    ``n_split`` (images in the whole split) and ``limit`` (None when the whole split was scored): the
    report leaves a limited evaluation out (``report.data.load_evaluations``). Raises ``ValueError``
    for an empty split.
    """
    from pneumocxr.datasets import stratified_limit

    run_dir = Path(run_dir)
    config = runs.load_run_config(run_dir)
    data = dataclasses.replace(config.data, dataset=dataset, limit_per_split=None)
    frame = pipeline.data_frame(dataclasses.replace(config, data=data), root)
    whole = frame[frame["split"] == split]
    if whole.empty:
        raise ValueError(
            f"dataset '{dataset}' has no images in split '{split}'; splits present: {sorted(frame['split'].unique())}"
        )
    part = stratified_limit(whole, limit, config.data.seed).reset_index(drop=True)
    coverage = {"limit": limit if len(part) < len(whole) else None, "n_split": len(whole)}
    model = runs.load_model(run_dir)
    rows = shift_frame(part, shift_copies)
    scored = pipeline.score_frame(model, rows, config.data.image_size, config.model.backbone, config.train.batch_size)
    threshold = runs.load_threshold(run_dir)
    extra = {"shift_validation": shift_summary(scored, threshold.threshold, config)} if shift_copies else {}
    extra.update(coverage)
    plain = scored[scored["condition"] == PLAIN].drop(columns="condition")
    return write_evaluation(
        run_dir,
        config,
        plain,
        threshold,
        evaluate_dir(run_dir, dataset, split, shift_copies),
        split,
        dataset,
        n_boot,
        extra=extra,
    )
