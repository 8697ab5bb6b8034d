"""Benchmark, training input pipeline: the package's tf.data pipeline with augmentation layers against the
classic project's ``ImageDataGenerator.flow_from_dataframe`` with its augmentation, on the same images.

Both read and decode the JPEGs from disk (tf.data without its in-memory cache), resize to 224 px,
augment and apply VGG16's normalisation; one pass over the images each, timed end to end. The tf.data
pipeline's second, cached pass (what every later epoch costs) is reported beside it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pandas as pd

from bench.timing import ratio, timed


def drain(batches, n_batches: int | None = None) -> int:
    """Images in the first ``n_batches`` batches of an iterable (all when None)."""
    count = 0
    for index, batch in enumerate(batches):
        if n_batches is not None and index >= n_batches:
            break
        images = batch[0] if isinstance(batch, tuple) else batch
        count += int(images.shape[0])
    return count


def tfdata_batches(frame: pd.DataFrame, batch_size: int, cache: bool, seed: int = 0):
    """The package's training pipeline over ``frame``: decode, resize, augment, normalise, batch."""
    from pneumocxr import pipeline
    from pneumocxr.config import TrainConfig

    augment = pipeline.augmentation_model(TrainConfig(), seed)
    return pipeline.image_dataset(frame["path"].tolist(), frame["label"].tolist(), size=224, backbone="vgg16",
                                  batch_size=batch_size, augment=augment, shuffle=True, seed=seed, cache=cache)


def measure_loaders(frame: pd.DataFrame, batch_size: int = 32) -> dict[str, Any]:
    """Images/s of one pass of tf.data (uncached and cached) and of ImageDataGenerator over ``frame``."""
    from pneumocxr import pipeline

    n_batches = -(-len(frame) // batch_size)
    drain(tfdata_batches(frame.head(batch_size), batch_size, cache=False), 1)  # trace the augmentation once
    n_tfdata, tfdata_s = timed(drain, tfdata_batches(frame, batch_size, cache=False))
    cached = tfdata_batches(frame, batch_size, cache=True)
    drain(cached)  # first pass fills the cache
    n_cached, cached_s = timed(drain, cached)
    with contextlib.redirect_stdout(io.StringIO()):  # keras prints "Found N non-validated image filenames."
        generator = pipeline.classic_imagedatagenerator(frame, size=224, batch_size=batch_size)
    n_idg, idg_s = timed(drain, generator, n_batches)
    result = {
        "loader_images": len(frame),
        "loader_batch_size": batch_size,
        "loader_img_s": n_tfdata / tfdata_s,
        "loader_cached_img_s": n_cached / cached_s,
        "loader_imagedatagenerator_img_s": n_idg / idg_s,
    }
    result["loader_ratio_vs_imagedatagenerator"] = ratio(result["loader_img_s"], result["loader_imagedatagenerator_img_s"])
    result["loader_cached_ratio_vs_imagedatagenerator"] = ratio(result["loader_cached_img_s"],
                                                                result["loader_imagedatagenerator_img_s"])
    return result
