"""Evaluate (figures): ROC, precision-recall, threshold curves, confusion matrix, reliability, subgroups.

Each ``plot_*`` returns a matplotlib Figure (nothing shown; the command renders with Agg, ``plotting``); ``save_evaluation_plots``
writes them under stable names (roc.png, pr.png, threshold.png, confusion.png, calibration.png,
subgroups.png) and closes them. Numbers come from ``pneumocxr.evaluate.metrics``; nothing is recomputed here
beyond sklearn's curves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from pneumocxr.evaluate.metrics import reliability_curve, threshold_curves, validate_scores

DPI = 120
PLOT_FILES = ("roc.png", "pr.png", "threshold.png", "confusion.png", "calibration.png", "subgroups.png")


def _title(base: str, metrics: dict[str, Any] | None) -> str:
    """``base`` followed by the dataset/split and image count when known."""
    if not metrics:
        return base
    where = " ".join(str(metrics[k]) for k in ("dataset", "split") if metrics.get(k))
    return f"{base}\n{where + ', ' if where else ''}n = {metrics.get('n')} images"


def _fmt_ci(ci: Any) -> str:
    """``" (95% CI 0.91-0.95)"`` or an empty string when the interval is unknown."""
    if not ci or ci[0] is None or not np.isfinite(ci[0]):
        return ""
    return f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"


def _one_class_figure(name: str, metrics: dict[str, Any] | None) -> Figure:
    """A placeholder stating why a curve cannot be drawn (only one class in the labels)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.text(0.5, 0.5, f"{name} needs both classes;\nthese labels have only one.", ha="center", va="center")
    ax.set_axis_off()
    ax.set_title(_title(name, metrics))
    return fig


def plot_roc(y_true: Any, y_prob: Any, metrics: dict[str, Any] | None = None) -> Figure:
    """ROC curve with AUC and its CI in the legend and the operating point marked."""
    labels, scores = validate_scores(y_true, y_prob)
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    auc = metrics.get("auc") if metrics else None
    label = f"AUC = {auc:.3f}{_fmt_ci(metrics.get('auc_ci95'))}" if auc is not None else "ROC"
    ax.plot(fpr, tpr, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    if metrics and metrics.get("sensitivity") is not None:
        ax.plot(
            1 - metrics["specificity"],
            metrics["sensitivity"],
            "o",
            color="crimson",
            label=f"threshold {metrics['threshold']:.3f}",
        )
    ax.set(
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (sensitivity)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title=_title("ROC curve", metrics),
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_pr(y_true: Any, y_prob: Any, metrics: dict[str, Any] | None = None) -> Figure:
    """Precision-recall curve with average precision, prevalence baseline and the operating point."""
    labels, scores = validate_scores(y_true, y_prob)
    precision, recall, _ = precision_recall_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ap = metrics.get("average_precision") if metrics else None
    ax.plot(recall, precision, lw=2, label=f"AP = {ap:.3f}" if ap is not None else "PR curve")
    ax.axhline(labels.mean(), ls="--", color="grey", lw=1, label=f"prevalence {labels.mean():.2f}")
    if metrics and metrics.get("precision") is not None:
        ax.plot(
            metrics["sensitivity"],
            metrics["precision"],
            "o",
            color="crimson",
            label=f"threshold {metrics['threshold']:.3f}",
        )
    ax.set(
        xlabel="Recall (sensitivity)",
        ylabel="Precision (PPV)",
        xlim=(-0.01, 1.01),
        ylim=(0, 1.01),
        title=_title("Precision-recall curve", metrics),
    )
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return fig


def plot_threshold_curves(y_true: Any, y_prob: Any, metrics: dict[str, Any] | None = None) -> Figure:
    """F1, F2 (beta = 2), sensitivity and specificity against the threshold, chosen threshold marked."""
    curves = threshold_curves(y_true, y_prob).sort_values("threshold")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for column, name, style in (
        ("f1", "F1", "-"),
        ("f2", "F2 (beta = 2)", "-"),
        ("sensitivity", "sensitivity", "--"),
        ("specificity", "specificity", "--"),
    ):
        # the value at score u holds for thresholds just below u (down to the next score): steps-pre
        ax.plot(curves["threshold"], curves[column], style, lw=1.8, label=name, drawstyle="steps-pre")
    if metrics and metrics.get("threshold") is not None:
        rule = metrics.get("threshold_rule") or "given"
        ax.axvline(
            metrics["threshold"], color="crimson", lw=1.2, label=f"threshold {metrics['threshold']:.3f} ({rule})"
        )
    ax.set(
        xlabel="Decision threshold on P(pneumonia)",
        ylabel="Metric value",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=_title("Metrics vs decision threshold", metrics),
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_confusion(metrics: dict[str, Any]) -> Figure:
    """2x2 confusion matrix (counts and row percentages) at the operating threshold."""
    c = metrics["confusion"]
    matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    rows = matrix.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(matrix / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        share = count / rows[i, 0] if rows[i, 0] else 0.0
        ax.text(
            j,
            i,
            f"{count}\n({share:.1%})",
            ha="center",
            va="center",
            color="white" if share > 0.6 else "black",
            fontsize=12,
        )
    ax.set_xticks([0, 1], ["no pneumonia", "pneumonia"])
    ax.set_yticks([0, 1], ["no pneumonia", "pneumonia"])
    ax.set(
        xlabel="Predicted",
        ylabel="True label",
        title=_title(f"Confusion matrix at threshold {metrics['threshold']:.3f}", metrics),
    )
    return fig


def plot_calibration(y_true: Any, y_prob: Any, metrics: dict[str, Any] | None = None, n_bins: int = 10) -> Figure:
    """Reliability diagram (fraction positive vs mean predicted per bin) with ECE and a count histogram."""
    curve = reliability_curve(y_true, y_prob, n_bins).dropna()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ece = f"ECE = {metrics['ece']:.3f}" if metrics and metrics.get("ece") is not None else "model"
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot(curve["mean_predicted"], curve["fraction_positive"], "o-", lw=2, label=ece)
    ax.set(ylabel="Fraction of pneumonia in bin", ylim=(-0.02, 1.02), title=_title("Reliability diagram", metrics))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    width = curve["bin_high"] - curve["bin_low"]
    hist.bar(
        curve["bin_low"], curve["count"], width=width, align="edge", color="tab:blue", alpha=0.6, edgecolor="white"
    )
    hist.set(
        xlabel=f"Predicted P(pneumonia), {n_bins} equal-width bins", ylabel="Images (log)", xlim=(0, 1), yscale="log"
    )
    fig.tight_layout()
    return fig


def plot_subgroups(metrics: dict[str, Any]) -> Figure:
    """Bar chart of AUC, sensitivity and specificity per subgroup (sex, age band, view) with counts."""
    rows = [
        {"group": f"{column}={value}\n(n={stats['n']}, pos={stats['n_pos']})", **stats}
        for column, values in (metrics.get("subgroups") or {}).items()
        for value, stats in values.items()
    ]
    if not rows:
        fig, ax = plt.subplots(figsize=(5.5, 3))
        ax.text(0.5, 0.5, "No subgroup columns (sex, age, view) in this dataset.", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(_title("Subgroup performance", metrics))
        return fig
    table = pd.DataFrame(rows)
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.55 * len(table)))
    bars = (("auc", "AUC"), ("sensitivity", "sensitivity"), ("specificity", "specificity"))
    for k, (column, name) in enumerate(bars):
        values = pd.to_numeric(table[column], errors="coerce").fillna(0.0)
        ax.barh(y + (k - 1) * 0.27, values, height=0.27, label=name)
    ax.set_yticks(y, table["group"], fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel=f"Metric value (threshold {metrics['threshold']:.3f}; missing AUC drawn as 0)",
        xlim=(0, 1),
        title=_title("Subgroup performance", metrics),
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG at ``DPI`` and close it; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def save_evaluation_plots(metrics: dict[str, Any], frame: pd.DataFrame, plots_dir: str | os.PathLike) -> list[Path]:
    """Write the six evaluation figures (``PLOT_FILES``) for scored ``frame`` into ``plots_dir``."""
    labels, scores = validate_scores(frame["label"], frame["probability"])
    both = labels.min() != labels.max()
    makers: dict[str, tuple[str, Callable[[], Figure]]] = {
        "roc.png": ("ROC curve", lambda: plot_roc(labels, scores, metrics)),
        "pr.png": ("Precision-recall curve", lambda: plot_pr(labels, scores, metrics)),
        "threshold.png": ("Threshold curves", lambda: plot_threshold_curves(labels, scores, metrics)),
        "confusion.png": ("", lambda: plot_confusion(metrics)),
        "calibration.png": ("", lambda: plot_calibration(labels, scores, metrics)),
        "subgroups.png": ("", lambda: plot_subgroups(metrics)),
    }
    written = []
    for name in PLOT_FILES:
        needs_both, make = makers[name]
        fig = make() if both or not needs_both else _one_class_figure(needs_both, metrics)
        written.append(save_figure(fig, Path(plots_dir) / name))
    return written
