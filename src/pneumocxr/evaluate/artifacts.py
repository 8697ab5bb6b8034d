"""Evaluate step, artifacts: ``metrics.json``, ``predictions.csv`` and the evaluation plots of one scored split.

Kept apart from ``metrics`` (pure functions) and ``figures`` (which reads ``metrics``), so neither
imports the other back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from pneumocxr.evaluate.figures import save_evaluation_plots
from pneumocxr.runs import save_metrics


def save_evaluation(
    metrics: dict[str, Any], frame: pd.DataFrame, out_dir: str | os.PathLike, plots_dir: str | os.PathLike | None = None
) -> list[Path]:
    """Write ``metrics.json``, ``predictions.csv`` and the evaluation plots; return the paths written.

    ``plots_dir`` defaults to ``out_dir/plots``. ``predictions.csv`` keeps ``path``, ``patient_id``,
    ``label``, ``probability`` and whichever subgroup columns (``sex``, ``age``, ``view``) exist.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [save_metrics(out, metrics)]
    columns = [c for c in ("path", "patient_id", "label", "probability", "sex", "age", "view") if c in frame]
    frame[columns].to_csv(out / "predictions.csv", index=False)
    written.append(out / "predictions.csv")
    written += save_evaluation_plots(metrics, frame, Path(plots_dir) if plots_dir else out / "plots")
    return written
