"""Evaluate step: threshold rules, metrics with patient-bootstrap CIs, calibration, subgroups, figures.

``metrics`` (pure functions over arrays and DataFrames) and ``figures`` (one matplotlib Figure per
plot). The names below are the step's public face.
"""

from __future__ import annotations

from pneumocxr.evaluate.metrics import (
    bootstrap_ci,
    choose_threshold,
    evaluate_predictions,
    metrics_at_threshold,
    save_evaluation,
    subgroup_table,
)

__all__ = [
    "bootstrap_ci",
    "choose_threshold",
    "evaluate_predictions",
    "metrics_at_threshold",
    "save_evaluation",
    "subgroup_table",
]
