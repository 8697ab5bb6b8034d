"""Run directory: what a training run leaves behind, one typed record per file, and the one place that
reads and writes each of them.

Layout (``runs/NAME/``): ``config.toml`` (resolved ``config.Config``), ``model.keras``,
``threshold.json`` (``ThresholdRecord``), ``history.csv`` (``HistoryRow`` per epoch), ``metrics.json``
(``MetricsRecord``), ``state.json`` (``RunState``: finished stages, their ``StageSummary``, wall seconds per
part of the run summed over every process), ``manifest.json`` (``Manifest``, with the stage summaries), ``plots/*.png``, ``eval/DATASET-SPLIT/``.
Every JSON record carries ``schema_version``; each is validated (types, ranges, allowed values, no NaN
where a number is required) when read and when written, and a bad file raises ``RunFileError`` with one
line naming the file, the key and what is expected. Reports, evaluation, inference, sweeps, benchmarks
and notebooks read a run only through the ``load_*`` functions here, never from a notebook's memory.
"""

from __future__ import annotations

import csv
import json
import math
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pneumocxr.atomic import atomic_write_text
from pneumocxr.config import Config, ThresholdRule, describe_error, load_config, save_config
from pneumocxr.provenance import code_version, package_versions, sha256_file

SCHEMA_VERSION = 1


class RunError(FileNotFoundError):
    """A run directory that lacks a file it needs; the message names the file."""


class RunFileError(ValueError):
    """A run file that is present but does not hold what its record requires; one line names file and key."""


Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Record(BaseModel):
    """Base of every JSON record: a schema version, no NaN, values validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    schema_version: Literal[1] = SCHEMA_VERSION


class CalibrationRecord(BaseModel):
    """``calibrate.fit_calibration``: probability' = sigmoid(a * logit(p) + b), fitted on validation."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    method: Literal["none", "platt", "temperature"]
    a: float
    b: float
    temperature: float | None = None
    n: Count | None = None


class ThresholdRecord(Record):
    """``threshold.json``: the operating point chosen on the validation split (``evaluate.choose_threshold``)."""

    threshold: Probability
    rule: Literal[ThresholdRule, "fixed"]  # "fixed": set by hand (benchmarks), not chosen on data
    target: Probability | None = None
    n: Count | None = None
    n_pos: Count | None = None
    criterion: str | None = None
    criterion_value: float | None = None
    sensitivity: Probability | None = None
    specificity: Probability | None = None
    tolerance: float | None = None  # youden_midpoint: balanced-accuracy slack
    low: Probability | None = None  # youden_midpoint: the plateau's interval
    high: Probability | None = None
    best_balanced_accuracy: Probability | None = None
    best_worst_balanced_accuracy: Probability | None = (
        None  # worst_group_midpoint: the plateau's best worst-group value
    )
    groups: Annotated[int, Field(ge=1)] | None = None  # worst_group_midpoint: validation conditions compared
    dataset: str | None = None
    split: str | None = None
    validation: str | None = None  # "plain" or "shift (N shifted copies)": the rows the threshold was chosen on
    calibration: CalibrationRecord | None = None  # folded into model.keras before the threshold was chosen
    note: str | None = None


class StageSummary(Record):
    """One training stage as ``train.fit_stage`` ran it; ``kept`` is False when its weights were discarded
    because it never came within ``[train] stage_tolerance`` of the earlier stage's best validation value."""

    stage: str
    trainable_from: str
    epochs: Count
    steps_per_epoch: Count
    seconds: Seconds | None = None  # wall time over every process that trained it; None: unknown (older runs)
    kept: bool
    skipped: bool = False  # finished before a resume; summary read back from state.json


class RunState(Record):
    """``state.json``: which stages finished (with their summaries), whether the whole run did, and the wall
    seconds spent so far per part of the run (``setup``, each stage, ``finish``), summed over every process
    that worked on it (``train.clock``), so a resumed run reports its whole training time."""

    done: list[str] = []
    stages: dict[str, StageSummary] = {}
    finished: bool = False
    seconds: dict[str, Seconds] = {}


class Manifest(Record):
    """``manifest.json``: what makes the run reproducible (code, data, weights, versions) and its stages."""

    model_config = ConfigDict(extra="allow")  # extra provenance keys are kept, typed keys are checked
    run_id: str
    config_name: str
    code_version: str
    seed: Count
    data_list_sha256: str
    weights: str | None = None
    weights_sha256: str | None = None
    packages: dict[str, str] = {}
    precision: str | None = None
    strategy: str | None = None
    replicas: Count | None = None
    n_train: Count | None = None
    n_val: Count | None = None
    n_val_shifted: Count | None = None  # shift validation: shifted copies added to the validation rows
    stages: list[StageSummary] = []
    val_auc: Probability | None = None
    wall_time_s: Seconds | None = None  # every process of the run (``wall_time``), resumes included
    wall_time_parts: dict[str, Seconds] | None = None  # its parts; absent in manifests of older versions


class MetricsRecord(Record):
    """``metrics.json`` (``evaluate.evaluate_predictions``): the typed headline keys; the rest (CIs,
    calibration, subgroups) is kept as written."""

    model_config = ConfigDict(extra="allow")
    dataset: str | None = None
    split: str | None = None
    n: Count
    n_patients: Count
    n_pos: Count
    prevalence: Probability
    auc: Probability | None = None
    threshold: Probability
    threshold_rule: str | None = None
    confusion: dict[str, Count]
    n_boot: Count | None = None  # bootstrap resamples behind the CIs; absent in records of older versions
    limit: Count | None = None  # ``evaluate --limit`` when it left images out; None = the whole split
    n_split: Count | None = None  # images in the whole split (``evaluate``); absent for a run's own validation
    shift_validation: dict[str, Any] | None = None  # shift.shift_validation_summary: per-condition results


class HistoryRow(Record):
    """One ``history.csv`` row: an epoch of a stage (empty cells are None)."""

    model_config = ConfigDict(extra="ignore")
    stage: str
    epoch: Annotated[int, Field(ge=1)]
    loss: float | None = None
    auc: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_auc: float | None = None
    val_accuracy: float | None = None
    learning_rate: float | None = None
    seconds: float | None = None
    resumed_from_epoch: int | None = None


HISTORY_FIELDS = tuple(name for name in HistoryRow.model_fields if name != "schema_version")
R = TypeVar("R", bound=Record)


def create_run_dir(path: str | os.PathLike, config: Config) -> Path:
    """Make ``path`` and ``path/plots`` and write the resolved ``config.toml``."""
    run = Path(path)
    (run / "plots").mkdir(parents=True, exist_ok=True)
    save_config(config, run / "config.toml")
    return run


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, BaseModel):
        return _clean(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as stable, sorted, indented JSON (NaN written as null), atomically (``atomic``)."""
    return atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising ``RunError`` naming the file when it is absent, ``RunFileError`` when unparsable."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: missing (is this a finished run directory?)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc})") from None


def read_record(path: str | os.PathLike, kind: type[R]) -> R:
    """Read and validate one JSON record file.

    Raises
    ------
    RunError
        The file is absent.
    RunFileError
        The file is not JSON, or a key has the wrong type, range or value (one line: file, key, expected).
    """
    data = read_json(path)
    try:
        return kind.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise RunFileError(describe_error(str(path), exc, tables=False)) from None


def write_record(path: str | os.PathLike, record: Record | dict[str, Any], kind: type[R]) -> R:
    """Validate ``record`` as ``kind`` and write it atomically; return the validated record.

    Raises
    ------
    RunFileError
        ``record`` does not satisfy ``kind`` (the message names ``path`` and the key).
    """
    data = record.model_dump(mode="json") if isinstance(record, Record) else _clean(record)
    try:
        valid = kind.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise RunFileError(describe_error(str(path), exc, tables=False)) from None
    write_json(path, valid.model_dump(mode="json"))
    return valid


def load_run_config(run_dir: str | os.PathLike) -> Config:
    """The resolved config a run was trained with."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise RunError(f"{path}: missing (is this a run directory?)")
    return load_config(path)


def save_threshold(run_dir: str | os.PathLike, threshold: ThresholdRecord | dict[str, Any]) -> Path:
    """Validate and write ``threshold.json`` (``ThresholdRecord``); raise ``RunFileError`` when invalid."""
    path = Path(run_dir) / "threshold.json"
    write_record(path, threshold, ThresholdRecord)
    return path


def load_threshold(run_dir: str | os.PathLike) -> ThresholdRecord:
    """The saved operating point of a run, validated (a NaN or out-of-range threshold is refused)."""
    return read_record(Path(run_dir) / "threshold.json", ThresholdRecord)


def save_metrics(out_dir: str | os.PathLike, metrics: MetricsRecord | dict[str, Any]) -> Path:
    """Validate and write ``OUT_DIR/metrics.json`` (``MetricsRecord``)."""
    path = Path(out_dir) / "metrics.json"
    write_record(path, metrics, MetricsRecord)
    return path


def load_metrics(path: str | os.PathLike) -> MetricsRecord:
    """A ``metrics.json`` (a run's own, or ``eval/*/metrics.json``) validated; ``path`` may be its folder."""
    path = Path(path)
    return read_record(path / "metrics.json" if path.is_dir() else path, MetricsRecord)


def load_manifest(run_dir: str | os.PathLike) -> Manifest:
    """The run's ``manifest.json``, validated.

    A manifest written before the wall time was summed over resumes (no ``wall_time_parts``) counted only
    the last process in ``wall_time_s``; the stages that process skipped (finished earlier, their
    ``seconds`` kept in ``state.json``) are added back here, so every reader sees the whole training time.
    """
    manifest = read_record(Path(run_dir) / "manifest.json", Manifest)
    if manifest.wall_time_parts is None and manifest.wall_time_s is not None:
        earlier = sum(s.seconds or 0.0 for s in manifest.stages if s.skipped)
        manifest = manifest.model_copy(update={"wall_time_s": round(manifest.wall_time_s + earlier, 1)})
    return manifest


def load_run_id(run_dir: str | os.PathLike) -> str:
    """The run's id: ``run_id`` of its ``manifest.json``, so a copied or renamed run folder keeps the id
    written into its outputs (predict rows, Secondary Capture comments, SR UIDs); the folder's name only
    for a run without ``manifest.json``. Raises ``RunFileError`` when the manifest is there but invalid."""
    if not (Path(run_dir) / "manifest.json").is_file():
        return Path(run_dir).resolve().name
    return load_manifest(run_dir).run_id


def load_state(run_dir: str | os.PathLike) -> RunState:
    """The run's ``state.json`` (an empty state for a run not started yet), validated."""
    path = Path(run_dir) / "state.json"
    return read_record(path, RunState) if path.is_file() else RunState()


def save_state(run_dir: str | os.PathLike, state: RunState) -> Path:
    """Write ``state.json`` atomically, so a kill never leaves a half-written state."""
    path = Path(run_dir) / "state.json"
    write_record(path, state, RunState)
    return path


def read_history(run_dir: str | os.PathLike) -> list[HistoryRow]:
    """Rows of ``history.csv`` validated (empty when absent); raise ``RunFileError`` naming the row and key."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        raw = list(csv.DictReader(handle))
    rows = []
    for i, row in enumerate(raw):
        try:
            rows.append(HistoryRow.model_validate({k: (v if v != "" else None) for k, v in row.items() if k}))
        except ValidationError as exc:
            raise RunFileError(describe_error(f"{path} row {i + 1}", exc, tables=False)) from None
    return rows


def history_records(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """``read_history`` as plain dicts (keys ``HISTORY_FIELDS``; empty cells None), for tables and plots."""
    return [row.model_dump(exclude={"schema_version"}) for row in read_history(run_dir)]


def write_history(run_dir: str | os.PathLike, rows: Iterable[HistoryRow | dict[str, Any]]) -> Path:
    """Rewrite ``history.csv`` with validated ``rows``, atomically."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        valid = row if isinstance(row, HistoryRow) else HistoryRow.model_validate(row)
        writer.writerow({k: ("" if v is None else v) for k, v in valid.model_dump(exclude={"schema_version"}).items()})
    return atomic_write_text(Path(run_dir) / "history.csv", buffer.getvalue())


def load_model(run_dir: str | os.PathLike):
    """The trained ``keras.Model`` saved as ``model.keras`` in the run."""
    import keras

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise RunError(f"{path}: missing (train first: `pneumocxr train`)")
    if not zipfile.is_zipfile(path):  # Keras would call it "File not found" (the .keras format is a zip)
        raise RunError(f"{path}: not a valid .keras file (not a zip archive; damaged or not a saved model)")
    return keras.models.load_model(path, compile=False)


def write_manifest(
    run_dir: str | os.PathLike,
    config: Config,
    data_hash: str,
    weights_path: str | None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Validate and write ``manifest.json``: run id, code version, seed, data hash, weights sha256, versions,
    plus ``extra`` (e.g. ``stages``: ``StageSummary`` records); return the ``Manifest``."""
    weights_sha = sha256_file(weights_path) if weights_path and Path(weights_path).is_file() else None
    manifest = {
        "run_id": Path(run_dir).resolve().name,
        "config_name": config.name,
        "code_version": code_version(),
        "seed": config.data.seed,
        "data_list_sha256": data_hash,
        "weights": weights_path or config.model.weights,
        "weights_sha256": weights_sha,
        "packages": package_versions(),
        **(extra or {}),
    }
    return write_record(Path(run_dir) / "manifest.json", manifest, Manifest)
