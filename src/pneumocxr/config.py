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
    nih_images: str | None = None  # NIH image folder (flat or Kaggle images_0NN/images layout)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, its weights and which of its layers train."""

    backbone: str = "vgg16"  # vgg16 | densenet121 | baseline_cnn
    weights: str = "imagenet"  # "imagenet" (Keras download or local copy), a file path, or "none"
    trainable_from: str = "block5_conv1"  # first trainable backbone layer; "none" = frozen base
    head_units: tuple[int, ...] = (256,)
    dropout: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted."""

    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    class_weight: str = "balanced"  # balanced | none
    label_smoothing: float = 0.0
    mixed_precision: str = "auto"  # auto | float32 | mixed_bfloat16 | mixed_float16
    strategy: str = "default"  # default | mirrored | multi_worker
    feature_cache: bool = False  # CPU path: cache the frozen base's outputs, train the rest on them
    early_stopping_patience: int = 4
    augment: bool = True


@dataclass(frozen=True)
class ThresholdConfig:
    """How the operating point is chosen on the validation split."""

    rule: str = "max_f1"  # max_f1 | sensitivity_target | youden
    target: float | None = None  # e.g. 0.90 for sensitivity_target


@dataclass(frozen=True)
class GateConfig:
    """What the device accepts: the DICOM header values of its intended use."""

    modalities: tuple[str, ...] = ("DX", "CR")
    body_parts: tuple[str, ...] = ("CHEST",)
    views: tuple[str, ...] = ("PA", "AP")
    min_size: int = 64  # smallest Rows/Columns accepted
    age_range: tuple[float, float] | None = None  # years, inclusive; None = no age check


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
