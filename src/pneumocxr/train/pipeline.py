"""Input pipeline step: file lists or prepared shards -> tf.data batches of model inputs, with training-only augmentation.

    paths ──► decode (load_pixels, parallel) ──► resize_pixels ──► uint8 view ──► cache ──► shuffle ──► batch
    shards (pneumocxr prepare: the same uint8 view) ──────────────────────────────────► shuffle ──► batch
          ──► [0, 1] ──► augment (Keras preprocessing layers, training only) ──► grey_to_model_input ──► prefetch

The decode and the two halves of ``preprocess.to_model_input`` are the one preprocessing function that
inference uses too. Training and its validation read the uint8 view ``round(255 * grey)`` (within half a
grey level of the float image), from shards when ``[data] shards`` holds exactly the split, else from the
files: identical pixels either way, so the in-memory cache holds one byte per pixel. Augmentation
(exposure, contrast, scale, position) works on physical intensities before the backbone's normalisation;
with ``[train] augment_on`` it runs in tf.data on the CPU or inside the model on the GPU
(``augment.device_augmented_model``), the same ``augment.augmentation_model`` layers both ways. In tf.data the
augmentation map runs one batch at a time: its layers draw from seeded, stateful ``keras.random.SeedGenerator``s,
and a parallel map advanced them in whatever order its threads ran, so the same config gave other augmented
images (and another model) in every process; in order, a run is reproducible bit for bit. No horizontal
flip by default: a chest X-ray has laterality (heart on the left, side markers), and a mirrored film is
an image the device never sees. The legacy ``ImageDataGenerator`` survives only as
``augment.classic_imagedatagenerator``, the baseline the benchmark compares against.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pneumocxr.config import Config, DataConfig, data_root, resolve_path
from pneumocxr.preprocess import grey_to_model_input, load_pixels, resize_pixels


def data_frame(config: Config, root: str | os.PathLike | None = None, dataset: str | None = None) -> pd.DataFrame:
    """The images a run uses: the configured loader (patient-wise split), present files, per-split limit."""
    from pneumocxr.datasets import load_dataset, stratified_limit, with_images
    from pneumocxr.datasets.registry import dataset as dataset_row

    data: DataConfig = config.data
    name = dataset or data.dataset
    options: dict[str, Any] = {}
    if dataset_row(name).patient_split:
        options = {"val_fraction": data.val_fraction, "seed": data.seed}
    if name == "nih" and data.nih_images:
        options["images_dir"] = resolve_path(data.nih_images)
    chosen_root = root or (None if data.root == "data" else data.root)
    frame = with_images(load_dataset(name, data_root(chosen_root), **options))
    if frame.empty:
        raise FileNotFoundError(f"{data_root(chosen_root)}: no image files of dataset '{name}' are present")
    return stratified_limit(frame, data.limit_per_split, data.seed).reset_index(drop=True)


def decode_pixels(path, condition=None) -> Any:
    """``load_pixels`` as a tf op: a path string tensor -> (H, W) float32 in [0, 1].

    ``condition`` (a string tensor, optional) renders the image under a shift-validation condition
    (``shift.apply_condition``) before anything else; ``"plain"`` leaves it as read.
    """
    import tensorflow as tf

    if condition is None:
        pixels = tf.numpy_function(lambda p: load_pixels(p.decode()), [path], tf.float32, stateful=False)
    else:
        from pneumocxr.train.shift import apply_condition

        pixels = tf.numpy_function(
            lambda p, c: apply_condition(load_pixels(p.decode()), c.decode(), p.decode()),
            [path, condition],
            tf.float32,
            stateful=False,
        )
    pixels.set_shape([None, None])
    return pixels


def training_inputs(model, train: pd.DataFrame, val: pd.DataFrame, config: Config):
    """(model to fit, repeating training batches, validation batches) for a stage that trains on images.

    With augmentation on the device the batches are uint8 grey and the fitted model is
    ``device_augmented_model(model)``; otherwise ``model`` itself on tf.data-augmented inputs.
    """
    from pneumocxr.train.augment import augments_on_device, device_augmented_model

    if config.train.augment and augments_on_device(config.train):
        return (
            device_augmented_model(model, config),
            frame_dataset(train, config, shuffle=True, seed=config.data.seed, repeat=True, output="grey"),
            frame_dataset(val, config, output="grey"),
        )
    return model, training_dataset(train, config, repeat=True), evaluation_dataset(val, config)


def uint8_view(grey):
    """The stored training view of resized [0, 1] grey images: round(255 * grey) as uint8 (tf op).

    Half a grey level (0.5 / 255) from the float image at most; shards hold exactly these values.
    """
    import tensorflow as tf

    return tf.cast(tf.round(tf.clip_by_value(grey, 0.0, 1.0) * 255.0), tf.uint8)


def sources(paths: Sequence[str], conditions: Sequence[str] | None = None) -> tuple[list[str], ...]:
    """What decodes each image: (paths,) or (paths, shift-validation conditions)."""
    paths = [str(p) for p in paths]
    return (paths,) if conditions is None else (paths, [str(c) for c in conditions])


def grey_images(paths: Sequence[str], size: int, quantize: bool = True, conditions: Sequence[str] | None = None):
    """A ``tf.data.Dataset`` of (size, size, 1) images decoded from ``paths`` in order, in parallel.

    uint8 (``uint8_view``) when ``quantize``, else float32 in [0, 1] (the inference function's values);
    each under its shift-validation condition when ``conditions`` is given.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(sources(paths, conditions))
    return ds.map(lambda *source: decoded(source, size, quantize), num_parallel_calls=tf.data.AUTOTUNE)


def decoded(source, size: int, quantize: bool = True):
    """(path[, condition]) string tensors -> the (size, size, 1) image: uint8 view, or float32 when not
    ``quantize``."""
    grey = resize_pixels(decode_pixels(*source), size)
    return uint8_view(grey) if quantize else grey


def image_dataset(
    paths: Sequence[str],
    labels: Sequence[int] | None = None,
    *,
    size: int = 224,
    backbone: str = "vgg16",
    batch_size: int = 16,
    augment: Any = None,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool | str = True,
    repeat: bool = False,
    quantize: bool = True,
    shards: Sequence[str] | None = None,
    output: str = "model",
    conditions: Sequence[str] | None = None,
):
    """A ``tf.data.Dataset`` of model-input batches (with float32 labels when ``labels`` is given).

    Images come from ``shards`` (files from ``shards.find_shards``, holding exactly these paths) or
    are decoded from ``paths``; both give the same uint8 view (``quantize``; False keeps the float
    values of the inference function). ``cache`` True keeps the decoded uint8 images in memory
    (size * size bytes each; never with shards), a string caches them in that file. ``augment`` is a
    model from ``augmentation_model`` (training only). ``output`` "model" gives (N, size, size, 3)
    float32 backbone inputs; "grey" gives (N, size, size, 1) uint8 batches, unaugmented, for a model
    that augments and normalises on its device (``device_augmented_model``). ``conditions`` gives each
    path a shift-validation condition (``shift.apply_condition``; same length as ``paths``; never from shards).
    """
    import tensorflow as tf

    from pneumocxr.train import shards as shard_io

    autotune = tf.data.AUTOTUNE
    targets = np.zeros(len(paths)) if labels is None else np.asarray(labels)
    targets = targets.astype(np.float32).reshape(-1, 1)
    if shards:
        ds = shard_io.shard_dataset(list(shards), size, shuffle=shuffle, seed=seed).repeat(-1 if repeat else 1)
    elif cache:  # decode once, keep uint8 images, shuffle them every epoch
        images = grey_images(paths, size, quantize, conditions)
        ds = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(targets)))
        ds = ds.cache(cache if isinstance(cache, str) else "").repeat(-1 if repeat else 1)
        if shuffle:
            ds = ds.shuffle(min(len(paths), shard_io.SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    else:  # no cache: shuffle the paths (a buffer of strings, not images), then decode
        ds = tf.data.Dataset.from_tensor_slices((sources(paths, conditions), targets)).repeat(-1 if repeat else 1)
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda source, y: (decoded(source, size, quantize), y), num_parallel_calls=autotune)
    ds = ds.batch(batch_size)
    if output == "model":
        ds = ds.map(
            lambda x, y: (tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else x, y), num_parallel_calls=autotune
        )
        if augment is not None:
            ds = ds.map(lambda x, y: (augment(x, training=True), y))  # in order, not in parallel: see above
        ds = ds.map(lambda x, y: (grey_to_model_input(x, backbone), y), num_parallel_calls=autotune)
    elif output != "grey":
        raise ValueError(f"output '{output}' is unknown; expected 'model' or 'grey'")
    if labels is None:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(autotune)


def frame_dataset(frame: pd.DataFrame, config: Config, **options):
    """``image_dataset`` over a frame's images and labels with the config's size, backbone and batch,
    from the prepared shards (``[data] shards``) when they hold exactly this frame; a ``condition``
    column (shift validation) renders each row under its condition, from the image files."""
    from pneumocxr.train.shards import find_shards
    from pneumocxr.train.shift import rendering

    conditions = [rendering(c) for c in frame["condition"]] if "condition" in frame else None
    files = None
    if config.data.shards and conditions is None:
        files = find_shards(resolve_path(config.data.shards), frame, config.data.image_size)
    return image_dataset(
        frame["path"].tolist(),
        frame["label"].tolist(),
        size=config.data.image_size,
        backbone=config.model.backbone,
        batch_size=config.train.batch_size,
        shards=files,
        conditions=conditions,
        **options,
    )


def training_dataset(frame: pd.DataFrame, config: Config, augment: bool = True, **options):
    """Shuffled, augmented (when ``config.train.augment``) batches of a frame's images and labels."""
    from pneumocxr.train.augment import augmentation_model

    aug = augmentation_model(config.train, config.data.seed) if augment and config.train.augment else None
    return frame_dataset(frame, config, augment=aug, shuffle=True, seed=config.data.seed, **options)


def evaluation_dataset(frame: pd.DataFrame, config: Config, **options):
    """Never-augmented batches of a frame's images and labels, in frame order; a ``condition`` column
    (shift validation) renders each row under its condition."""
    return frame_dataset(frame, config, **options)


def augmented_view_dataset(frame: pd.DataFrame, config: Config, seed: int):
    """One augmented view of every image, in frame order (feature cache views 1..), augmentation ``seed``."""
    from pneumocxr.train.augment import augmentation_model

    return frame_dataset(frame, config, augment=augmentation_model(config.train, seed), cache=False)


def predict_files(
    model,
    paths: Sequence[str | os.PathLike],
    size: int,
    backbone: str,
    batch_size: int = 16,
    conditions: Sequence[str] | None = None,
) -> np.ndarray:
    """Pneumonia probability (float32) for every file, in order: decode, preprocess, predict in batches
    (each file under its shift-validation condition when ``conditions`` is given)."""
    if len(paths) == 0:
        return np.zeros(0, np.float32)
    ds = image_dataset(
        [str(p) for p in paths],
        size=size,
        backbone=backbone,
        batch_size=batch_size,
        cache=False,
        quantize=False,
        conditions=conditions,
    )
    scores = model.predict(ds, verbose=0)
    return np.asarray(scores, np.float32).reshape(len(paths), -1)[:, -1]


def score_frame(model, frame: pd.DataFrame, size: int, backbone: str, batch_size: int = 16) -> pd.DataFrame:
    """A copy of ``frame`` with a ``probability`` column from ``predict_files`` (rows under their
    ``condition`` when the frame has that column)."""
    scored = frame.copy()
    from pneumocxr.train.shift import rendering

    conditions = [rendering(c) for c in scored["condition"]] if "condition" in scored else None
    scored["probability"] = predict_files(model, scored["path"].tolist(), size, backbone, batch_size, conditions)
    return scored
