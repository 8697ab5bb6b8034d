"""Evaluate: threshold choice, metrics at a threshold, patient bootstrap CIs, calibration, subgroups.

Pure functions over numpy arrays and DataFrames; the curves themselves come from scikit-learn
(``roc_auc_score``, ``roc_curve``, ``precision_recall_curve``, ``calibration_curve``,
``confusion_matrix``). ``evaluate_predictions`` builds the ``metrics.json`` object (``runs.MetricsRecord``) and
``save_evaluation`` writes it with ``predictions.csv`` and the plots of ``evaluate.figures``.
A sample is called positive (pneumonia) when ``probability >= threshold``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve

from pneumocxr.runs import save_metrics

THRESHOLD_RULES = ("max_f1", "sensitivity_target", "youden", "youden_midpoint", "worst_group_midpoint")
CONFUSION_METRICS = ("accuracy", "sensitivity", "specificity", "precision", "npv", "f1")
AGE_BANDS = ((0, 18, "0-17"), (18, 40, "18-39"), (40, 60, "40-59"), (60, 80, "60-79"), (80, np.inf, "80+"))
SUBGROUP_COLUMNS = ("sex", "age_band", "view")


def validate_scores(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(labels as int 0/1, probabilities as float)`` after checking shape, values and range."""
    labels = np.asarray(y_true).ravel()
    scores = np.asarray(y_prob, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"y_true has {labels.size} values but y_prob has {scores.size}")
    if labels.size == 0:
        raise ValueError("no predictions to evaluate (empty y_true)")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 (1 = pneumonia); found {sorted(set(labels.tolist()))[:5]}")
    if not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    return labels.astype(int), scores


def _require_both_classes(labels: np.ndarray, what: str) -> None:
    """Raise when ``labels`` lack positives or negatives (``what`` names the computation)."""
    if labels.min() == labels.max():
        raise ValueError(f"{what} needs both classes; all {labels.size} labels are {labels[0]}")


def confusion_counts(y_true: Any, y_prob: Any, threshold: float) -> dict[str, int]:
    """``{tp, fp, tn, fn}`` when ``probability >= threshold`` is called pneumonia."""
    labels, scores = validate_scores(y_true, y_prob)
    tn, fp, fn, tp = confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


def rates_from_counts(tp: Any, fp: Any, tn: Any, fn: Any) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity, precision, NPV and F1 from counts (scalars or arrays; NaN on 0/0)."""
    tp, fp, tn, fn = (np.asarray(v, dtype=float) for v in (tp, fp, tn, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": (tp + tn) / (tp + fp + tn + fn),
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "precision": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }
    return {k: (float(v) if v.ndim == 0 else v) for k, v in out.items()}


def metrics_at_threshold(y_true: Any, y_prob: Any, threshold: float) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity, precision, NPV, F1 and tp/fp/tn/fn at ``threshold``.

    Ratios with a zero denominator (e.g. precision when nothing is called positive) are NaN.
    """
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    counts = confusion_counts(y_true, y_prob, threshold)
    return {"threshold": float(threshold), **rates_from_counts(**counts), **counts}


def threshold_curves(y_true: Any, y_prob: Any) -> pd.DataFrame:
    """Per candidate threshold (each distinct score, descending): sensitivity, specificity, precision, F1, F2.

    Built on ``sklearn.metrics.roc_curve(drop_intermediate=False)``; precision is ``tp / (tp + fp)``
    from its rates. The first row of ``roc_curve`` (threshold +inf, nothing positive) is dropped.
    """
    labels, scores = validate_scores(y_true, y_prob)
    _require_both_classes(labels, "threshold curves")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    keep = np.isfinite(thresholds)
    n_pos, n_neg = labels.sum(), labels.size - labels.sum()
    tp, fp = tpr[keep] * n_pos, fpr[keep] * n_neg
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tpr[keep]

    def f_beta(beta: float) -> np.ndarray:
        den = beta**2 * precision + recall
        return np.where(den > 0, (1 + beta**2) * precision * recall / np.maximum(den, 1e-12), 0.0)

    return pd.DataFrame(
        {
            "threshold": thresholds[keep],
            "sensitivity": recall,
            "specificity": 1 - fpr[keep],
            "precision": precision,
            "f1": f_beta(1.0),
            "f2": f_beta(2.0),
            "balanced_accuracy": (recall + 1 - fpr[keep]) / 2,
        }
    )


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
    _require_both_classes(labels, f"threshold rule {rule!r}")
    extra: dict[str, Any] = {}
    if rule == "max_f1":
        precision, recall, thresholds = precision_recall_curve(labels, scores)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.nan_to_num(2 * precision[:-1] * recall[:-1] / (precision[:-1] + recall[:-1]))
        best = np.flatnonzero(f1 == f1.max())[-1]  # thresholds ascend: last tie = highest
        threshold, criterion, value = thresholds[best], "f1", f1[best]
    elif rule == "sensitivity_target":
        if target is None or not 0 < target <= 1:
            raise ValueError(f"rule 'sensitivity_target' needs a target sensitivity in (0, 1], got {target!r}")
        curves = threshold_curves(labels, scores)  # descending thresholds, ascending sensitivity
        meets = np.flatnonzero(curves["sensitivity"].to_numpy() >= target)[0]
        threshold, criterion, value = curves["threshold"].iloc[meets], "sensitivity", curves["sensitivity"].iloc[meets]
    elif rule == "youden":
        curves = threshold_curves(labels, scores)
        j = (curves["sensitivity"] + curves["specificity"] - 1).to_numpy()
        best = np.flatnonzero(j == j.max())[0]  # descending thresholds: first tie = highest
        threshold, criterion, value = curves["threshold"].iloc[best], "youden_j", j[best]
    elif rule == "youden_midpoint":
        if not 0 <= tolerance < 0.5:
            raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance!r}")
        low, high, best_ba = _widest_near_best_interval(scores, labels, tolerance)
        threshold, criterion, value = (low + high) / 2, "balanced_accuracy", None  # value: at the midpoint, below
        extra = {"tolerance": float(tolerance), "low": low, "high": high, "best_balanced_accuracy": best_ba}
    elif rule == "worst_group_midpoint":
        if groups is None or len(groups) != labels.size:
            raise ValueError("rule 'worst_group_midpoint' needs one group label per score (groups=)")
        if not 0 <= tolerance < 0.5:
            raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance!r}")
        edges, worst = worst_group_balanced_accuracy(scores, labels, np.asarray(groups))
        low, high, best_worst = _widest_run(edges, worst, tolerance)
        threshold, criterion = (low + high) / 2, "worst_group_balanced_accuracy"
        value = worst[int(np.searchsorted(edges, threshold, side="left")) - 1]  # the cell holding the threshold
        extra = {
            "tolerance": float(tolerance),
            "low": low,
            "high": high,
            "best_worst_balanced_accuracy": best_worst,
            "groups": int(pd.unique(np.asarray(groups)).size),
        }
    else:
        raise ValueError(f"unknown threshold rule {rule!r}; expected one of {', '.join(THRESHOLD_RULES)}")
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


def _group_index(groups: Any, n: int) -> np.ndarray:
    """Integer group code per sample (each sample its own group when ``groups`` is None)."""
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups).ravel()
    if groups.size != n:
        raise ValueError(f"groups has {groups.size} values but there are {n} predictions")
    if pd.isna(groups).any():
        raise ValueError("groups (patient ids) contain missing values")
    return pd.factorize(groups)[0]


def resample_multiplicity(groups: Any, n: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(counts (n_boot, n_groups), group code per sample)``: how often each group is drawn per resample."""
    codes = _group_index(groups, n)
    n_groups = int(codes.max()) + 1
    draws = np.random.default_rng(seed).integers(0, n_groups, size=(n_boot, n_groups))
    flat = (draws + np.arange(n_boot)[:, None] * n_groups).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    return counts, codes


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap values; NaNs when fewer than half are finite."""
    finite = values[np.isfinite(values)]
    if finite.size < max(1, values.size // 2):
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    y_true: Any,
    y_prob: Any,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    groups: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of ``statistic(y_true, y_prob)``.

    Parameters
    ----------
    statistic : callable
        ``f(labels, probabilities) -> float`` (e.g. ``roc_auc_score``). Resamples where it fails
        (e.g. one class only for AUC) are dropped; NaNs are returned when more than half fail.
    groups : array-like, optional
        Patient id per image. When given, whole patients are resampled with replacement, so the
        correlation between one patient's images widens the interval as it should; otherwise images.
    n_boot, seed, alpha
        Number of resamples, random seed, and 1 - coverage (0.05 -> 95% interval).
    """
    labels, scores = validate_scores(y_true, y_prob)
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_boot >= 1 (got alpha={alpha}, n_boot={n_boot})")
    counts, codes = resample_multiplicity(groups, labels.size, n_boot, seed)
    positions = np.arange(labels.size)
    values = np.full(n_boot, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on one-class resamples; those become NaN
        for b in range(n_boot):
            idx = np.repeat(positions, counts[b][codes])  # each image as often as its patient was drawn
            try:
                values[b] = statistic(labels[idx], scores[idx])
            except ValueError:
                continue
    return _percentile_interval(values, alpha)


def bootstrap_confusion_cis(
    y_true: Any,
    y_prob: Any,
    threshold: float,
    groups: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap ``(low, high)`` of each of ``CONFUSION_METRICS`` at ``threshold``, vectorised.

    Same resampling as ``bootstrap_ci`` (patients when ``groups`` is given): per-group tp/fp/tn/fn
    counts are summed with the resample multiplicities in one matrix product.
    """
    labels, scores = validate_scores(y_true, y_prob)
    counts, codes = resample_multiplicity(groups, labels.size, n_boot, seed)
    called = scores >= threshold
    cells = np.stack([labels & called, (1 - labels) & called, (1 - labels) & ~called, labels & ~called], axis=1)
    per_group = np.zeros((counts.shape[1], 4))
    np.add.at(per_group, codes, cells.astype(float))
    tp, fp, tn, fn = (counts @ per_group).T
    rates = rates_from_counts(tp, fp, tn, fn)
    return {name: _percentile_interval(rates[name], alpha) for name in CONFUSION_METRICS}


def reliability_curve(y_true: Any, y_prob: Any, n_bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data: per equal-width bin ``bin_low``, ``bin_high``, ``count``,
    ``mean_predicted`` and ``fraction_positive`` (NaN in empty bins), from ``calibration_curve``."""
    labels, scores = validate_scores(y_true, y_prob)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    fraction, mean_pred = calibration_curve(labels, scores, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=n_bins)  # calibration_curve's binning
    filled = count > 0
    frame = pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": count,
            "mean_predicted": np.nan,
            "fraction_positive": np.nan,
        }
    )
    frame.loc[filled, "mean_predicted"] = mean_pred
    frame.loc[filled, "fraction_positive"] = fraction
    return frame


def expected_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean of |fraction positive - mean predicted| over equal-width bins."""
    curve = reliability_curve(y_true, y_prob, n_bins).dropna()
    gaps = (curve["fraction_positive"] - curve["mean_predicted"]).abs()
    return float((curve["count"] * gaps).sum() / curve["count"].sum())


def age_band(age: Any) -> pd.Series:
    """Age band label per age in years (0-17, 18-39, 40-59, 60-79, 80+); missing or outside 0-120 -> NaN."""
    years = pd.to_numeric(pd.Series(age), errors="coerce")
    years = years.where((years >= 0) & (years <= 120))  # NIH metadata has a few ages like 414
    edges = [low for low, _, _ in AGE_BANDS] + [np.inf]
    bands = pd.cut(years, bins=edges, right=False, labels=[name for _, _, name in AGE_BANDS])
    return bands.astype(object).where(bands.notna(), np.nan)


def safe_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    return float(roc_auc_score(labels, scores)) if labels.min() != labels.max() else None


def subgroup_table(frame: pd.DataFrame, threshold: float) -> dict[str, dict[str, dict[str, Any]]]:
    """``{column: {value: {n, n_pos, prevalence, auc, sensitivity, specificity, accuracy}}}`` for the
    ``sex``, age band (from ``age``) and ``view`` columns present; rows with a missing value are left out."""
    frame = frame.reset_index(drop=True)  # a concatenated frame may repeat index labels
    columns = {
        "sex": frame.get("sex"),
        "age_band": age_band(frame["age"]) if "age" in frame else None,
        "view": frame.get("view"),
    }
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, values in columns.items():
        if values is None:
            continue
        values = pd.Series(np.asarray(values, dtype=object), index=frame.index)
        table[name] = {}
        for value, rows in frame.groupby(values.dropna().astype(str), sort=True):
            labels, scores = validate_scores(rows["label"], rows["probability"])
            rates = metrics_at_threshold(labels, scores, threshold)
            table[name][value] = {
                "n": int(labels.size),
                "n_pos": int(labels.sum()),
                "prevalence": float(labels.mean()),
                "auc": safe_auc(labels, scores),
                "sensitivity": rates["sensitivity"],
                "specificity": rates["specificity"],
                "accuracy": rates["accuracy"],
            }
    return table


def evaluate_predictions(
    frame: pd.DataFrame,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    dataset: str | None = None,
    split: str | None = None,
    threshold_rule: str | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The ``metrics.json`` object (``runs.MetricsRecord``) for scored images at a fixed threshold.

    Parameters
    ----------
    frame : DataFrame
        One row per scored image: ``label`` (1 = pneumonia), ``probability``, ``patient_id``; optional
        ``sex``, ``age`` (years) and ``view`` give the subgroup tables.
    threshold : float
        The operating point, chosen beforehand on the validation split (``choose_threshold``).
    n_boot, seed, alpha
        Bootstrap resamples of patients for every ``*_ci95`` interval.
    """
    missing = {"label", "probability", "patient_id"} - set(frame.columns)
    if missing:
        raise ValueError(f"prediction frame lacks column(s) {sorted(missing)}")
    labels, scores = validate_scores(frame["label"], frame["probability"])
    groups = frame["patient_id"].to_numpy()
    if pd.isna(groups).any():
        raise ValueError(
            f"patient_id is missing for {int(pd.isna(groups).sum())} image(s); the bootstrap resamples patients"
        )
    both = labels.min() != labels.max()
    counts = confusion_counts(labels, scores, threshold)
    rates = rates_from_counts(**counts)
    cis = bootstrap_confusion_cis(labels, scores, threshold, groups, n_boot, seed, alpha)
    auc_ci = bootstrap_ci(labels, scores, roc_auc_score, groups, n_boot, seed, alpha) if both else (None, None)
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "n": int(labels.size),
        "n_patients": int(pd.unique(groups).size),
        "n_pos": int(labels.sum()),
        "prevalence": float(labels.mean()),
        "auc": safe_auc(labels, scores),
        "auc_ci95": list(auc_ci),
        "average_precision": float(average_precision_score(labels, scores)) if labels.sum() else None,
        "threshold": float(threshold),
        "threshold_rule": threshold_rule,
        "confusion": counts,
        "ece": expected_calibration_error(labels, scores),
        "calibration": reliability_curve(labels, scores).to_dict(orient="records"),
        "ci": {
            "method": "percentile bootstrap",
            "n_boot": n_boot,
            "seed": seed,
            "alpha": alpha,
            "unit": "patient" if pd.unique(groups).size < labels.size else "image",
        },
        "subgroups": subgroup_table(frame, threshold),
    }
    for name in CONFUSION_METRICS:
        metrics[name] = rates[name]
        metrics[f"{name}_ci95"] = list(cis[name])
    return metrics


def save_evaluation(
    metrics: dict[str, Any], frame: pd.DataFrame, out_dir: str | os.PathLike, plots_dir: str | os.PathLike | None = None
) -> list[Path]:
    """Write ``metrics.json``, ``predictions.csv`` and the evaluation plots; return the paths written.

    ``plots_dir`` defaults to ``out_dir/plots``. ``predictions.csv`` keeps ``path``, ``patient_id``,
    ``label``, ``probability`` and whichever subgroup columns (``sex``, ``age``, ``view``) exist.
    """
    from pneumocxr.evaluate.figures import save_evaluation_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [save_metrics(out, metrics)]
    columns = [c for c in ("path", "patient_id", "label", "probability", "sex", "age", "view") if c in frame]
    frame[columns].to_csv(out / "predictions.csv", index=False)
    written.append(out / "predictions.csv")
    written += save_evaluation_plots(metrics, frame, Path(plots_dir) if plots_dir else out / "plots")
    return written
