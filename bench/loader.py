"""Benchmark, training input pipeline: the package's tf.data pipeline with augmentation layers against the
classic project's ``ImageDataGenerator.flow_from_dataframe`` with its augmentation, on the same images.

Both read and decode the JPEGs from disk (tf.data without its in-memory cache), resize to 224 px,
augment and apply VGG16's normalisation; full passes over the images, the loaders taking turns.
The tf.data pipeline from its filled in-memory cache (what every later epoch costs) is reported beside it,
and the same without augmentation, which shows what the augmentation layers cost.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from typing import Any

import pandas as pd

from bench.timing import ratio, take_turns


def drain(batches, n_batches: int | None = None) -> int:
    """Images in the next ``n_batches`` batches of an iterable (all when None), consuming no more."""
    count = 0
    for batch in itertools.islice(batches, n_batches):
        images = batch[0] if isinstance(batch, tuple) else batch
        count += int(images.shape[0])
    return count


def tfdata_batches(frame: pd.DataFrame, batch_size: int, cache: bool, seed: int = 0, augment: bool = True):
    """The package's training pipeline over ``frame``: decode, resize, augment, normalise, batch (one pass)."""
    from pneumocxr.config import TrainConfig
    from pneumocxr.train import pipeline
    from pneumocxr.train.augment import augmentation_model

    augment = augmentation_model(TrainConfig(), seed) if augment else None
    return pipeline.image_dataset(
        frame["path"].tolist(),
        frame["label"].tolist(),
        size=224,
        backbone="vgg16",
        batch_size=batch_size,
        augment=augment,
        shuffle=True,
        seed=seed,
        cache=cache,
    )


def measure_loaders(frame: pd.DataFrame, batch_size: int = 32, rounds: int = 2) -> dict[str, Any]:
    """Images/s of tf.data (from disk, and from its cache) and of ImageDataGenerator over ``frame``.

    The loaders take turns, one full pass over the images each per round, for ``rounds`` rounds. Each
    tf.data pass runs a fresh iterator to its end, so no loader prefetches during another's turn; the
    cached pipeline first fills its in-memory cache in an untimed pass.
    """
    from pneumocxr.train.augment import classic_imagedatagenerator

    n_batches = -(-len(frame) // batch_size)
    with contextlib.redirect_stdout(io.StringIO()):  # keras prints "Found N non-validated image filenames."
        generator = classic_imagedatagenerator(frame, size=224, batch_size=batch_size)
    from_disk = tfdata_batches(frame, batch_size, cache=False)
    from_cache = tfdata_batches(frame, batch_size, cache=True)
    plain = tfdata_batches(frame, batch_size, cache=True, augment=False)
    drain(from_cache), drain(plain)  # fill the caches
    passes = {
        "tfdata": lambda _: drain(from_disk),
        "cached": lambda _: drain(from_cache),
        "cached_no_augmentation": lambda _: drain(plain),
        "imagedatagenerator": lambda _: drain(generator, n_batches),
    }
    seconds, counts = take_turns(passes, [None] * rounds)
    rate = {name: sum(counts[name]) / seconds[name] for name in passes}
    result = {
        "loader_images": len(frame),
        "loader_batch_size": batch_size,
        "loader_passes": rounds,
        "loader_img_s": rate["tfdata"],
        "loader_cached_img_s": rate["cached"],
        "loader_cached_no_augmentation_img_s": rate["cached_no_augmentation"],
        "loader_imagedatagenerator_img_s": rate["imagedatagenerator"],
    }
    result["loader_ratio_vs_imagedatagenerator"] = ratio(
        result["loader_img_s"], result["loader_imagedatagenerator_img_s"]
    )
    result["loader_cached_ratio_vs_imagedatagenerator"] = ratio(
        result["loader_cached_img_s"], result["loader_imagedatagenerator_img_s"]
    )
    return result
