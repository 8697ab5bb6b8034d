"""Experiments step: train several configs and compare them in one table (``sweep.csv`` + ``sweep.md``).

Input is a list of run configs, or one sweep TOML::

    base = "kermany-cpu.toml"          # relative to the sweep file
    title = "..."                      # optional
    description = "..."                # optional paragraph printed under the title
    evaluate_splits = ["official_val"] # extra splits scored for every row (besides validation)
    [defaults.train]                   # optional tables merged over the base for every variant
    epochs = 2
    [[variant]]
    name = "vgg16-frozen"
    reference = true                   # the row the others are compared with (default: the first)
    run_dir = "runs/kermany-cpu"       # optional: reuse this finished run instead of training
    note = "free text kept in the table"
    [variant.model]                    # tables merged over the base config
    trainable_from = "none"

Each variant trains into ``OUT/NAME`` (a finished run there is reused, an unfinished one resumed), so
an interrupted sweep continues where it stopped. Every row gets a generated sentence saying what its
change from the reference did to validation AUC, accuracy and training time.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pneumocxr import runs
from pneumocxr.config import Config, config_from_dict, config_to_dict, load_config

log = logging.getLogger(__name__)

IGNORED_KEYS = ("name", "train.cache_dir")


@dataclass
class SweepEntry:
    """One row: a config to train (or a finished run to read)."""

    name: str
    config: Config
    note: str = ""
    run_dir: str | None = None
    reference: bool = False


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s tables merged in recursively (override wins)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def is_sweep_file(path: str | os.PathLike) -> bool:
    """True for a sweep TOML (has ``[[variant]]`` tables) rather than a run config."""
    return "variant" in tomllib.loads(Path(path).read_text())


def load_sweep(paths: Sequence[str | os.PathLike]) -> tuple[list[SweepEntry], dict[str, Any]]:
    """The entries of a sweep and its settings (``title``, ``evaluate_splits``)."""
    if len(paths) == 1 and is_sweep_file(paths[0]):
        path = Path(paths[0])
        raw = tomllib.loads(path.read_text())
        base = config_to_dict(load_config(path.parent / raw["base"])) if "base" in raw else {}
        base = deep_merge(base, raw.get("defaults", {}))
        entries = []
        for variant in raw["variant"]:
            meta = {k: variant.get(k) for k in ("name", "note", "run_dir", "reference")}
            if not meta["name"]:
                raise ValueError(f"{path}: every [[variant]] needs a name")
            tables = {k: v for k, v in variant.items() if k not in meta}
            config = config_from_dict(
                {**deep_merge(base, tables), "name": meta["name"]}, f"{path} variant {meta['name']}"
            )
            entries.append(
                SweepEntry(meta["name"], config, meta["note"] or "", meta["run_dir"], bool(meta["reference"]))
            )
        settings = {
            "title": raw.get("title", path.stem),
            "description": raw.get("description", ""),
            "evaluate_splits": raw.get("evaluate_splits", []),
        }
    else:
        entries = [SweepEntry(load_config(p).name, load_config(p)) for p in paths]
        settings = {"title": "sweep", "description": "", "evaluate_splits": []}
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep variant names must be unique: {names}")
    return entries, settings


def train_entry(entry: SweepEntry, out: Path, root: str | os.PathLike | None = None) -> Path:
    """The entry's finished run directory: reused when finished, resumed when interrupted, else trained."""
    import keras

    from pneumocxr.train.run import train_run

    run_dir = Path(entry.run_dir) if entry.run_dir else out / entry.name
    if (run_dir / "manifest.json").is_file():
        log.info("sweep: reusing finished run %s", run_dir)
        return run_dir
    if entry.run_dir:
        raise runs.RunError(f"{run_dir}: variant {entry.name} names this run, but it has not finished")
    keras.backend.clear_session()
    resume = bool(runs.load_state(run_dir).done) or (run_dir / "config.toml").is_file()
    return train_run(entry.config, run_dir, resume=resume, root=root)


def flat_config(config: Config) -> dict[str, Any]:
    """``{"table.key": value}`` of a config, without the keys a comparison ignores."""
    flat = {}
    for table, values in config_to_dict(config).items():
        if isinstance(values, dict):
            flat.update({f"{table}.{k}": v for k, v in values.items()})
    return {k: v for k, v in flat.items() if k not in IGNORED_KEYS}


def config_change(reference: Config, config: Config) -> str:
    """The settings that differ from the reference, e.g. ``train.learning_rate 0.0002 -> 0.001``."""
    ref, new = flat_config(reference), flat_config(config)
    diffs = [
        f"{k} {ref.get(k)} -> {new.get(k)}"
        for k in sorted(set(ref) | set(new))
        if ref.get(k) != new.get(k) and not k.startswith("gate.")
    ]
    return "; ".join(diffs) if diffs else "reference"


def sweep_row(entry: SweepEntry, run_dir: Path, evaluate_splits: Sequence[str], root=None) -> dict[str, Any]:
    """Validation metrics, extra-split metrics and training time of one finished run."""
    from pneumocxr.train.score import evaluate_run

    metrics = runs.load_metrics(run_dir / "metrics.json").model_dump()
    manifest = runs.load_manifest(run_dir)
    row = {
        "name": entry.name,
        "run_dir": str(run_dir),
        "note": entry.note,
        "val_auc": metrics["auc"],
        "val_auc_ci95": metrics["auc_ci95"],
        "threshold": metrics["threshold"],
        "val_accuracy": metrics["accuracy"],
        "val_sensitivity": metrics["sensitivity"],
        "val_specificity": metrics["specificity"],
        "val_ece": metrics["ece"],
        "train_minutes": round((manifest.wall_time_s or float("nan")) / 60, 1),
    }
    config = runs.load_run_config(run_dir)
    shifted = metrics.get("shift_validation") or _shift_validation(run_dir, config, root)
    pooled = shifted["pooled"]
    row.update(
        {
            "shift_auc": pooled["auc"],
            "shift_auc_ci95": pooled["auc_ci95"],
            "shift_accuracy": pooled["accuracy"],
            "shift_sensitivity": pooled["sensitivity"],
            "shift_specificity": pooled["specificity"],
            "shift_worst_balanced_accuracy": shifted["balanced_accuracy_worst"],
        }
    )
    for split in evaluate_splits:
        path = run_dir / "eval" / f"{config.data.dataset}-{split}" / "metrics.json"
        extra = (
            runs.load_metrics(path).model_dump()
            if path.is_file()
            else evaluate_run(run_dir, config.data.dataset, split, root, n_boot=200)
        )
        row.update({f"{split}_n": extra["n"], f"{split}_auc": extra["auc"], f"{split}_accuracy": extra["accuracy"]})
    return row


def _shift_validation(run_dir: Path, config: Config, root=None) -> dict[str, Any]:
    """The run's shift-validation record; runs trained without one are scored on 2 shifted copies."""
    from pneumocxr.train.score import evaluate_dir, evaluate_run

    path = evaluate_dir(run_dir, config.data.dataset, "val", 2) / "metrics.json"
    metrics = (
        runs.load_metrics(path).model_dump()
        if path.is_file()
        else evaluate_run(run_dir, config.data.dataset, "val", root, n_boot=200, shift_copies=2)
    )
    return metrics["shift_validation"]


def outcome_sentence(row: dict[str, Any], reference: dict[str, Any]) -> str:
    """One sentence: what the row's change did to shift-validation AUC (the selection criterion),
    plain validation AUC, accuracy at its threshold and time, against the reference."""
    if row["name"] == reference["name"]:
        return (
            f"Reference: shift-validation AUC {row['shift_auc']:.3f}, validation AUC {row['val_auc']:.3f}, "
            f"accuracy {row['val_accuracy']:.3f} at its threshold {row['threshold']:.2f}, "
            f"{row['train_minutes']:.0f} min of training."
        )
    d_shift, d_auc = row["shift_auc"] - reference["shift_auc"], row["val_auc"] - reference["val_auc"]
    d_acc = row["val_accuracy"] - reference["val_accuracy"]
    if row["val_auc"] <= 0.55:
        verdict = "Training collapsed (a constant output)"
    else:
        verdict = "Helped" if d_shift > 0.002 else "Hurt" if d_shift < -0.002 else "No clear difference"
    return (
        f"{verdict}: shift-validation AUC {reference['shift_auc']:.3f} -> {row['shift_auc']:.3f} ({d_shift:+.3f}), "
        f"validation AUC {reference['val_auc']:.3f} -> {row['val_auc']:.3f} ({d_auc:+.3f}), accuracy at its "
        f"threshold {reference['val_accuracy']:.3f} -> {row['val_accuracy']:.3f} ({d_acc:+.3f}), training "
        f"{reference['train_minutes']:.0f} -> {row['train_minutes']:.0f} min."
    )


def _cell(value: Any) -> str:
    """A table cell: floats to 3 decimals, CI pairs as [low, high]."""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return str(value)


def sweep_markdown(table: pd.DataFrame, title: str, description: str = "") -> str:
    """The comparison table and the per-row sentences as markdown."""
    columns = ["name", *[c for c in table.columns if c not in ("name", "run_dir", "note", "change", "sentence")]]
    lines = [f"# {title}", "", *([description.strip(), ""] if description.strip() else [])]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for _, row in table.iterrows()]
    lines += ["", "## What each change did", ""]
    lines += [
        f"- **{row['name']}** ({row['change']}). {row['sentence']}" + (f" {row['note']}" if row["note"] else "")
        for _, row in table.iterrows()
    ]
    return "\n".join(lines) + "\n"


def run_sweep(paths: Sequence[str | os.PathLike], out: str | os.PathLike, root=None) -> pd.DataFrame:
    """Train every entry, then write ``OUT/sweep.csv`` and ``OUT/sweep.md``; the markdown is in ``attrs``."""
    entries, settings = load_sweep(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry in entries:
        run_dir = train_entry(entry, out, root)
        rows.append(sweep_row(entry, run_dir, settings["evaluate_splits"], root))
    reference_index = next((i for i, e in enumerate(entries) if e.reference), 0)
    reference = rows[reference_index]
    reference_config = runs.load_run_config(reference["run_dir"])
    for row in rows:
        row["change"] = config_change(reference_config, runs.load_run_config(row["run_dir"]))
        row["sentence"] = outcome_sentence(row, reference)
    table = pd.DataFrame(rows)
    table.to_csv(out / "sweep.csv", index=False)
    markdown = sweep_markdown(table, settings["title"], settings["description"])
    (out / "sweep.md").write_text(markdown)
    table.attrs["markdown"] = markdown
    return table
