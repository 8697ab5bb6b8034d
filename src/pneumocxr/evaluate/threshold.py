"""Evaluate step, threshold rules: the operating point chosen on validation scores (``threshold.json``).

Five named rules (``THRESHOLD_RULES``): maximum F1, a sensitivity target, Youden's J, and two midpoint
rules that put the threshold in the middle of the widest interval of near-best balanced accuracy - on
the validation split (``youden_midpoint``) or on its worst acquisition condition
(``worst_group_midpoint``). A sample is called positive (pneumonia) when ``probability >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from pneumocxr.evaluate.metrics import metrics_at_threshold, require_both_classes, threshold_curves, validate_scores

THRESHOLD_RULES = ("max_f1", "sensitivity_target", "youden", "youden_midpoint", "worst_group_midpoint")


def _widest_run(edges: np.ndarray, values: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """``(low, high, best)``: the widest run of adjacent cells whose ``values`` are within ``tolerance``
    of the best; cell ``k`` spans ``(edges[k], edges[k + 1]]``. Ties go to the lowest run."""
    best = values.max()
    ok = np.concatenate([[0], (values >= best - tolerance).astype(int), [0]])
    starts = np.flatnonzero(np.diff(ok) == 1)  # first cell of each run of qualifying cells
    ends = np.flatnonzero(np.diff(ok) == -1)  # one past its last cell
    widths = edges[ends] - edges[starts]
    widest = int(np.argmax(widths))
    return float(edges[starts[widest]]), float(edges[ends[widest]]), float(best)


def _widest_near_best_interval(scores: np.ndarray, labels: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """``(low, high, best balanced accuracy)``: the widest run of thresholds within ``tolerance`` of the best.

    Distinct scores ``u_0 < ... < u_{m-1}`` split the threshold axis [0, 1] into cells
    ``(u_{k-1}, u_k]`` (``u_{-1} = 0``, ``u_m = 1``) in which every prediction is constant; cell ``k``
    calls ``scores >= u_k`` positive. A run of adjacent qualifying cells ``a..b`` spans ``(u_{a-1}, u_b]``.
    """
    curves = threshold_curves(labels, scores).iloc[::-1]  # ascending thresholds u_0..u_{m-1}
    cells_ba = np.append(curves["balanced_accuracy"].to_numpy(), 0.5)  # cell m: nothing positive
    edges = np.concatenate([[0.0], curves["threshold"].to_numpy(), [1.0]])  # edges[k] = u_{k-1}
    return _widest_run(edges, cells_ba, tolerance)


def worst_group_balanced_accuracy(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, worst)``: for every threshold cell (as in ``_widest_near_best_interval``, over the
    distinct scores of all rows) the lowest balanced accuracy of any group holding both classes."""
    cuts = np.unique(scores)
    edges = np.concatenate([[0.0], cuts, [1.0]])
    worst = np.full(cuts.size + 1, np.inf)
    for group in pd.unique(groups):
        member = groups == group
        pos, neg = np.sort(scores[member & (labels == 1)]), np.sort(scores[member & (labels == 0)])
        if pos.size == 0 or neg.size == 0:
            continue
        sensitivity = 1 - np.searchsorted(pos, cuts, "left") / pos.size  # share of positives >= cut
        specificity = np.searchsorted(neg, cuts, "left") / neg.size  # share of negatives < cut
        worst = np.minimum(worst, np.append((sensitivity + specificity) / 2, 0.5))
    if not np.isfinite(worst).all():
        raise ValueError("no group holds both classes; the worst-group rule needs at least one")
    return edges, worst


_Choice = tuple[float, str, float | None, dict[str, Any]]  # threshold, criterion, its value (None: at the point), extra


def _max_f1(labels: np.ndarray, scores: np.ndarray, **_: Any) -> _Choice:
    """The score that maximises F1 (``precision_recall_curve``); ties go to the highest threshold."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.nan_to_num(2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]))
    best = np.flatnonzero(f1 == f1.max())[-1]  # thresholds ascend: last tie = highest
    return thresholds[best], "f1", f1[best], {}


def _sensitivity_target(labels: np.ndarray, scores: np.ndarray, target: float | None = None, **_: Any) -> _Choice:
    """The highest threshold whose sensitivity is ``>= target``."""
    if target is None or not 0 < target <= 1:
        raise ValueError(f"rule 'sensitivity_target' needs a target sensitivity in (0, 1], got {target!r}")
    curves = threshold_curves(labels, scores)  # descending thresholds, ascending sensitivity
    meets = np.flatnonzero(curves["sensitivity"].to_numpy() >= target)[0]
    return curves["threshold"].iloc[meets], "sensitivity", curves["sensitivity"].iloc[meets], {}


def _youden(labels: np.ndarray, scores: np.ndarray, **_: Any) -> _Choice:
    """The score that maximises Youden's J (``roc_curve``); ties go to the highest threshold."""
    curves = threshold_curves(labels, scores)
    j = (curves["sensitivity"] + curves["specificity"] - 1).to_numpy()
    best = np.flatnonzero(j == j.max())[0]  # descending thresholds: first tie = highest
    return curves["threshold"].iloc[best], "youden_j", j[best], {}


def _check_tolerance(tolerance: float) -> None:
    """Raise unless the midpoint rules' balanced-accuracy slack is in [0, 0.5)."""
    if not 0 <= tolerance < 0.5:
        raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance!r}")


def _youden_midpoint(labels: np.ndarray, scores: np.ndarray, tolerance: float = 0.01, **_: Any) -> _Choice:
    """The midpoint of the widest threshold interval within ``tolerance`` of the best balanced accuracy."""
    _check_tolerance(tolerance)
    low, high, best_ba = _widest_near_best_interval(scores, labels, tolerance)
    extra = {"tolerance": float(tolerance), "low": low, "high": high, "best_balanced_accuracy": best_ba}
    return (low + high) / 2, "balanced_accuracy", None, extra  # value: at the midpoint, computed by the caller


def _worst_group_midpoint(
    labels: np.ndarray, scores: np.ndarray, tolerance: float = 0.01, groups: Any = None, **_: Any
) -> _Choice:
    """The midpoint of the widest interval within ``tolerance`` of the best worst-group balanced accuracy."""
    if groups is None or len(groups) != labels.size:
        raise ValueError("rule 'worst_group_midpoint' needs one group label per score (groups=)")
    _check_tolerance(tolerance)
    edges, worst = worst_group_balanced_accuracy(scores, labels, np.asarray(groups))
    low, high, best_worst = _widest_run(edges, worst, tolerance)
    threshold = (low + high) / 2
    value = worst[int(np.searchsorted(edges, threshold, side="left")) - 1]  # the cell holding the threshold
    extra = {
        "tolerance": float(tolerance),
        "low": low,
        "high": high,
        "best_worst_balanced_accuracy": best_worst,
        "groups": int(pd.unique(np.asarray(groups)).size),
    }
    return threshold, "worst_group_balanced_accuracy", value, extra


_RULES = {
    "max_f1": _max_f1,
    "sensitivity_target": _sensitivity_target,
    "youden": _youden,
    "youden_midpoint": _youden_midpoint,
    "worst_group_midpoint": _worst_group_midpoint,
}


def choose_threshold(
    y_true: Any,
    y_prob: Any,
    rule: str = "max_f1",
    target: float | None = None,
    tolerance: float = 0.01,
    groups: Any = None,
) -> dict[str, Any]:
    """The operating point chosen on validation scores by a named rule, as the ``threshold.json`` record.

    Parameters
    ----------
    y_true, y_prob : array-like
        Validation labels (1 = pneumonia) and predicted probabilities; never the test split.
    rule : {"max_f1", "sensitivity_target", "youden", "youden_midpoint"}
        - ``max_f1``: the score that maximises F1 (``precision_recall_curve``); ties go to the highest
          threshold. Sits on a positive's score, so it hugs the positive class.
        - ``sensitivity_target``: the highest threshold whose sensitivity is ``>= target`` (e.g. 0.90),
          i.e. the most specific operating point that still meets the sensitivity goal.
        - ``youden``: the score that maximises Youden's J = sensitivity + specificity - 1 (``roc_curve``);
          ties go to the highest threshold. Also sits on a positive's score.
        - ``youden_midpoint``: robust to an easy validation split. Balanced accuracy
          ((sensitivity + specificity) / 2) is constant between consecutive distinct scores; take every
          threshold whose balanced accuracy is within ``tolerance`` of the best, find the widest contiguous
          interval of them, and return its midpoint. When validation separates the classes with a gap,
          the point sits in the middle of the gap instead of on the lowest positive score, so a shift of
          the score distribution on new data costs the least.
        - ``worst_group_midpoint``: robust to acquisition shifts. For every threshold, the balanced
          accuracy of each group (``groups``: the shift-validation conditions, e.g. plain, blur/strong,
          official_val) is computed and the worst one kept - the threshold whose performance degrades
          least across shifts (a max-min, distributionally robust choice). As in ``youden_midpoint``,
          the midpoint of the widest interval within ``tolerance`` of the best worst-case value.
    target : float, optional
        Required sensitivity in (0, 1] for ``sensitivity_target``; ignored otherwise.
    tolerance : float
        Balanced-accuracy slack for the midpoint rules (0.01 = one percentage point).
    groups : array-like, optional
        One group label per score; required by ``worst_group_midpoint``, ignored otherwise.

    Returns
    -------
    dict
        ``threshold``, ``rule``, ``target``, ``n``, ``n_pos``, ``criterion`` (what the rule optimised),
        ``criterion_value`` (its validation value), and validation ``sensitivity`` and ``specificity``
        at the threshold; ``youden_midpoint`` adds ``tolerance`` and the interval ``low``/``high``.
    """
    labels, scores = validate_scores(y_true, y_prob)
    require_both_classes(labels, f"threshold rule {rule!r}")
    if rule not in _RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; expected one of {', '.join(THRESHOLD_RULES)}")
    threshold, criterion, value, extra = _RULES[rule](labels, scores, target=target, tolerance=tolerance, groups=groups)
    at = metrics_at_threshold(labels, scores, float(threshold))
    if value is None:
        value = (at["sensitivity"] + at["specificity"]) / 2
    return {
        "threshold": float(threshold),
        "rule": rule,
        "target": target,
        "n": int(labels.size),
        "n_pos": int(labels.sum()),
        "criterion": criterion,
        "criterion_value": float(value),
        "sensitivity": at["sensitivity"],
        "specificity": at["specificity"],
        **extra,
    }
