"""Report step (inputs): read a run's artifacts, summarise its data and model, and place its evaluations.

``load_run_artifacts`` reads everything the report shows from the run directory (config.toml,
threshold.json, history.csv, metrics.json, eval/*/metrics.json, manifest.json) and the optional EDA
folder (eda.json). ``dataset_summary`` counts the configured data through ``pneumocxr.datasets`` and
``model_summary`` describes ``model.keras``; the report writes both as JSON beside the markdown so
every number it shows has a file and a key.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pneumocxr import runs
from pneumocxr.config import Config
from pneumocxr.datasets.registry import DATASETS
from pneumocxr.provenance import data_list_hash
from pneumocxr.runs import RunError, load_run_config, read_json

log = logging.getLogger(__name__)

# Views of the one dataset table (pneumocxr.datasets.registry): evaluations on the training source are internal.
SOURCES = {name: row.source for name, row in DATASETS.items()}
PEDIATRIC_DATASETS = tuple(name for name, row in DATASETS.items() if row.pediatric)
TITLES = {name: row.title for name, row in DATASETS.items()}
DESCRIPTIONS = {name: row.description for name, row in DATASETS.items()}


@dataclass(frozen=True)
class Artifact:
    """One file the report reads: its name as shown in the appendix (``run:metrics.json``) and content."""

    name: str
    data: Any


@dataclass(frozen=True)
class Evaluation:
    """One metrics.json of the run, placed as internal validation, internal held-out test or external test."""

    artifact: Artifact
    dataset: str
    split: str
    role: str  # "internal validation" | "internal held-out test" | "external test"
    plots_prefix: str  # figure name prefix in the report folder ("" for the run's own plots)

    @property
    def metrics(self) -> dict[str, Any]:
        """The metrics.json object."""
        return self.artifact.data


@dataclass
class RunArtifacts:
    """Everything the report shows, read once from the run (and EDA) folders."""

    run_dir: Path
    config: Config
    config_raw: Artifact
    threshold: Artifact
    manifest: Artifact
    history: Artifact  # list of row dicts from history.csv
    evaluations: list[Evaluation]
    eda: Artifact | None = None
    dataset: Artifact | None = None  # written by the report: counts of the configured data
    model: Artifact | None = None  # written by the report: layers and parameters of model.keras
    notes: list[str] = field(default_factory=list)  # what could not be read, in words
    left_out: list[str] = field(default_factory=list)  # evaluations saved with the run but not reported, and why

    @property
    def validation(self) -> Evaluation:
        """The run's own validation-split evaluation (the split the threshold was chosen on)."""
        return self.evaluations[0]

    @property
    def external(self) -> list[Evaluation]:
        """Evaluations on a different institution's images than the training data."""
        return [e for e in self.evaluations if e.role == "external test"]


def evaluation_title(dataset: str, split: str) -> str:
    """``"Kermany pediatric chest X-rays, val split"``."""
    return f"{TITLES.get(dataset, dataset)}, {split} split"


def same_source(a: str, b: str) -> bool:
    """True when datasets ``a`` and ``b`` hold images of the same institution."""
    return SOURCES.get(a, a) == SOURCES.get(b, b)


def evaluation_role(train_dataset: str, dataset: str, split: str, own_validation: bool) -> str:
    """Where an evaluation stands: the threshold's own validation split, a same-source held-out test, or external."""
    if not same_source(train_dataset, dataset):
        return "external test"
    return (
        "internal validation"
        if own_validation or (dataset == train_dataset and split == "val")
        else "internal held-out test"
    )


def limited_note(name: str, data: dict[str, Any]) -> str | None:
    """Why an ``evaluate --limit`` evaluation is not reported (None when it covers the whole split)."""
    if data.get("limit") is None:
        return None
    whole = data.get("n_split")
    return (
        f"{name}: {data['n']} of {whole if whole is not None else 'the'} images (--limit {data['limit']}), "
        "not reported: a limited evaluation is a quick check, not a result on the split"
    )


def load_evaluations(run_dir: Path, config: Config) -> tuple[list[Evaluation], list[str]]:
    """The evaluations the report shows, and a note for each one it leaves out.

    The run's validation ``metrics.json`` comes first, then every ``eval/*/metrics.json`` that covers its
    whole split (no ``limit``), in folder-name order. Each dataset + split appears once: the run's own
    validation (the split the threshold was chosen on) wins over a re-evaluation of that split, and among
    re-evaluations the most recently written ``metrics.json`` wins.
    """
    own = runs.load_metrics(run_dir / "metrics.json").model_dump(mode="json")
    train = config.data.dataset
    first = Evaluation(
        Artifact("run:metrics.json", own),
        own.get("dataset") or train,
        own.get("split") or "val",
        "internal validation",
        "",
    )
    left_out: list[str] = []
    candidates: list[tuple[int, Evaluation]] = []
    for path in sorted(run_dir.glob("eval/*/metrics.json")):
        data = runs.load_metrics(path).model_dump(mode="json")
        folder = path.parent.name
        note = limited_note(f"eval/{folder}", data)
        if note is not None:
            left_out.append(note)
            continue
        dataset = data.get("dataset") or folder.split("-")[0]
        split = data.get("split") or folder.partition("-")[2] or "unknown"
        role = evaluation_role(train, dataset, split, own_validation=False)
        artifact = Artifact(f"run:eval/{folder}/metrics.json", data)
        candidates.append((path.stat().st_mtime_ns, Evaluation(artifact, dataset, split, role, f"eval-{folder}-")))
    shown = {(first.dataset, first.split): first}
    for _, e in sorted(candidates, key=lambda c: c[0], reverse=True):
        kept = shown.setdefault((e.dataset, e.split), e)
        if kept is not e:
            left_out.append(
                f"{e.artifact.name.removeprefix('run:').removesuffix('/metrics.json')}: "
                f"{evaluation_title(e.dataset, e.split)} is already reported from {kept.artifact.name}, not repeated"
            )
    order = [first] + [e for _, e in candidates if shown[(e.dataset, e.split)] is e]
    return order, sorted(left_out)


def load_run_artifacts(run_dir: str | Path, eda_dir: str | Path | None = None) -> RunArtifacts:
    """Read config, threshold, manifest, history and every evaluation of a run; raise ``RunError`` naming a missing file."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"{run}: not a run directory")
    config = load_run_config(run)
    raw = tomllib.loads((run / "config.toml").read_text())
    artifacts = RunArtifacts(
        run_dir=run,
        config=config,
        config_raw=Artifact("run:config.toml", raw),
        threshold=Artifact("run:threshold.json", runs.load_threshold(run).model_dump(mode="json")),
        manifest=Artifact("run:manifest.json", runs.load_manifest(run).model_dump(mode="json")),
        history=Artifact("run:history.csv", runs.history_records(run)),
        evaluations=[],
    )
    artifacts.evaluations, artifacts.left_out = load_evaluations(run, config)
    if eda_dir is not None:
        artifacts.eda = Artifact("eda:eda.json", read_json(Path(eda_dir) / "eda.json"))
    return artifacts


def split_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per split: images, patients and pneumonia images."""
    return {
        str(name): {
            "n_images": int(len(part)),
            "n_patients": int(part["patient_id"].nunique()),
            "n_pneumonia": int(part["label"].sum()),
        }
        for name, part in frame.groupby("split", sort=True)
    }


def value_counts(series: pd.Series) -> dict[str, int]:
    """Counts per value (sorted by value), missing values left out."""
    counts = series.dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def dataset_summary(config: Config) -> dict[str, Any]:
    """Counts of the configured data as the run used it: per split, and demographics where the dataset has them."""
    from pneumocxr.train.pipeline import data_frame

    frame = data_frame(config)
    summary: dict[str, Any] = {
        "dataset": config.data.dataset,
        "source": SOURCES.get(config.data.dataset, "unknown"),
        "n_images": int(len(frame)),
        "n_patients": int(frame["patient_id"].nunique()),
        "n_pneumonia_images": int(frame["label"].sum()),
        "pneumonia_prevalence": float(frame["label"].mean()),
        "limit_per_split": config.data.limit_per_split,
        "split": split_counts(frame),
        "data_list_sha256": data_list_hash(
            (Path(p).name, label, split)
            for p, label, split in frame[["path", "label", "split"]].itertuples(index=False)
        ),
    }
    for column in ("sex", "view", "pathogen"):
        if column in frame:
            summary[column] = value_counts(frame[column])
    if "age" in frame and frame["age"].notna().any():
        ages = frame["age"].dropna()
        summary["age"] = {
            "median": float(ages.median()),
            "q1": float(ages.quantile(0.25)),
            "q3": float(ages.quantile(0.75)),
            "min": float(ages.min()),
            "max": float(ages.max()),
        }
    return summary


def _params(layer: Any) -> int:
    """Number of weights a layer holds."""
    return int(sum(int(w.numpy().size) for w in layer.weights))


def first_trained_index(names: list[str], config: Config, stages: list[dict[str, Any]] | None = None) -> int:
    """Position of the first pre-trained layer whose trained weights the saved model keeps (``len(names)`` = none).

    ``stages`` (the manifest's ``StageSummary`` records as dicts) name each stage's ``trainable_from`` and
    whether training ``kept`` its weights: a stage that never came within ``[train] stage_tolerance`` of the
    stage before it was discarded, so its layers keep the earlier weights. Without ``stages`` the config
    decides: stage 1 from ``[train] stage1_trainable_from``, the fine-tune from ``[model] trainable_from``.
    """

    def start(name: str) -> int:
        return 0 if name == "all" else names.index(name) if name in names else len(names)

    if stages:
        kept = [s["trainable_from"] for s in stages if s["kept"]]
    else:
        kept = [config.train.stage1_trainable_from]
        if config.train.finetune_epochs > 0:
            kept.append(config.model.trainable_from)
    return min((start(name) for name in kept), default=len(names))


def model_summary(run_dir: Path, config: Config, stages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Layers of ``model.keras``: pre-trained ones frozen or fine-tuned (``first_trained_index``), and added ones."""
    from pneumocxr.models import backbone_layer_names
    from pneumocxr.runs import load_model

    model = load_model(run_dir)
    names = backbone_layer_names(model) if config.model.backbone != "baseline_cnn" else []
    cut = first_trained_index(names, config, stages)
    layers = {layer.name: layer for layer in model.layers}
    pretrained = [layers[name] for name in names if _params(layers[name])]
    frozen = [layer for layer in pretrained if names.index(layer.name) < cut]
    tuned = [layer for layer in pretrained if names.index(layer.name) >= cut]
    added = [layer for layer in model.layers if layer.name not in names and type(layer).__name__ != "InputLayer"]
    trainable = int(sum(int(w.numpy().size) for w in model.trainable_weights))
    total = int(model.count_params())

    def describe(layer: Any) -> dict[str, Any]:
        extra = {"units": int(layer.units)} if hasattr(layer, "units") else {}
        extra.update({"rate": float(layer.rate)} if hasattr(layer, "rate") else {})
        return {"name": layer.name, "type": type(layer).__name__, "params": _params(layer), **extra}

    return {
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "n_layers": len(model.layers),
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "frozen": [describe(layer) for layer in frozen],
        "fine_tuned": [describe(layer) for layer in tuned],
        "added": [describe(layer) for layer in added],
        "n_frozen": len(frozen),
        "n_fine_tuned": len(tuned),
        "n_added": len(added),
        "frozen_params": int(sum(_params(layer) for layer in frozen)),
        "fine_tuned_params": int(sum(_params(layer) for layer in tuned)),
        "added_params": int(sum(_params(layer) for layer in added)),
    }


def try_summary(what: str, make: Any, notes: list[str]) -> dict[str, Any] | None:
    """``make()``, or None with a note naming ``what`` and the reason when it fails (missing data, unreadable model)."""
    try:
        return make()
    except (OSError, ValueError, KeyError, RunError, ImportError) as exc:
        log.warning("report: %s unavailable: %s", what, exc)
        notes.append(f"{what} unavailable: {exc}")
        return None


def manifest_rows(manifest: Artifact) -> list[dict[str, str]]:
    """Run id, data hash, weights sha256, code version and package versions from ``manifest.json``."""
    m = manifest.data
    rows = [
        {"name": k, "value": "none" if m[k] is None else str(m[k])}
        for k in ("run_id", "config_name", "code_version", "seed", "data_list_sha256", "weights", "weights_sha256")
        if k in m
    ]
    if isinstance(m.get("packages"), dict):
        rows.append({"name": "packages", "value": ", ".join(f"{k} {v}" for k, v in sorted(m["packages"].items()))})
    return rows
