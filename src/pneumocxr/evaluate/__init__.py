"""Evaluate step: threshold rules, metrics with patient-bootstrap CIs, calibration, subgroups, figures.

``threshold`` (the operating point chosen on validation scores), ``metrics`` (pure functions over
arrays and DataFrames: metrics at a threshold, bootstrap CIs, calibration, subgroups), ``figures``
(one matplotlib Figure per plot) and ``artifacts`` (``metrics.json``, ``predictions.csv`` and the
plots of one scored split). The names below are the step's public face.
"""

from __future__ import annotations

from pneumocxr.evaluate.artifacts import save_evaluation
from pneumocxr.evaluate.metrics import bootstrap_ci, evaluate_predictions, metrics_at_threshold, subgroup_table
from pneumocxr.evaluate.threshold import THRESHOLD_RULES, choose_threshold

__all__ = [
    "THRESHOLD_RULES",
    "bootstrap_ci",
    "choose_threshold",
    "evaluate_predictions",
    "metrics_at_threshold",
    "save_evaluation",
    "subgroup_table",
]
