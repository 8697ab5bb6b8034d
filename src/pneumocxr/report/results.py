"""Report step, results sections: the template context of every scored split, the threshold and the standard.

Each function returns plain dicts of pre-formatted strings for ``templates/fda_submission.md.j2``;
every number passes through the ``Ledger`` (``trace``) so Appendix A names its artifact and key.
"""

from __future__ import annotations

import string
from typing import Any

from markupsafe import Markup

from pneumocxr.report.data import (
    SOURCES,
    Evaluation,
    RunArtifacts,
    evaluation_title,
)
from pneumocxr.report.escape import md_text
from pneumocxr.report.trace import NOT_AVAILABLE, Ledger

RULES = {
    "max_f1": "the threshold that maximises F1 on the validation split, balancing missed pneumonias against false alarms.",
    "sensitivity_target": "the most specific threshold whose validation sensitivity still meets the target {target}.",
    "youden": "the threshold that maximises Youden's J (sensitivity + specificity - 1) on the validation split.",
    "youden_midpoint": "the midpoint of the widest interval of thresholds ({low} to {high}) whose balanced accuracy is "
    "within {tolerance} of the best on the validation split. A validation split from the training "
    "source separates the classes more easily than new data; the midpoint of the gap, rather "
    "than the lowest pneumonia score, leaves the most room for the shift of scores on new images.",
    "worst_group_midpoint": "for every threshold, the balanced accuracy of each validation condition (the plain "
    "validation images, each acquisition shift, and every extra split such as Kermany's "
    "original-resolution official validation films) was computed and the worst kept; the "
    "threshold is the midpoint of the widest interval ({low} to {high}) whose worst-condition "
    "balanced accuracy is within {tolerance} of the best. It is the operating point that "
    "degrades least across acquisitions, not the best one on the familiar rendering.",
}


CALIBRATIONS = {
    "platt": "Platt scaling (Platt 1999): the output is sigmoid(a z + b) of the trained model's logit z, with a = {a} "
    "and b = {b} fitted by logistic regression on the validation images; folded into the model's output "
    "layer, so every probability shown is calibrated. It leaves the ranking (AUC) unchanged.",
    "temperature": "temperature scaling (Guo et al. 2017): the output is sigmoid(a z) of the trained model's logit z, "
    "a = 1/T = {a}, fitted on the validation images; folded into the model's output layer. It leaves "
    "the ranking (AUC) unchanged.",
}


RATES = {
    "auc": "AUC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "precision": "precision (PPV)",
    "npv": "NPV",
    "f1": "F1",
    "accuracy": "accuracy",
}


def evaluation_context(e: Evaluation, train_dataset: str, figures: dict[str, str], ledger: Ledger) -> dict[str, Any]:
    """Numbers, figures and subgroup rows of one evaluation, every number recorded in ``ledger``."""
    a, title = e.artifact, evaluation_title(e.dataset, e.split)
    q = f"{title}: "
    ctx: dict[str, Any] = {"title": title, "role": e.role, "dataset": e.dataset, "split": e.split}
    ctx["n"] = ledger.take(a, "n", q + "images", "count")
    ctx["n_patients"] = ledger.maybe(a, "n_patients", q + "patients", "count") or NOT_AVAILABLE
    ctx["n_pos"] = ledger.maybe(a, "n_pos", q + "pneumonia images", "count") or NOT_AVAILABLE
    ctx["prevalence"] = ledger.maybe(a, "prevalence", q + "pneumonia prevalence") or NOT_AVAILABLE
    for name, label in RATES.items():
        ctx[name] = ledger.interval(a, name, q + label)
    ctx["average_precision"] = ledger.maybe(a, "average_precision", q + "average precision") or NOT_AVAILABLE
    ctx["ece"] = ledger.maybe(a, "ece", q + "expected calibration error") or NOT_AVAILABLE
    ctx["confusion"] = {
        k: ledger.maybe(a, f"confusion.{k}", f"{q}{k.upper()} at the threshold", "count") or NOT_AVAILABLE
        for k in ("tp", "fp", "tn", "fn")
    }
    ctx["figures"] = {
        name: figures.get(f"{e.plots_prefix}{name}.png")
        for name in ("roc", "pr", "threshold", "confusion", "calibration", "subgroups")
    }
    ctx["subgroups"], ctx["drops"] = subgroup_context(e, q, ledger)
    images = [
        f"![{alt}, {md_text(title)}]({ctx['figures'][name]})"
        for name, alt in (("roc", "ROC curve"), ("confusion", "Confusion matrix"))
        if ctx["figures"][name]
    ]
    ctx["images_md"] = Markup(" ".join(images))
    note = ""
    if e.dataset != train_dataset and e.role != "external test":
        note = (
            f" Its images come from the same institution as the training data ({SOURCES.get(e.dataset, e.dataset)}), "
            "possibly from the same patients: not an external test."
        )
    ctx["note"] = note
    return ctx


def shift_context(e: Evaluation, ledger: Ledger) -> dict[str, Any] | None:
    """The shift validation of the validation metrics (``shift_validation``), pooled and per condition
    beside the plain images, every number traced; None when the run has none."""
    shifted = e.artifact.data.get("shift_validation")
    if not shifted:
        return None
    q, key = "shift validation", "shift_validation"
    pooled = {
        name: ledger.interval(e.artifact, f"{key}.pooled.{name}", f"{q} pooled: {label}")
        for name, label in (
            ("auc", "AUC"),
            ("accuracy", "accuracy"),
            ("sensitivity", "sensitivity"),
            ("specificity", "specificity"),
        )
    }
    pooled["n"] = ledger.take(e.artifact, f"{key}.pooled.n", f"{q} pooled: images", "count")
    rows = []
    for i, row in enumerate(shifted["conditions"]):
        where = f"{key}.conditions[{i}]"
        rows.append(
            {
                "condition": row["condition"],
                "n": ledger.take(e.artifact, f"{where}.n", f"{q} {row['condition']}: images", "count"),
                **{
                    m: ledger.maybe(e.artifact, f"{where}.{m}", f"{q} {row['condition']}: {m.replace('_', ' ')}")
                    or NOT_AVAILABLE
                    for m in ("auc", "sensitivity", "specificity", "balanced_accuracy")
                },
            }
        )
    shifts = [
        {
            "name": name,
            "meaning": spec["meaning"],
            "strengths": " / ".join(
                ledger.take(e.artifact, f"{key}.shifts.{name}.strengths[{i}]", f"{q}: {name} {level} strength", "num")
                for i, level in enumerate(("mild", "strong"))
            ),
        }
        for name, spec in shifted["shifts"].items()
    ]
    return {
        "copies": shifted["copies"],
        "pooled": pooled,
        "rows": rows,
        "shifts": shifts,
        "worst": ledger.take(e.artifact, f"{key}.balanced_accuracy_worst", f"{q}: worst balanced accuracy"),
    }


def subgroup_context(e: Evaluation, q: str, ledger: Ledger) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Subgroup table rows and, per attribute, the group with the lowest sensitivity and AUC."""
    rows, drops = [], []
    subgroups = e.metrics.get("subgroups") or {}
    for attribute in sorted(subgroups):
        groups = subgroups[attribute] or {}
        for group in sorted(groups):
            key, where = f"subgroups.{attribute}.{group}", f"{q}{attribute} = {group}: "
            rows.append(
                {
                    "attribute": attribute,
                    "group": group,
                    **{
                        name: ledger.maybe(e.artifact, f"{key}.{name}", where + name, kind) or NOT_AVAILABLE
                        for name, kind in (
                            ("n", "count"),
                            ("n_pos", "count"),
                            ("prevalence", "rate"),
                            ("auc", "rate"),
                            ("sensitivity", "rate"),
                            ("specificity", "rate"),
                        )
                    },
                }
            )
        for metric in ("sensitivity", "auc"):
            scored = [(groups[g][metric], g) for g in sorted(groups) if groups[g].get(metric) is not None]
            if len(scored) < 2 or e.metrics.get(metric) is None:
                continue
            _, group = min(scored)
            key = f"subgroups.{attribute}.{group}"
            drops.append(
                {
                    "metric": "AUC" if metric == "auc" else metric,
                    "attribute": attribute,
                    "group": group,
                    "value": ledger.take(e.artifact, f"{key}.{metric}", f"{q}{attribute} = {group}: {metric}"),
                    "n_pos": ledger.take(e.artifact, f"{key}.n_pos", f"{q}{attribute} = {group}: n_pos", "count"),
                    "overall": ledger.take(e.artifact, metric, q + metric),
                }
            )
    return rows, drops


def threshold_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """The operating point, its rule and the rule explained with its own parameters."""
    t = art.threshold
    rule = t.data.get("rule", "unknown")
    ctx = {"value": ledger.take(t, "threshold", "decision threshold", "thr"), "rule": rule}
    explanation = RULES.get(rule, f"the rule '{rule}' on the validation split.")
    params = {
        name: ledger.maybe(t, name, f"threshold rule parameter {name}", "thr" if name in ("low", "high") else "num")
        for _, name, _, _ in string.Formatter().parse(explanation)
        if name
    }
    ctx["explanation"] = explanation.format(**{k: v or NOT_AVAILABLE for k, v in params.items()})
    for name, kind in (("n", "count"), ("n_pos", "count"), ("sensitivity", "rate"), ("specificity", "rate")):
        ctx[name] = ledger.maybe(t, name, f"validation {name} at the threshold", kind) or NOT_AVAILABLE
    ctx["validation"] = t.data.get("validation") or "plain"
    calibration = t.data.get("calibration") or {}
    ctx["calibration"] = None
    if calibration.get("method") in CALIBRATIONS:
        a = ledger.take(t, "calibration.a", "calibration scale a", "num")
        b = ledger.take(t, "calibration.b", "calibration offset b", "num")
        ctx["calibration"] = CALIBRATIONS[calibration["method"]].format(a=a, b=b)
    return ctx


def standard_context(evaluations: list[Evaluation], contexts: list[dict[str, Any]], ledger: Ledger) -> dict[str, Any]:
    """The pre-specified performance goals and whether each evaluation of this run meets them."""
    from pneumocxr.report.trace import PUBLISHED, lookup

    ctx: dict[str, Any] = {
        "radiologist_f1": ledger.published(
            "rajpurkar2017.radiologist_f1", "CheXNet study: mean radiologist F1 (pneumonia)"
        ),
        "chexnet_f1": ledger.published("rajpurkar2017.chexnet_f1", "CheXNet study: CheXNet F1 (pneumonia)"),
        "chexnet_auc": ledger.published("rajpurkar2017.chexnet_auc", "CheXNet study: CheXNet AUC (pneumonia)"),
    }
    goals = {
        "f1": lookup(PUBLISHED.data, "rajpurkar2017.radiologist_f1"),
        "auc": lookup(PUBLISHED.data, "rajpurkar2017.chexnet_auc"),
    }

    def verdict(metrics: dict[str, Any], name: str) -> str:
        low = (metrics.get(f"{name}_ci95") or [None])[0]
        if low is None:
            return "not assessable"
        return "yes" if (low > goals[name] if name == "f1" else low >= goals[name]) else "no"

    ctx["verdicts"] = [
        {
            "title": c["title"],
            "role": c["role"],
            "f1": c["f1"],
            "auc": c["auc"],
            "f1_met": verdict(e.metrics, "f1"),
            "auc_met": verdict(e.metrics, "auc"),
        }
        for e, c in zip(evaluations, contexts)
    ]
    return ctx
