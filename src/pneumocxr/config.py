"""Configuration: dataclasses for every step, loaded from TOML and written back resolved.

A config file has one table per step (``[data]``, ``[model]``, ``[train]``, ``[threshold]``,
``[gate]``); keys left out take the defaults below. ``load_config`` rejects unknown keys so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DataConfig:
    """Which images, where they live, and how they are split (always by patient)."""

    dataset: str = "kermany"  # nih | kermany | rsna | pneumoniamnist
    root: str = "data"  # relative paths resolve against the working directory, then the project
    image_size: int = 224
    val_fraction: float = 0.15  # share of *patients* carved from the training split for validation
    seed: int = 42
    limit_per_split: int | None = None  # cap images per split (tiny/demo configs); stratified
    shift_copies: int = 0  # shift validation: each validation image also under this many acquisition shifts (0 = off)
    shift_splits: tuple[str, ...] = ()  # other splits joining the shift validation as their own condition (e.g. official_val)
    nih_images: str | None = None  # NIH image folder (flat or Kaggle images_0NN/images layout)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, its weights, its head and which of its layers train."""

    backbone: str = "vgg16"  # vgg16 | densenet121 | baseline_cnn
    weights: str = "imagenet"  # "imagenet" (local copy in data/weights, else Keras download), a file path, or "none"
    trainable_from: str = "block5_conv1"  # first backbone layer trained at any stage; "none" = frozen base
    pooling: str = "avg"  # avg | max | flatten: how the last feature map becomes a vector
    head_units: tuple[int, ...] = (256,)
    dropout: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted: stage 1 (on cached features or images), then an optional fine-tune on images."""

    epochs: int = 10  # stage 1
    batch_size: int = 16
    learning_rate: float = 1e-4  # stage 1 peak learning rate
    lr_schedule: str = "cosine"  # cosine | constant
    optimizer: str = "adam"  # adam | adamw | sgd (momentum 0.9)
    class_weight: str = "balanced"  # balanced (weights inverse to class frequency) | none
    label_smoothing: float = 0.0
    mixed_precision: str = "auto"  # auto (bf16 on CPUs with AVX512-BF16/AMX, float16 on GPU) | float32 | mixed_bfloat16 | mixed_float16
    strategy: str = "default"  # default | mirrored | multi_worker
    monitor: str = "val_loss"  # checkpoint / early stopping quantity: val_loss | val_auc
    early_stopping_patience: int = 4
    stage_tolerance: float = 0.0  # a later stage replaces the earlier one's weights if its best monitor value is within this of the earlier best
    stage1_trainable_from: str = "block5_conv1"  # stage 1 trains this layer onwards; "none" = head only
    feature_cache: bool = False  # CPU path: stage 1 runs on cached outputs of the frozen layers
    cache_layer: str = "auto"  # layer whose output is cached; auto = the one before stage1_trainable_from
    cache_views: int = 1  # training-image views cached: view 0 plain, views 1.. augmented
    cache_dir: str = ""  # where feature caches live ("" = RUN_DIR/features); shared dirs let runs reuse them
    finetune_epochs: int = 0  # stage 2: train from model.trainable_from on (augmented) images
    finetune_learning_rate: float = 1e-5
    finetune_steps: int | None = None  # batches per stage-2 epoch (None = one pass over the training split)
    augment: bool = True
    aug_flip: bool = False  # horizontal flip: off, chest X-rays have laterality (heart, markers)
    aug_rotation: float = 0.03  # fraction of a full turn (0.03 = +-10.8 degrees)
    aug_translation: float = 0.08  # fraction of the image side
    aug_zoom: float = 0.15  # fraction: zoom in/out up to 15 %
    aug_contrast: float = 0.3  # contrast factor range 1 +- 0.3
    aug_brightness: float = 0.15  # brightness shift, fraction of the [0, 1] range
    aug_gamma: float = 0.0  # exposure: gamma with log-uniform spread 1 +- this (0 = off)
    aug_blur: float = 0.0  # Keras RandomGaussianBlur factor (0 = off): detector sharpness differences
    aug_noise: float = 0.0  # Gaussian noise SD on the [0, 1] scale (0 = off)
    aug_border: float = 0.0  # BorderErasing: widest random edge band, fraction of the side (0 = off)
    aug_border_rate: float = 0.5  # share of training images whose borders are erased


@dataclass(frozen=True)
class ThresholdConfig:
    """How the operating point is chosen on the validation split, and how its CIs are computed."""

    rule: str = "max_f1"  # max_f1 | sensitivity_target | youden | youden_midpoint
    target: float | None = None  # e.g. 0.90 for sensitivity_target
    tolerance: float = 0.01  # youden_midpoint: balanced-accuracy slack defining the plateau
    n_boot: int = 1000  # bootstrap resamples (of patients) for every CI
    calibration: str = "none"  # none | platt | temperature: fitted on the (shift) validation set, folded into the model


@dataclass(frozen=True)
class GateConfig:
    """What the device accepts: the DICOM header values of its intended use."""

    modalities: tuple[str, ...] = ("DX", "CR")
    body_parts: tuple[str, ...] = ("CHEST",)
    views: tuple[str, ...] = ("PA", "AP")
    min_size: int = 64  # smallest Rows/Columns accepted
    age_range: tuple[float, float] | None = None  # years, inclusive; None = no age check
    age_action: str = "reject"  # reject | warn: outside age_range rejects, or scores with a warning


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


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


def config_from_dict(raw: dict[str, Any], where: str = "<dict>") -> Config:
    """Build a ``Config`` from a nested dict as read from TOML."""
    unknown = sorted(set(raw) - set(_SECTIONS) - {"name"})
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {unknown}; known: {sorted(_SECTIONS)}")
    parts = {
        name: _build(type(factory()), raw.get(name, {}), f"{where} [{name}]")
        for name, factory in _SECTIONS.items()
    }
    return Config(name=raw.get("name", Path(where).stem), **parts)


def load_config(path: str | os.PathLike) -> Config:
    """Read a TOML config file; unknown tables or keys raise ``ConfigError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
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
    """Write the resolved config as TOML (what a run really used)."""
    path = Path(path)
    path.write_text(tomli_w.dumps(config_to_dict(config)))
    return path


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
