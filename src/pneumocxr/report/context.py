"""Report step, device sections: the template context of the training, model, DICOM gate, data and EDA.

Each function returns plain dicts of pre-formatted strings for ``templates/fda_submission.md.j2``;
every number passes through the ``Ledger`` (``trace``) so Appendix A names its artifact and key.
Run strings reach the markdown only through ``escape``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from pneumocxr.backbones import backbone as backbone_row
from pneumocxr.report.data import (
    DESCRIPTIONS,
    PEDIATRIC_DATASETS,
    SOURCES,
    TITLES,
    Artifact,
    RunArtifacts,
)
from pneumocxr.report.escape import md_code, md_text
from pneumocxr.report.figures import EDA_FIGURES
from pneumocxr.report.trace import NOT_AVAILABLE, Ledger, format_number

AUGMENT_WORDS = ("augment", "flip", "rotation", "zoom", "translation", "contrast", "brightness", "shift", "shear")


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
            "training images only (`pneumocxr.train.augment`)" + (": " + "; ".join(details) if details else ".")
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


def _model_from_config(art: RunArtifacts, ledger: Ledger, ctx: dict[str, Any]) -> dict[str, Any]:
    """``model_context`` without ``model.keras``: the layer groups as the config describes them, no counts."""
    cfg, c = art.config.model, art.config_raw
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
        return _model_from_config(art, ledger, ctx)
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
