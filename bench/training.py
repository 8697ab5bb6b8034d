"""Benchmark, training: images/s of a training step per freezing policy, and one epoch on the
feature-cache path against one epoch of full forward passes.

Steps: the project's VGG16 classifier (``models.build_model``) compiled as ``train`` compiles it,
in the precision ``train`` would pick on this machine, trained with ``train_on_batch`` on a fixed
batch of real Kermany images (already preprocessed, so only the step is timed).

Epochs: the project default stage 1 (trainable from ``block5_conv1``) on a fixed subset of Kermany
training images. The cache path runs the frozen bottom once over the subset (``features.compute_features``,
the one-off build) and then trains the top on the cached features (``features.feature_dataset``); the
full path trains the same model on augmented images (``pipeline.training_dataset``), paying the frozen
layers' forward pass every step. Epochs are timed after a first epoch of each has traced the graphs and
filled tf.data's cache, the two paths taking turns, then scaled to one epoch of the Kermany training
split (per-image time x split size): the numbers are extrapolated, and the results say so.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.timing import take_turns, timed

POLICIES = ("none", "block5_conv1", "block4_conv1", "all")  # head only ... whole network
BASELINE_POLICY = "all"  # every layer trains: the most expensive step, the one the others are compared to
EPOCH_POLICY = "block5_conv1"  # the project's default stage 1


def precision_for_training() -> str:
    """The Keras dtype policy ``train`` uses on this machine for ``mixed_precision = "auto"``."""
    from pneumocxr.train.stages import resolve_precision

    return resolve_precision("auto")


def classifier(weights: str, trainable_from: str, precision: str, image_size: int = 224):
    """The project's VGG16 classifier, frozen before ``trainable_from``, built under ``precision``."""
    from pneumocxr.config import ModelConfig
    from pneumocxr.models import build_model
    from pneumocxr.train.stages import precision_policy

    with precision_policy(precision):
        return build_model(ModelConfig(weights=weights, trainable_from=trainable_from), image_size, weights)


def compiled(model, steps: int):
    """``model`` compiled exactly as ``train`` compiles a stage (default TrainConfig)."""
    from pneumocxr.config import TrainConfig
    from pneumocxr.train.stages import compile_for_training

    config = TrainConfig()
    compile_for_training(model, config, config.learning_rate, steps)
    return model


def real_batch(frame: pd.DataFrame, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch_size`` images of ``frame`` as preprocessed model inputs, and their labels."""
    from pneumocxr.preprocess import preprocess_file

    rows = frame.head(batch_size)
    images = np.stack([preprocess_file(path, 224, "vgg16") for path in rows["path"]])
    return images, rows["label"].to_numpy(np.float32).reshape(-1, 1)


def measure_steps(weights: str, frame: pd.DataFrame, batch_size: int, steps: int, precision: str) -> dict[str, float]:
    """Training-step images/s for each freezing policy in ``POLICIES``.

    One model per policy, each traced by an untimed step; then the policies take turns, one step
    each per round, for ``steps`` rounds.
    """
    import keras

    keras.backend.clear_session()
    images, labels = real_batch(frame, batch_size)
    models = {policy: compiled(classifier(weights, policy, precision), steps + 1) for policy in POLICIES}
    methods = {
        policy: (lambda _, model=model: model.train_on_batch(images, labels)) for policy, model in models.items()
    }
    take_turns(methods, [None])
    seconds, _ = take_turns(methods, [None] * steps)
    return {policy: steps * batch_size / spent for policy, spent in seconds.items()}


def epoch_runner(model, dataset, steps: int):
    """A function running one ``fit`` epoch of ``steps`` batches (its argument is ignored)."""
    return lambda _: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


def measure_epochs(
    weights: str, frame: pd.DataFrame, batch_size: int, precision: str, workdir: Path, rounds: int = 2
) -> dict[str, Any]:
    """Seconds on ``frame``: building the feature cache, one epoch on it, one epoch of full forward passes.

    After a first, untimed epoch of each (tracing, filling tf.data's cache), the two paths take turns
    for ``rounds`` epochs; the seconds are per epoch.
    """
    import keras

    from pneumocxr.config import Config, DataConfig, ModelConfig, TrainConfig
    from pneumocxr.models import layer_before, split_model
    from pneumocxr.train import features, pipeline

    config = Config(
        name="bench",
        data=DataConfig(image_size=224),
        model=ModelConfig(weights=weights, trainable_from=EPOCH_POLICY),
        train=TrainConfig(batch_size=batch_size, stage1_trainable_from=EPOCH_POLICY),
    )
    steps = math.ceil(len(frame) / batch_size)
    labels = frame["label"].to_numpy()
    dtype = "float32" if precision == "float32" else "float16"

    keras.backend.clear_session()
    cache_model, full_model = (classifier(weights, EPOCH_POLICY, precision) for _ in range(2))
    layer = layer_before(cache_model, EPOCH_POLICY)
    bottom, top = split_model(cache_model, layer)
    cache, build_s = timed(
        features.compute_features,
        bottom,
        pipeline.evaluation_dataset(frame, config, cache=False),
        len(frame),
        workdir / "features.npy",
        dtype,
        0,
    )
    cached = features.feature_dataset([cache], labels, batch_size, shuffle=True, repeat=True)
    methods = {
        "cache": epoch_runner(compiled(top, (rounds + 1) * steps), cached, steps),
        "full": epoch_runner(
            compiled(full_model, (rounds + 1) * steps), pipeline.training_dataset(frame, config, repeat=True), steps
        ),
    }
    take_turns(methods, [None])
    seconds, _ = take_turns(methods, [None] * rounds)
    return {
        "cache_build_s": build_s,
        "cache_epoch_s": seconds["cache"] / rounds,
        "full_epoch_s": seconds["full"] / rounds,
        "cache_layer": layer,
    }


def kermany_train_size(root: Path) -> int:
    """Images in the Kermany training split the project trains on (patient-wise split of the official train folder)."""
    from pneumocxr.datasets import load_kermany, with_images

    df = with_images(load_kermany(root))
    return int((df["split"] == "train").sum())


def measure_training(
    weights: str,
    frame: pd.DataFrame,
    root: Path,
    batch_size: int,
    steps: int,
    epoch_images: int,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Training-step images/s per policy and per-epoch seconds of both paths, extrapolated to Kermany train.

    ``weights`` is the ImageNet VGG16 weights file every model starts from.
    """
    precision = precision_for_training()
    rates = measure_steps(weights, frame, batch_size, steps, precision)
    subset = frame.head(epoch_images).reset_index(drop=True)
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        measured = measure_epochs(weights, subset, batch_size, precision, Path(scratch))
    n_train = kermany_train_size(root)
    scale = n_train / len(subset)
    return {
        "train_precision": precision,
        "train_batch_size": batch_size,
        "train_step_img_s": rates,
        "train_step_baseline_policy": BASELINE_POLICY,
        "epoch_policy": EPOCH_POLICY,
        "cache_layer": measured["cache_layer"],
        "epoch_subset_images": len(subset),
        "epoch_extrapolated_to_images": n_train,
        "cache_build_subset_s": measured["cache_build_s"],
        "cache_epoch_subset_s": measured["cache_epoch_s"],
        "full_epoch_subset_s": measured["full_epoch_s"],
        "cache_build_s": measured["cache_build_s"] * scale,
        "cache_epoch_s": measured["cache_epoch_s"] * scale,
        "full_epoch_s": measured["full_epoch_s"] * scale,
    }
