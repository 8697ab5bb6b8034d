"""Training step, whole runs: config -> run directory (``train_run``); a run scored on a split is ``score``.

``train_run`` builds the model twice from the same weights - once in the training precision (bf16 on
this CPU) and once in float32 - trains the first in stages (``stages.fit_stage``), copies the weights
into the float32 model and writes the run directory (docs/design.md, ``runs``) from it: ``config.toml``,
``model.keras`` (float32, image -> probability), ``threshold.json`` (chosen on the validation split
only), ``history.csv``, ``metrics.json`` + ``predictions.csv`` of the validation split, ``plots/`` and
``manifest.json``. On the feature-cache path the validation features are computed by the float32
bottom, so the validation probabilities are those the saved model gives.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pneumocxr import runs
from pneumocxr.config import Config, load_config, resolve_path
from pneumocxr.models import build_model, layer_before, resolve_weights, set_trainable_from, split_model
from pneumocxr.provenance import data_list_hash
from pneumocxr.train import clock, features, pipeline
from pneumocxr.train.score import write_evaluation
from pneumocxr.train.shift import PLAIN, shift_description, shift_summary, validation_rows
from pneumocxr.train.stages import (
    Stage,
    check_strategy,
    fit_stage,
    make_strategy,
    plot_history,
    precision_policy,
    resolve_precision,
)

log = logging.getLogger(__name__)


class RunExistsError(FileExistsError):
    """A run directory that already holds a (possibly unfinished) run."""


def run_config(config: Config | str | os.PathLike | None, run_dir: Path, resume: bool) -> Config:
    """The config to train: the given one, or on resume the run's own (they must agree when both exist)."""
    given = load_config(config) if isinstance(config, (str, os.PathLike)) else config
    saved_path = run_dir / "config.toml"
    if not resume:
        if any((run_dir / name).exists() for name in ("config.toml", "state.json", "model.keras")):
            raise RunExistsError(
                f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out"
            )
        if given is None:
            raise ValueError("a config is needed to start a run (--config FILE)")
        return given
    if not saved_path.is_file():
        if given is None:
            raise runs.RunError(f"{saved_path}: missing; nothing to resume")
        return given
    saved = load_config(saved_path)
    if given is not None and given != dataclasses.replace(saved, name=given.name):
        raise ValueError(
            f"{saved_path}: the run was started with a different config; resume without --config or with the same file"
        )
    return saved


def split_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and val rows (patient-disjoint), each required non-empty with both classes."""
    from pneumocxr.datasets import assert_patient_disjoint

    assert_patient_disjoint(frame[frame["split"].isin(["train", "val"])])
    parts = []
    for name in ("train", "val"):
        part = frame[frame["split"] == name].reset_index(drop=True)
        if part.empty or part["label"].nunique() < 2:
            raise ValueError(
                f"split '{name}' has {len(part)} images and needs both classes; "
                "raise data.limit_per_split or check the data root"
            )
        parts.append(part)
    return parts[0], parts[1]


def cache_settings(config: Config, weights: str | None, layer: str, precision: str) -> dict[str, Any]:
    """What decides cached features besides the image list (weights by name, size and mtime)."""
    weight_id = weights
    if weights and Path(weights).is_file():
        stat = Path(weights).stat()
        weight_id = f"{Path(weights).name}:{stat.st_size}:{int(stat.st_mtime)}"
    return {
        "backbone": config.model.backbone,
        "weights": weight_id,
        "layer": layer,
        "image_size": config.data.image_size,
        "precision": precision,
    }


def cached_views(
    config: Config,
    bottom,
    bottom32,
    train: pd.DataFrame,
    val: pd.DataFrame,
    cache_dir: Path,
    settings: dict[str, Any],
    precision: str,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Training views (0 plain, 1.. augmented; training precision) and float32 validation features."""
    paths = train["path"].tolist()
    val32 = features.cached_features(
        bottom32,
        lambda: pipeline.evaluation_dataset(val, config, cache=False),
        val["path"].tolist(),
        cache_dir,
        "val",
        "float32",
        **{**settings, "precision": "float32", "conditions": val["condition"].tolist()},
    )
    dtype = "float32" if precision == "float32" else "float16"
    views = []
    for view in range(max(1, config.train.cache_views)):
        if view == 0:
            make = lambda: pipeline.evaluation_dataset(train, config, cache=False)  # noqa: E731
            extra: dict[str, Any] = {"view": 0}
        else:
            seed = config.data.seed + 1000 * view
            make = lambda seed=seed: pipeline.augmented_view_dataset(train, config, seed)  # noqa: E731
            extra = {
                "view": view,
                "seed": config.data.seed,
                "augmentation": {k: v for k, v in dataclasses.asdict(config.train).items() if k.startswith("aug_")},
            }
        views.append(
            features.cached_features(bottom, make, paths, cache_dir, f"train-view{view}", dtype, **settings, **extra)
        )
    return views, val32


def cache_stage(
    config: Config, models: tuple[Any, Any], layer: str, frames: tuple[pd.DataFrame, pd.DataFrame], cache: tuple
) -> tuple[Stage, Any]:
    """Stage 1 on cached features of the layers below ``layer``, and - when no fine-tune follows - a function
    giving the float32 validation probabilities from the float32 top (else None).

    ``models`` is (model in the training precision, float32 model), ``frames`` (train, val) and ``cache``
    (folder, cache-key settings, training precision).
    """
    cfg = config.train
    (model, model32), (train, val), (cache_dir, settings, precision) = models, frames, cache
    labels = train["label"].to_numpy()
    bottom, top = split_model(model, layer)
    bottom32, top32 = split_model(model32, layer)
    views, val32 = cached_views(config, bottom, bottom32, train, val, cache_dir, settings, precision)
    train_ds = features.feature_dataset(views, labels, cfg.batch_size, shuffle=True, seed=config.data.seed, repeat=True)
    val_ds = features.feature_dataset([val32], val["label"].to_numpy(), cfg.batch_size)
    steps = math.ceil(len(train) * len(views) / cfg.batch_size)
    stage = Stage(
        "stage1-cache", top, train_ds, val_ds, cfg.epochs, steps, cfg.learning_rate, cfg.stage1_trainable_from
    )
    if cfg.finetune_epochs == 0:
        return stage, lambda: np.asarray(top32.predict(val_ds, verbose=0), np.float32).ravel()
    return stage, None


def build_stages(
    config: Config,
    model,
    model32,
    train: pd.DataFrame,
    val: pd.DataFrame,
    run_dir: Path,
    weights: str | None,
    precision: str,
) -> tuple[list[Stage], Any]:
    """The configured stages, and a function giving float32 validation probabilities after training."""
    cfg = config.train
    batches = math.ceil(len(train) / cfg.batch_size)
    stages: list[Stage] = []
    val_scores = None
    if cfg.feature_cache:
        layer = layer_before(model, cfg.stage1_trainable_from) if cfg.cache_layer == "auto" else cfg.cache_layer
        cache_dir = Path(resolve_path(cfg.cache_dir) if cfg.cache_dir else run_dir / "features")
        cache = (cache_dir, cache_settings(config, weights, layer, precision), precision)
        stage, val_scores = cache_stage(config, (model, model32), layer, (train, val), cache)
        stages.append(stage)
    else:
        stages.append(
            Stage(
                "stage1",
                *pipeline.training_inputs(model, train, val, config),
                cfg.epochs,
                batches,
                cfg.learning_rate,
                cfg.stage1_trainable_from,
            )
        )
    if cfg.finetune_epochs > 0:
        stages.append(
            Stage(
                "stage2-finetune",
                *pipeline.training_inputs(model, train, val, config),
                cfg.finetune_epochs,
                cfg.finetune_steps or batches,
                cfg.finetune_learning_rate,
                config.model.trainable_from,
            )
        )
    if val_scores is None:

        def val_scores() -> np.ndarray:
            """Float32 probabilities of the validation rows from the saved (float32) model."""
            frame = pipeline.score_frame(model32, val, config.data.image_size, config.model.backbone, cfg.batch_size)
            return frame["probability"].to_numpy()

    return stages, val_scores


def check_stage_config(config: Config) -> None:
    """Stage 1 may train no deeper than the final model; without stage 2 they must be the same layer."""
    cfg = config.train
    check_strategy(cfg.strategy)
    if cfg.finetune_epochs == 0 and cfg.stage1_trainable_from != config.model.trainable_from:
        raise ValueError(
            f"[train] stage1_trainable_from = '{cfg.stage1_trainable_from}' but [model] trainable_from = "
            f"'{config.model.trainable_from}' and no fine-tune stage (finetune_epochs = 0); make them equal"
        )


def finish_run(run_dir: Path, config: Config, model32, val: pd.DataFrame, probabilities: np.ndarray) -> dict:
    """Calibrate (folded into the model), save model.keras, choose threshold.json and write metrics/plots.

    ``val`` holds the validation rows with their ``condition`` (``shift.shift_frame``: plain, then the
    shifted renderings when ``data.shift_copies`` > 0) and ``probabilities`` their raw scores.
    Calibration and the threshold are chosen on all of these rows (the shift validation); metrics.json
    reports the plain validation images and, under ``shift_validation``, the pooled set and every
    condition at the same threshold. Returns the metrics.
    """
    from pneumocxr.evaluate.figures import save_figure
    from pneumocxr.evaluate.threshold import choose_threshold
    from pneumocxr.train.calibrate import apply_calibration, fit_calibration, fold_into_model

    rule = config.threshold
    calibration = fit_calibration(val["label"], probabilities, rule.calibration)
    if calibration["method"] != "none":
        fold_into_model(model32, calibration)
        probabilities = apply_calibration(probabilities, calibration)
    set_trainable_from(model32, config.model.trainable_from)
    model32.save(run_dir / "model.keras")
    scored = val.assign(probability=probabilities)
    threshold = choose_threshold(
        scored["label"],
        scored["probability"],
        rule.rule,
        rule.target,
        rule.tolerance,
        groups=scored["condition"].to_numpy(),
    )
    copies = config.data.shift_copies
    runs.save_threshold(
        run_dir,
        {
            **threshold,
            "dataset": config.data.dataset,
            "split": "val",
            "validation": shift_description(copies, config.data.shift_splits),
            "calibration": calibration,
        },
    )
    threshold = runs.load_threshold(run_dir)
    extra = (
        {"shift_validation": shift_summary(scored, threshold.threshold, config)}
        if copies or config.data.shift_splits
        else {}
    )
    plain = scored[scored["condition"] == PLAIN].drop(columns="condition")
    metrics = write_evaluation(run_dir, config, plain, threshold, run_dir, "val", config.data.dataset, extra=extra)
    save_figure(plot_history(runs.history_records(run_dir)), run_dir / "plots" / "history.png")
    return metrics


def build_models(config: Config, weights: str | None, precision: str) -> tuple[Any, Any]:
    """``(model to train, float32 model to save)`` from the same weights: one object when training in float32.
    Call inside the strategy scope."""
    with precision_policy("float32"):
        model32 = build_model(config.model, config.data.image_size, weights)
    if precision == "float32":
        return model32, model32
    with precision_policy(precision):
        return build_model(config.model, config.data.image_size, weights), model32


def write_run_manifest(
    run_dir: Path, config: Config, frame: pd.DataFrame, weights: str | None, extra: dict
) -> runs.Manifest:
    """``manifest.json``: the data list hash of ``frame`` (file name, label, split), the weights file, ``extra``,
    and the wall time of every process of the run so far (``clock.wall_time``: resumes included)."""
    data_hash = data_list_hash(
        (Path(p).name, l, s) for p, l, s in frame[["path", "label", "split"]].itertuples(index=False)
    )
    wall_time, parts = clock.wall_time(runs.load_state(run_dir))
    extra = {**extra, "wall_time_s": wall_time, "wall_time_parts": parts}
    weights_file = weights if weights and Path(weights).is_file() else None
    return runs.write_manifest(run_dir, config, data_hash, weights_file, extra)


def train_run(
    config: Config | str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    root: str | os.PathLike | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> Path:
    """Train ``config`` into run directory ``out_dir`` (``resume`` continues an interrupted run); return it."""
    import keras

    started = time.perf_counter()
    run_dir = Path(out_dir)
    config = run_config(config, run_dir, resume)
    check_stage_config(config)
    if resume and runs.load_state(run_dir).finished:
        log.info("%s: run already finished; nothing to resume", run_dir)
        return run_dir
    keras.utils.set_random_seed(config.data.seed)
    frame = pipeline.data_frame(config, root)
    train, _ = split_frames(frame)
    val = validation_rows(frame, config.data.shift_copies, config.data.shift_splits)  # plain, shifted, other splits
    runs.create_run_dir(run_dir, config)
    with clock.timed(run_dir, "setup", since=started):  # data, models, feature cache: every process has its own
        precision = resolve_precision(config.train.mixed_precision)
        strategy = make_strategy(config.train.strategy)
        weights = resolve_weights(config.model.weights, config.model.backbone)
        log.info(
            "run %s: %d train / %d val images (%d shifted copies each), precision %s, strategy %s "
            "(%d replica(s)), weights %s",
            *(run_dir, len(train), int((val["condition"] == PLAIN).sum()), config.data.shift_copies, precision),
            *(config.train.strategy, strategy.num_replicas_in_sync, weights),
        )
        with strategy.scope():
            model, model32 = build_models(config, weights, precision)
            stages, val_scores = build_stages(config, model, model32, train, val, run_dir, weights, precision)
    with strategy.scope():
        previous = [None, *(stage.name for stage in stages[:-1])]
        summaries = [
            fit_stage(stage, model, run_dir, config, train["label"], extra_callbacks, previous=before)
            for stage, before in zip(stages, previous)
        ]
    with clock.timed(run_dir, "finish"):
        if model is not model32:
            model32.set_weights(model.get_weights())
        metrics = finish_run(run_dir, config, model32, val, val_scores())
    extra = {
        "precision": precision,
        "strategy": config.train.strategy,
        "replicas": int(strategy.num_replicas_in_sync),
        "n_train": len(train),
        "n_val": int((val["condition"] == PLAIN).sum()),
        "n_val_shifted": int((val["condition"] != PLAIN).sum()),
        "stages": summaries,
        "val_auc": metrics["auc"],
    }
    manifest = write_run_manifest(run_dir, config, frame, weights, extra)
    runs.save_state(run_dir, runs.load_state(run_dir).model_copy(update={"finished": True}))
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # BackupAndRestore's per-epoch state, spent
    log.info("run %s finished: AUC %.4f, %.0f s of wall time", run_dir, metrics["auc"], manifest.wall_time_s)
    return run_dir
