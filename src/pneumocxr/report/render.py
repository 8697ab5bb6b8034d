"""Report step: the FDA submission markdown (and PDF) generated from a run's artifacts only.

``write_report(run_dir, out, eda_dir=None, pdf=None)`` reads the run (``report.data``), copies and
draws its figures into ``<out stem>_files/`` (``report.figures``), fills the Jinja2 template
``templates/fda_submission.md.j2`` with numbers that each pass through a ``Ledger`` (``report.trace``)
so the appendix names their artifact and key, and optionally renders the PDF (``report.pdf``).
The same run gives the same markdown byte for byte: no clocks, sorted inputs, stable formatting.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from pneumocxr import __version__
from pneumocxr.atomic import atomic_write_text
from pneumocxr.backbones import backbone as backbone_row
from pneumocxr.report.data import (
    DESCRIPTIONS,
    PEDIATRIC_DATASETS,
    SOURCES,
    TITLES,
    Artifact,
    Evaluation,
    RunArtifacts,
    dataset_summary,
    evaluation_title,
    load_run_artifacts,
    manifest_rows,
    model_summary,
    try_summary,
)
from pneumocxr.report.escape import finalize, md_code, md_text
from pneumocxr.report.figures import EDA_FIGURES, prepare_figures
from pneumocxr.report.localisation import load_localisation, localisation_context
from pneumocxr.report.trace import NOT_AVAILABLE, Ledger, format_number
from pneumocxr.runs import read_json, write_json

log = logging.getLogger(__name__)

TEMPLATE = "fda_submission.md.j2"
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
AUGMENT_WORDS = ("augment", "flip", "rotation", "zoom", "translation", "contrast", "brightness", "shift", "shear")


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote."""

    markdown: Path
    figures_dir: Path
    pdf: Path | None


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


def training_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """Training parameters from config.toml and the epoch summary from history.csv."""
    c, train = art.config_raw, art.config_raw.data.get("train", {})
    ctx: dict[str, Any] = {
        "batch_size": ledger.take(c, "train.batch_size", "batch size", "count"),
        "learning_rate": ledger.take(c, "train.learning_rate", "initial learning rate", "num"),
        "optimizer": train.get("optimizer", "adam"),
    }
    augment_keys = [k for k in train if any(w in k for w in AUGMENT_WORDS) and k != "augment"]
    if train.get("augment", False):
        details = [f"{md_text(k)} {setting_text(c, f'train.{k}', ledger)}" for k in augment_keys]
        ctx["augmentation"] = Markup(
            "random changes of geometry and intensity as Keras preprocessing layers, applied to "
            "training images only (`pneumocxr.train.pipeline`)" + (": " + "; ".join(details) if details else ".")
        )
    else:
        ctx["augmentation"] = Markup("none (config `[train] augment = false`).")
    shown = {"batch_size", "learning_rate", "optimizer", "augment", *augment_keys}
    ctx["settings"] = [{"name": k, "value": setting_text(c, f"train.{k}", ledger)} for k in train if k not in shown]
    history = art.history
    ctx["n_epochs"] = ledger.take(history, "len()", "epochs logged (all stages)", "count") if history.data else None
    frame = pd.DataFrame(history.data)
    ctx["best_epoch"] = ctx["best_val_loss"] = ctx["best_stage"] = None
    if "val_loss" in frame and frame["val_loss"].notna().any():
        row = int(np.nanargmin(frame["val_loss"].to_numpy(dtype=float)))
        ctx["best_val_loss"] = ledger.take(history, f"[{row}].val_loss", "lowest validation loss", "rate")
        ctx["best_epoch"] = ledger.maybe(history, f"[{row}].epoch", "epoch of the lowest validation loss", "count")
        ctx["best_stage"] = frame["stage"].iloc[row] if "stage" in frame else None
    m = art.manifest
    ctx["stages"], ctx["kept_notes"] = [], []
    for i, stage in enumerate(m.data["stages"]):
        where = f"training stage {stage.get('stage', i)}"
        ctx["stages"].append(
            {
                "stage": stage["stage"],
                "trainable_from": stage["trainable_from"],
                "kept": "kept" if stage["kept"] else "not kept",
                **{
                    k: ledger.maybe(m, f"stages[{i}].{k}", f"{where}: {k.replace('_', ' ')}", "num") or NOT_AVAILABLE
                    for k in ("epochs", "steps_per_epoch", "seconds")
                },
            }
        )
        if not stage["kept"]:
            ctx["kept_notes"].append(
                Markup(
                    f"Stage {md_code(stage['stage'])} never improved {md_code(art.config.train.monitor)} "
                    "on the validation split over the stage before it, so the saved model keeps the earlier "
                    "stage's weights; the layer groups above count only what the saved model kept."
                )
            )
    ctx["wall_time"] = ledger.maybe(m, "wall_time_s", "training wall time (seconds)", "count")
    ctx["precision_policy"] = m.data.get("precision")
    return ctx


def setting_text(artifact: Artifact, key: str, ledger: Ledger) -> Markup:
    """A config value as Markdown: numbers through the ledger, booleans and strings as code spans."""
    from pneumocxr.report.trace import lookup

    value = lookup(artifact.data, key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return md_text(ledger.take(artifact, key, f"config {key}", "num"))
    if isinstance(value, list):
        return Markup(", ".join(setting_text(artifact, f"{key}[{i}]", ledger) for i in range(len(value))) or "none")
    if value == "":
        return Markup("(empty)")
    return md_code(str(value).lower() if isinstance(value, bool) else value)


def model_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """Backbone, input, and the frozen / fine-tuned / added layer groups with their parameter counts."""
    cfg, c, m = art.config.model, art.config_raw, art.model
    ctx: dict[str, Any] = {
        "backbone_title": backbone_row(cfg.backbone).title,
        "weights": Path(cfg.weights).name,
        "image_size": ledger.take(c, "data.image_size", "input image size (pixels)", "count"),
        "available": m is not None,
        "reason": "; ".join(art.notes) or "not present",
    }
    if m is None:
        stage1 = getattr(art.config.train, "stage1_trainable_from", cfg.trainable_from)
        stage2 = (
            f"; the fine-tune stage trains from {md_code(cfg.trainable_from)} on"
            if getattr(art.config.train, "finetune_epochs", 0)
            else ""
        )
        ctx.update(
            frozen_names=Markup(f"pre-trained layers before {md_code(stage1)}{stage2}"),
            fine_tuned_names=Markup(f"from {md_code(stage1)} on{stage2}"),
            frozen_params=NOT_AVAILABLE,
            fine_tuned_params=NOT_AVAILABLE,
            added_params=NOT_AVAILABLE,
            added_names=Markup(
                ", ".join(
                    [f"Dense {setting_text(c, f'model.head_units[{i}]', ledger)}" for i in range(len(cfg.head_units))]
                    + [f"Dropout {setting_text(c, 'model.dropout', ledger)}", "Dense (sigmoid)"]
                )
            ),
        )
        ctx.update(
            frozen_summary=ctx["frozen_names"],
            fine_tuned_summary=ctx["fine_tuned_names"],
            added_summary=ctx["added_names"],
        )
        return ctx
    ctx["input_shape"] = " x ".join(
        ledger.take(m, f"input_shape[{i}]", f"model input shape [{i}]", "count")
        for i in range(len(m.data["input_shape"]))
    )
    for name in ("n_layers", "total_params"):
        ctx[name] = ledger.take(m, name, f"model {name.replace('_', ' ')}", "count")
    for group in ("frozen", "fine_tuned"):
        names = [md_code(layer["name"]) for layer in m.data[group]]
        ctx[f"{group}_names"] = Markup(", ".join(names) or "none")
        if len(names) > 16:
            count = ledger.take(m, f"n_{group}", f"{group.replace('_', '-')} pre-trained layers with weights", "count")
            ctx[f"{group}_names"] = Markup(f"{count} layers: {', '.join(names[:3])} ... {', '.join(names[-3:])}")
        ctx[f"{group}_params"] = ledger.take(m, f"{group}_params", f"{group.replace('_', '-')} parameters", "count")
        ctx[f"{group}_summary"] = Markup(f"{ctx[f'{group}_names']} ({md_text(ctx[f'{group}_params'])} parameters)")
    added = []
    for i, layer in enumerate(m.data["added"]):
        where = f"added layer {layer['name']}"
        extra = [md_text(layer["type"])]
        if "units" in layer:
            extra.append("units " + ledger.take(m, f"added[{i}].units", f"{where}: units", "count"))
        if "rate" in layer:
            extra.append("rate " + ledger.take(m, f"added[{i}].rate", f"{where}: dropout rate", "num"))
        added.append(f"{md_code(layer['name'])} ({', '.join(extra)})")
    ctx["added_names"] = Markup(", ".join(added) or "none")
    ctx["added_params"] = ledger.take(m, "added_params", "parameters of the added layers", "count")
    ctx["added_summary"] = Markup(f"{ctx['added_names']} ({md_text(ctx['added_params'])} parameters)")
    return ctx


def train_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """Which data the model was really trained on, and the population that implies."""
    dataset = art.config.data.dataset
    pediatric = dataset in PEDIATRIC_DATASETS
    ctx = {
        "dataset": dataset,
        "title": TITLES.get(dataset, dataset),
        "description": DESCRIPTIONS.get(dataset, ""),
        "source": SOURCES.get(dataset, "unknown source"),
        "pediatric": pediatric,
        "nih_labels": dataset == "nih",
        "population": "pediatric patients" if pediatric else "adult patients",
        "age_low": None,
        "age_high": None,
    }
    if pediatric:
        ctx["age_low"] = ledger.published(
            "kermany2018.age_min_years", "youngest age in the Kermany cohort (years)", "count"
        )
        ctx["age_high"] = ledger.published(
            "kermany2018.age_max_years", "oldest age in the Kermany cohort (years)", "count"
        )
    return ctx


DICOM_LIMITS = (
    ("max_pixels", "largest Rows x Columns accepted (pixels)", "count"),
    ("max_decoded_bytes", "largest decoded pixel data accepted (bytes)", "count"),
    ("max_inflated_bytes", "largest inflated Deflated dataset accepted (bytes)", "count"),
    ("max_aspect_ratio", "largest aspect ratio accepted (longer / shorter side)", "num"),
    ("min_dynamic_range", "smallest 1st-99th percentile spread of the rendered image", "num"),
    ("max_saturated_fraction", "largest share of rendered pixels at 0 or 1", "num"),
)


def gate_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """What the DICOM gate accepts, from the run's ``[gate]`` table."""
    gate, c = art.config.gate, art.config_raw
    ctx = {
        "modalities": list(gate.modalities),
        "body_parts": list(gate.body_parts),
        "views": list(gate.views),
        "min_size": ledger.take(c, "gate.min_size", "smallest accepted Rows/Columns (pixels)", "count"),
        "age_low": None,
        "age_high": None,
        "age_warns": gate.age_action == "warn",
    }
    if gate.age_range is not None:
        ctx["age_low"] = ledger.take(c, "gate.age_range[0]", "youngest accepted PatientAge (years)", "num")
        ctx["age_high"] = ledger.take(c, "gate.age_range[1]", "oldest accepted PatientAge (years)", "num")
    ctx["body_part_synonyms"] = list(gate.body_part_synonyms)
    ctx["age_missing_rejects"] = gate.age_missing_action == "reject"
    for key, quantity, kind in DICOM_LIMITS:  # runs saved before these keys existed used the defaults
        ctx[key] = ledger.maybe(c, f"gate.{key}", quantity, kind) or format_number(getattr(gate, key), kind)
    return ctx


def counts_rows(artifact: Artifact, keys: tuple[str, ...], what: str, ledger: Ledger) -> list[dict[str, str]]:
    """``{name, text}`` per count table present in ``artifact`` (sex, view, ...): ``"F 44, M 41"``."""
    rows = []
    for key in keys:
        table = artifact.data.get(key)
        if isinstance(table, dict) and table:
            items = [
                f"{label} {ledger.take(artifact, f'{key}.{label}', f'{what}: {key} {label} images', 'count')}"
                for label in sorted(table)
                if isinstance(table[label], (int, float))
            ]
            rows.append({"name": key, "text": ", ".join(items)})
    return rows


def data_context(art: RunArtifacts, ledger: Ledger) -> dict[str, Any]:
    """Counts of the data the run was trained and validated on (``dataset_summary.json``)."""
    d, c = art.dataset, art.config_raw
    if d is None:
        return {"available": False, "reason": "; ".join(art.notes), "age_median": None}
    what = f"{TITLES.get(d.data['dataset'], d.data['dataset'])} as used by the run"
    ctx: dict[str, Any] = {
        "available": True,
        "n_images": ledger.take(d, "n_images", f"{what}: images", "count"),
        "n_patients": ledger.take(d, "n_patients", f"{what}: patients", "count"),
        "n_pneumonia": ledger.take(d, "n_pneumonia_images", f"{what}: pneumonia images", "count"),
        "prevalence": ledger.take(d, "pneumonia_prevalence", f"{what}: pneumonia prevalence"),
        "limit": ledger.maybe(c, "data.limit_per_split", "images per split at most", "count"),
        "val_fraction": ledger.take(c, "data.val_fraction", "validation share of patients", "num"),
        "seed": ledger.take(c, "data.seed", "split seed", "num"),
    }
    run_hash = art.manifest.data.get("data_list_sha256")
    ctx["hash_matches"] = run_hash == d.data.get("data_list_sha256") if run_hash else None
    order = {"train": 0, "val": 1, "official_val": 2, "test": 3}
    ctx["splits"] = [
        {
            "name": name,
            **{
                k: ledger.take(d, f"split.{name}.{k}", f"{what}, {name} split: {k}", "count")
                for k in ("n_images", "n_patients", "n_pneumonia")
            },
        }
        for name in sorted(d.data["split"], key=lambda s: (order.get(s, 9), s))
    ]
    ctx["demographics"] = counts_rows(d, ("sex", "view", "pathogen"), what, ledger)
    ctx["age_median"] = ledger.maybe(d, "age.median", f"{what}: median age (years)", "num")
    ctx["age_q1"] = ledger.maybe(d, "age.q1", f"{what}: age, first quartile (years)", "num")
    ctx["age_q3"] = ledger.maybe(d, "age.q3", f"{what}: age, third quartile (years)", "num")
    return ctx


def eda_context(art: RunArtifacts, figures: dict[str, str], ledger: Ledger) -> dict[str, Any] | None:
    """The NIH population numbers of ``eda.json`` that the report quotes (missing keys are left out)."""
    e = art.eda
    if e is None:
        return None
    what = "NIH ChestX-ray14 (EDA)"
    ctx: dict[str, Any] = {
        k: ledger.maybe(e, k, f"{what}: {k.replace('_', ' ')}", "count") or NOT_AVAILABLE
        for k in ("n_images", "n_patients", "n_pneumonia_images", "n_pneumonia_patients")
    }
    per_image = (
        "pneumonia_prevalence.per_image"
        if isinstance(e.data.get("pneumonia_prevalence"), dict)
        else "pneumonia_prevalence"
    )
    ctx["prevalence"] = ledger.maybe(e, per_image, f"{what}: pneumonia prevalence per image")
    ctx["prevalence_patient"] = ledger.maybe(
        e, "pneumonia_prevalence.per_patient", f"{what}: pneumonia prevalence per patient"
    )
    ctx["age_median"] = ledger.maybe(e, "age.median", f"{what}: median age (years)", "num")
    ctx["age_q1"] = ledger.maybe(e, "age.q1", f"{what}: age, first quartile (years)", "num") or ledger.maybe(
        e, "age.iqr[0]", f"{what}: age, first quartile (years)", "num"
    )
    ctx["age_q3"] = ledger.maybe(e, "age.q3", f"{what}: age, third quartile (years)", "num") or ledger.maybe(
        e, "age.iqr[1]", f"{what}: age, third quartile (years)", "num"
    )
    ctx["age_cleaned"] = ledger.maybe(e, "age.n_cleaned", f"{what}: impossible ages removed", "count") or NOT_AVAILABLE
    ctx["demographics"] = counts_rows(e, ("sex", "view"), what, ledger)
    comorbid = e.data.get("comorbidity_with_pneumonia") or {}
    top = sorted((-v, k) for k, v in comorbid.items() if isinstance(v, (int, float)) and v > 0)[:5]
    ctx["comorbidity"] = [
        {
            "finding": k,
            "count": ledger.take(
                e, f"comorbidity_with_pneumonia.{k}", f"{what}: pneumonia images also labelled {k}", "count"
            ),
        }
        for _, k in top
    ]
    ctx["splits"] = [
        {
            "name": name,
            **{
                k: ledger.maybe(e, f"split.{name}.{k}", f"{what}, official {name}: {k}", "count") or NOT_AVAILABLE
                for k in ("n_images", "n_patients", "n_pneumonia")
            },
        }
        for name in sorted(e.data.get("split") or {})
    ]
    ctx["figures"] = [
        {"title": name.replace("_", " ").capitalize() + " (NIH EDA)", "path": figures[f"eda-{name}.png"]}
        for name in EDA_FIGURES
        if f"eda-{name}.png" in figures
    ]
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


def render_markdown(
    art: RunArtifacts, figures: dict[str, str], files_dir: str, author: str, device: str, node: dict | None = None
) -> str:
    """The filled template: every number through one ledger, the ledger as Appendix A."""
    ledger = Ledger()
    figures = {name: Markup(quote(str(path))) for name, path in figures.items()}  # the report's own figure links
    train = train_context(art, ledger)
    contexts = [evaluation_context(e, art.config.data.dataset, figures, ledger) for e in art.evaluations]
    context = {
        "author": author,
        "device": device,
        "node": node,
        "run_id": art.manifest.data.get("run_id", art.run_dir.name),
        "config_name": art.config.name,
        "generator_version": __version__,
        "files_dir": files_dir,
        "train": train,
        "gate": gate_context(art, ledger),
        "val": contexts[0],
        "evaluations": contexts,
        "external": bool(art.external),
        "external_list": [c for c in contexts if c["role"] == "external test"],
        "literature": {
            "label_accuracy": ledger.published("wang2017.label_accuracy", "NIH label accuracy as documented", "pct")
            if train["nih_labels"]
            else None
        },
    }
    context["threshold"] = threshold_context(art, ledger)
    context["shift"] = shift_context(art.evaluations[0], ledger)
    context["model"] = model_context(art, ledger)
    context["training"] = training_context(art, ledger)
    context["data"] = data_context(art, ledger)
    context["eda"] = eda_context(art, figures, ledger)
    context["standard"] = standard_context(art.evaluations, contexts, ledger)
    context["localisation"] = localisation_context(load_localisation(art.run_dir), ledger)
    context["ece_text"] = "; ".join(f"{c['title']} {c['ece']}" for c in contexts)
    context.update(
        figures={
            "flowchart": figures["flowchart.png"],
            "history": figures.get("history.png"),
            "pr": figures.get("pr.png"),
            "threshold": figures.get("threshold.png"),
        },
        manifest=manifest_rows(art.manifest),
        notes=art.notes,
        traces=ledger.rows,
    )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pneumocxr.report", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=finalize,
    )
    env.filters["code"] = md_code
    text = env.get_template(TEMPLATE).render(**context)
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text


def write_report(
    run_dir: str | Path,
    out: str | Path,
    eda_dir: str | Path | None = None,
    pdf: str | Path | None = None,
    author: str = "pneumocxr project",
    device: str = "PneumoCXR",
    serve_config: str | Path | None = None,
) -> ReportFiles:
    """Write the submission markdown, its figure folder and (when ``pdf`` is given) the PDF; return the paths.

    With ``serve_config`` (a serve.toml) the flowchart and device description show the DICOM node.
    """
    art = load_run_artifacts(run_dir, eda_dir)
    out = Path(out)
    files_dir = out.parent / f"{out.stem}_files"
    files_dir.mkdir(parents=True, exist_ok=True)
    for name, make in (
        ("dataset_summary.json", lambda: dataset_summary(art.config)),
        ("model_summary.json", lambda: model_summary(art.run_dir, art.config, art.manifest.data["stages"])),
    ):
        what = "counts of the configured data" if name.startswith("dataset") else "model.keras"
        summary = try_summary(what, make, art.notes)
        if summary is not None:
            path = write_json(files_dir / name, summary)
            artifact = Artifact(f"report:{files_dir.name}/{name}", read_json(path))
            setattr(art, "dataset" if name.startswith("dataset") else "model", artifact)
    art.notes = [note.replace(f"{art.run_dir}/", "run:") for note in art.notes]
    node = None
    if serve_config is not None:
        from pneumocxr.serve.config import load_serve_config

        node = load_serve_config(serve_config).summary()
    figures = prepare_figures(art, files_dir, Path(eda_dir) if eda_dir else None, node)
    atomic_write_text(out, render_markdown(art, figures, files_dir.name, author, device, node))
    log.info("report: wrote %s and %d figures in %s", out, len(figures), files_dir)
    pdf_path = None
    if pdf is not None:
        from pneumocxr.report.pdf import write_pdf

        pdf_path = write_pdf(out, pdf, files_dir)
    return ReportFiles(out, files_dir, pdf_path)
