"""Training step, CPU path: the frozen layers' outputs computed once per image view and cached as .npy.

The frozen bottom of the model (image -> ``cache_layer``) is the expensive part of a forward pass; its
outputs do not change while only the top trains, so they are computed once - from the prepared shards when
``[data] shards`` holds the split, else from the image files - for view 0 (the plain
image) and, for the training split, views 1.. of randomly augmented images - written batch by batch
to a memory-mapped ``.npy`` (float16 under mixed precision), and the top is trained on them. The file
name is a hash of everything that decides the numbers (image list, backbone, weights, layer, size,
precision, view and augmentation), so runs and sweeps sharing ``cache_dir`` reuse each other's work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


PIXEL_VIEW = "uint8"  # the images features are computed from: pipeline.uint8_view, from shards or files alike


def cache_key(paths: Sequence[str], **settings: Any) -> str:
    """Short SHA-256 over the ordered image paths and the settings that decide the features.

    The pixel view (``PIXEL_VIEW``) is part of the key; whether the pixels came from prepared shards
    or image files is not, since both give identical values (``pipeline.image_dataset``).
    """
    settings = {"pixels": PIXEL_VIEW, **settings}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in paths:
        digest.update(f"{path}\n".encode())
    return digest.hexdigest()[:20]


def compute_features(
    bottom, dataset, n: int, out_path: str | os.PathLike, dtype: str = "float32", progress_every: int = 50
) -> np.ndarray:
    """Run ``bottom`` over ``dataset`` (batches of model inputs, optionally with labels) into ``out_path``.

    Written to ``out_path + '.partial'`` and renamed when complete, so an interrupted run never leaves
    a cache that looks finished. Returns the read-only memory map.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shape = (n, *[int(d) for d in bottom.output.shape[1:]])
    partial = out_path.with_name(out_path.name + ".partial")
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
    import tensorflow as tf

    forward = tf.function(lambda images: bottom(images, training=False), reduce_retracing=True)
    start, started = 0, time.perf_counter()
    for step, batch in enumerate(dataset):
        images = batch[0] if isinstance(batch, tuple) else batch
        values = np.asarray(forward(images), dtype=np.float32)
        if not np.isfinite(values).all() or (dtype == "float16" and np.abs(values).max() > 65000):
            raise ValueError(f"{out_path}: feature values overflow {dtype}; set [train] mixed_precision = 'float32'")
        array[start : start + len(values)] = values.astype(dtype)
        start += len(values)
        if progress_every and (step + 1) % progress_every == 0:
            rate = start / (time.perf_counter() - started)
            log.info("features %s: %d/%d images (%.1f img/s)", out_path.name, start, n, rate)
    if start != n:
        raise ValueError(f"{out_path}: dataset gave {start} images, expected {n}")
    array.flush()
    del array
    os.replace(partial, out_path)
    return np.load(out_path, mmap_mode="r")


def cached_features(
    bottom,
    make_dataset,
    paths: Sequence[str],
    cache_dir: str | os.PathLike,
    name: str,
    dtype: str = "float32",
    **settings: Any,
) -> np.ndarray:
    """The features of ``paths`` from ``cache_dir`` when cached under the same key, else computed now.

    ``make_dataset()`` builds the input batches only when they are needed.
    """
    key = cache_key(paths, dtype=dtype, **settings)
    path = Path(cache_dir) / f"{name}-{key}.npy"
    if path.is_file():
        log.info("features: reusing %s", path)
        return np.load(path, mmap_mode="r")
    started = time.perf_counter()
    features = compute_features(bottom, make_dataset(), len(paths), path, dtype)
    log.info("features: %s, %d images in %.0f s", path.name, len(paths), time.perf_counter() - started)
    return features


def feature_dataset(
    views: Sequence[np.ndarray],
    labels: Sequence[int],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
):
    """A ``tf.data.Dataset`` of (float32 feature batch, float32 label) over every view of every image.

    Views are memory maps of equal shape; batches are gathered from disk on the fly (nothing is
    loaded whole), shuffled across views and images when ``shuffle``.
    """
    import tensorflow as tf

    n_images = len(labels)
    for view in views:
        if len(view) != n_images:
            raise ValueError(f"a feature view has {len(view)} rows but there are {n_images} labels")
    targets = np.asarray(labels, np.float32).reshape(-1, 1)
    feature_shape = views[0].shape[1:]

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(index)  # sorted reads are kinder to a memory map
        rows = index[order]
        batch = np.empty((len(rows), *feature_shape), np.float32)
        for v, view in enumerate(views):
            chosen = rows // n_images == v
            if chosen.any():
                batch[chosen] = view[rows[chosen] % n_images]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return batch[inverse], targets[index % n_images]

    def load(index):
        x, y = tf.numpy_function(gather, [index], (tf.float32, tf.float32), stateful=False)
        x.set_shape((None, *feature_shape))
        y.set_shape((None, 1))
        return x, y

    ds = tf.data.Dataset.range(n_images * len(views))
    if repeat:
        ds = ds.repeat()
    if shuffle:
        ds = ds.shuffle(min(n_images * len(views), 100_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
