"""Configuration: dataclasses for every step, loaded from TOML, validated, and written back resolved.

A config file has one table per step (``[data]``, ``[model]``, ``[train]``, ``[threshold]``,
``[gate]``); keys left out take the defaults below. Each field's type, range and allowed values are
part of its annotation (``Annotated[..., Field(...)]``, ``Literal[...]``); ``load_config`` checks all of
them with pydantic's ``TypeAdapter`` over these dataclasses before any work, rejects unknown keys so a
typo never silently falls back to a default, and raises ``ConfigError`` with one line naming the file,
the key, the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _one_of(table: str):
    """A validator accepting only the keys of a registry table (``datasets`` or ``backbones``)."""

    def check(value: str) -> str:
        if table == "datasets":
            from pneumocxr.datasets.registry import DATASETS as known
        else:
            from pneumocxr.backbones import BACKBONES as known
        if value not in known:
            raise ValueError(f"expected one of {', '.join(sorted(known))}")
        return value

    return AfterValidator(check)


# Constrained types shared by the fields below (pydantic reads them; the dataclasses stay plain).
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # a learning rate
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Age = Annotated[float, Field(ge=0, le=150, allow_inf_nan=False)]  # years
Names = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]  # DICOM code strings
ThresholdRule = Literal["max_f1", "sensitivity_target", "youden", "youden_midpoint", "worst_group_midpoint"]
DatasetName = Annotated[str, _one_of("datasets")]
BackboneName = Annotated[str, _one_of("backbones")]


@dataclass(frozen=True)
class DataConfig:
    """Which images, where they live, and how they are split (always by patient)."""

    dataset: DatasetName = "kermany"  # a key of pneumocxr.datasets.registry.DATASETS
    root: str = "data"  # relative paths resolve against the working directory, then the project
    image_size: Annotated[int, Field(ge=32, le=2048)] = 224
    val_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = (
        0.15  # share of *patients* carved from the training split for validation
    )
    seed: NonNegative = 42
    limit_per_split: Positive | None = None  # cap images per split (tiny/demo configs); stratified
    shift_copies: Annotated[int, Field(ge=0, le=16)] = (
        0  # shift validation: each validation image also under this many of the 16 acquisition shifts (0 = off)
    )
    shift_splits: tuple[
        Annotated[str, Field(min_length=1)], ...
    ] = ()  # other splits joining the shift validation as their own condition (e.g. official_val)
    nih_images: str | None = None  # NIH image folder (flat or Kaggle images_0NN/images layout)
    shards: str = ""  # `pneumocxr prepare` output folder (uint8 TFRecord shards); "" = always read image files


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, its weights, its head and which of its layers train."""

    backbone: BackboneName = "vgg16"  # a key of pneumocxr.backbones.BACKBONES
    weights: str = "imagenet"  # "imagenet" (local copy in data/weights, else Keras download), a file path, or "none"
    trainable_from: str = "block5_conv1"  # first backbone layer trained at any stage; "none" = frozen base
    pooling: Literal["avg", "max", "flatten"] = "avg"  # avg | max | flatten: how the last feature map becomes a vector
    head_units: tuple[Positive, ...] = (256,)
    dropout: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted: stage 1 (on cached features or images), then an optional fine-tune on images."""

    epochs: Positive = 10  # stage 1
    batch_size: Positive = 16
    learning_rate: Rate = 1e-4  # stage 1 peak learning rate
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # sgd: momentum 0.9
    class_weight: Literal["balanced", "none"] = "balanced"  # balanced: weights inverse to class frequency
    label_smoothing: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    mixed_precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = (
        "auto"  # auto: bf16 on CPUs with AVX512-BF16/AMX, float16 on GPU
    )
    strategy: Literal["default", "mirrored"] = (
        "default"  # mirrored: all local GPUs, else all logical CPUs (multi_worker removed: pneumocxr.train.stages.check_strategy)
    )
    monitor: Literal["val_loss", "val_auc"] = "val_loss"  # checkpoint / early stopping quantity
    early_stopping_patience: NonNegative = 4
    stage_tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = (
        0.0  # a later stage replaces the earlier one's weights if its best monitor value is within this of the earlier best
    )
    stage1_trainable_from: str = "block5_conv1"  # stage 1 trains this layer onwards; "none" = head only
    feature_cache: bool = False  # CPU path: stage 1 runs on cached outputs of the frozen layers
    cache_layer: str = "auto"  # layer whose output is cached; auto = the one before stage1_trainable_from
    cache_views: Positive = 1  # training-image views cached: view 0 plain, views 1.. augmented
    cache_dir: str = ""  # where feature caches live ("" = RUN_DIR/features); shared dirs let runs reuse them
    finetune_epochs: NonNegative = 0  # stage 2: train from model.trainable_from on (augmented) images
    finetune_learning_rate: Rate = 1e-5
    finetune_steps: Positive | None = None  # batches per stage-2 epoch (None = one pass over the training split)
    augment: bool = True
    augment_on: Literal["auto", "model", "pipeline"] = "auto"  # auto: in the model on a GPU, in tf.data on a CPU
    aug_flip: bool = False  # horizontal flip: off, chest X-rays have laterality (heart, markers)
    aug_rotation: Fraction = 0.03  # fraction of a full turn (0.03 = +-10.8 degrees)
    aug_translation: Fraction = 0.08  # fraction of the image side
    aug_zoom: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.15  # fraction: zoom in/out up to 15 %
    aug_contrast: Fraction = 0.3  # contrast factor range 1 +- 0.3
    aug_brightness: Fraction = 0.15  # brightness shift, fraction of the [0, 1] range
    aug_gamma: Fraction = 0.0  # exposure: gamma with log-uniform spread 1 +- this (0 = off)
    aug_blur: Annotated[float, Field(ge=0, allow_inf_nan=False)] = (
        0.0  # Keras RandomGaussianBlur factor (0 = off): detector sharpness differences
    )
    aug_noise: Fraction = 0.0  # Gaussian noise SD on the [0, 1] scale (0 = off)
    aug_border: Annotated[float, Field(ge=0, lt=0.5, allow_inf_nan=False)] = (
        0.0  # BorderErasing: widest random edge band, fraction of the side (0 = off)
    )
    aug_border_rate: Fraction = 0.5  # share of training images whose borders are erased


@dataclass(frozen=True)
class ThresholdConfig:
    """How the operating point is chosen on the validation split, and how its CIs are computed."""

    rule: ThresholdRule = "max_f1"
    target: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None  # e.g. 0.90 for sensitivity_target
    tolerance: Annotated[float, Field(ge=0, lt=0.5, allow_inf_nan=False)] = (
        0.01  # youden_midpoint: balanced-accuracy slack defining the plateau
    )
    n_boot: NonNegative = 1000  # bootstrap resamples (of patients) for every CI
    calibration: Literal["none", "platt", "temperature"] = (
        "none"  # fitted on the (shift) validation set, folded into the model
    )


@dataclass(frozen=True)
class GateConfig:
    """What the device accepts: the DICOM header values of its intended use."""

    modalities: Names = ("DX", "CR")
    body_parts: Names = ("CHEST",)
    views: Names = ("PA", "AP")
    min_size: Positive = 64  # smallest Rows/Columns accepted
    age_range: tuple[Age, Age] | None = None  # years, inclusive; None = no age check
    age_action: Literal["reject", "warn"] = "reject"  # outside age_range rejects, or scores with a warning
    age_missing_action: Literal["reject", "warn"] = "warn"  # with age_range set, an age that is missing or unparseable
    body_part_synonyms: Names = (  # BodyPartExamined values read as CHEST (case/space-insensitive)
        "CHEST",
        "THORAX",
        "TORAX",
        "THORACIC",
        "PECHO",
        "POITRINE",
        "BRUSTKORB",
        "TORACE",
        "PORT CHEST",
        "CHEST PA",
        "CHEST AP",
        "CHEST PA AND LAT",
        "CHEST PORTABLE",
        "PORTABLE CHEST",
        "CXR",
        "LUNG",
        "LUNGS",
    )
    max_pixels: Positive = 25_000_000  # Rows x Columns per frame, judged from the header before any decode
    max_decoded_bytes: Positive = 100_000_000  # decoded pixel bytes (header), or stored length of native pixel data
    max_inflated_bytes: Positive = 134_217_728  # Deflated transfer syntax: bytes inflated at most (128 MiB)
    max_aspect_ratio: Annotated[float, Field(ge=1, allow_inf_nan=False)] = (
        3.0  # longer side / shorter side (chest cassettes are at most 17:14)
    )
    min_dynamic_range: Fraction = 0.1  # rendered image: 1st-99th percentile spread in [0, 1] below this is rejected
    max_saturated_fraction: Fraction = 0.75  # rendered image: share of pixels at exactly 0 or 1 above this is rejected


@dataclass(frozen=True)
class Config:
    """A whole run: one table per step."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    gate: GateConfig = field(default_factory=GateConfig)


_SECTIONS = {f.name: f.default_factory for f in fields(Config) if f.name != "name"}


class ConfigError(ValueError):
    """A config file that cannot be used, with the file and key named."""


@cache
def _adapter() -> TypeAdapter:
    """The pydantic validator of ``Config`` (built once, on first use)."""
    return TypeAdapter(Config)


def build_table(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from one TOML table: unknown keys are a ``ConfigError`` naming
    ``where``, lists become tuples. For config files whose dataclasses check their own values in
    ``__post_init__`` (``serve.toml``); run configs go through ``config_from_dict``'s pydantic check."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _check_keys(raw: dict[str, Any], where: str) -> None:
    """Reject unknown tables and keys (the dataclass fields are the only names allowed)."""
    unknown = sorted(set(raw) - set(_SECTIONS) - {"name"})
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {unknown}; known: {sorted(_SECTIONS)}")
    for name, factory in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table, got {table!r}")
        known = {f.name for f in fields(type(factory()))}
        extra = sorted(set(table) - known)
        if extra:
            raise ConfigError(f"{where} [{name}]: unknown key(s) {extra}; known: {sorted(known)}")


def describe_error(where: str, error: ValidationError, tables: bool = True) -> str:
    """One line naming the file, the key (``[train] epochs``), the value given and what is expected.

    ``tables`` writes the first location part as a TOML table; without it the location is a JSON path.
    """
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"] if isinstance(p, int) or str(p).isidentifier()]  # no union-branch tags
    if tables and len(loc) > 1:
        key = f"[{loc[0]}] " + ".".join(loc[1:])
    else:
        key = ".".join(loc) or "(top level)"
    message = first["msg"].replace("Value error, ", "")
    more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    given = f" = {first['input']!r}" if first["type"] != "missing" else ""
    return f"{where}: {key}{given}: {message[0].lower()}{message[1:]}{more}"


def _check_relations(config: Config, where: str) -> None:
    """Rules that tie two fields together (each field alone was checked by its annotation)."""
    if config.threshold.rule == "sensitivity_target" and config.threshold.target is None:
        raise ConfigError(
            f"{where}: [threshold] target: rule 'sensitivity_target' needs a target sensitivity in (0, 1]"
        )
    age = config.gate.age_range
    if age is not None and age[0] > age[1]:
        raise ConfigError(f"{where}: [gate] age_range = {list(age)!r}: expected [low, high] with low <= high")


def config_from_dict(raw: dict[str, Any], where: str = "<dict>") -> Config:
    """Build and validate a ``Config`` from a nested dict as read from TOML.

    Raises
    ------
    ConfigError
        An unknown table or key, a value of the wrong type, out of range or not among the allowed
        values; the message is one line naming ``where``, the key and what is expected.
    """
    _check_keys(raw, where)
    raw = {**raw, "name": raw.get("name", Path(where).stem)}
    try:  # strict JSON mode: no "5" -> 5, no 5.0 -> 5, no string -> list of its characters
        config = _adapter().validate_json(json.dumps(raw, default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(describe_error(where, exc)) from None
    _check_relations(config, where)
    return config


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML config file; raise ``ConfigError`` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    raw.setdefault("name", path.stem)
    return config_from_dict(raw, str(path))


def config_to_dict(config: Config) -> dict[str, Any]:
    """Nested dict of a config with ``None`` values dropped (TOML has no null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, tuple):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(config))


def save_config(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as TOML (what a run really used), atomically (``atomic``)."""
    from pneumocxr.atomic import atomic_write_text

    return atomic_write_text(path, tomli_w.dumps(config_to_dict(config)))


def resolve_path(value: str | os.PathLike) -> Path:
    """Resolve a relative path against the working directory, else the project root."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve() if path.exists() else path
    candidate = PROJECT_ROOT / path
    return candidate if candidate.exists() else path


def data_root(value: str | os.PathLike | None = None) -> Path:
    """The data folder: argument, else ``$PNEUMOCXR_DATA``, else ``data/`` of the project."""
    chosen = value or os.environ.get("PNEUMOCXR_DATA") or "data"
    return resolve_path(chosen)
