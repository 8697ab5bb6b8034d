"""Evaluate step, metrics: metrics at a threshold, patient bootstrap CIs, calibration, subgroups.

Pure functions over numpy arrays and DataFrames; the curves themselves come from scikit-learn
(``roc_auc_score``, ``roc_curve``, ``calibration_curve``, ``confusion_matrix``).
``evaluate_predictions`` builds the ``metrics.json`` object (``runs.MetricsRecord``);
``artifacts.save_evaluation`` writes it with ``predictions.csv`` and the plots of ``figures``; the
threshold itself comes from ``threshold.choose_threshold``. A sample is called positive (pneumonia)
when ``probability >= threshold``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

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


def require_both_classes(labels: np.ndarray, what: str) -> None:
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
    require_both_classes(labels, "threshold curves")
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
