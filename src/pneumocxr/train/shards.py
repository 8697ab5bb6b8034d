"""Input step, prepared shards: the uint8 training view of a dataset's images in TFRecord files, and reading them.

``pneumocxr prepare`` (``pneumocxr.train.prepare``) writes a shard directory once per dataset and config::

    prepare.json            format, dataset, image size, data list hash, per split: rows, key, shard files
    index.csv               one row per image in shard order: name, label, patient_id, split, shard
    SPLIT-NNNNN.tfrecord    one ``tf.train.Example`` per image: ``image`` (size * size raw uint8 bytes,
                            row-major grey), ``label`` (int64), ``name`` and ``patient_id`` (bytes)

Why TFRecord and not ``tf.data.Dataset.save``/``snapshot``: a TFRecord shard is a plain sequence of
records readable by any TensorFlow version (``save``'s format is tied to the TF release), each shard is
written to ``.partial`` and renamed when whole, so an interrupted ``prepare`` resumes at the first
missing shard, and the files interleave, shuffle and stream with constant memory.

A frame (one split) is read from shards only when its ordered (name, label, patient_id) rows hash to
the key ``prepare`` recorded for that split at the same image size; otherwise the image files are
read, so a changed data list or size never silently trains on stale pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MANIFEST = "prepare.json"
INDEX = "index.csv"
FORMAT = 1
SHUFFLE_BUFFER = 2048  # images; 2048 x 224 x 224 bytes = 103 MB of host RAM at most


def image_name(path: str | os.PathLike) -> str:
    """The name an image is recorded under: its file name."""
    return Path(str(path)).name


def split_key(frame: pd.DataFrame) -> str:
    """SHA-256 over the frame's ordered (file name, label, patient_id) rows: which images, in which order."""
    digest = hashlib.sha256()
    for path, label, patient in frame[["path", "label", "patient_id"]].itertuples(index=False):
        digest.update(f"{image_name(path)}\t{int(label)}\t{patient}\n".encode())
    return digest.hexdigest()


def shard_name(split: str, number: int) -> str:
    """File name of shard ``number`` of ``split``."""
    return f"{split}-{number:05d}.tfrecord"


def image_record(name: str, label: int, patient_id: str, pixels: np.ndarray) -> bytes:
    """One serialised ``tf.train.Example`` of a (size, size[, 1]) uint8 grey image and its row."""
    import tensorflow as tf

    if pixels.dtype != np.uint8:
        raise ValueError(f"{name}: shard pixels must be uint8, got {pixels.dtype}")
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
        "patient_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(patient_id).encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_record(serialized, size: int):
    """A serialised record -> ((size, size, 1) uint8 image, (1,) float32 label), as tf ops."""
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    parsed = tf.io.parse_single_example(serialized, spec)
    image = tf.reshape(tf.io.decode_raw(parsed["image"], tf.uint8), (size, size, 1))
    return image, tf.reshape(tf.cast(parsed["label"], tf.float32), (1,))


def read_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The shard directory's ``prepare.json`` (None when absent)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path}: shard format {manifest.get('format')} is not {FORMAT}; run `pneumocxr prepare` again"
        )
    return manifest


def find_shards(directory: str | os.PathLike | None, frame: pd.DataFrame, size: int) -> list[str] | None:
    """The shard files holding exactly ``frame`` (one split, same order) at ``size`` px, else None.

    None (with the reason logged) when no shards are configured or prepared, ``prepare`` has not
    finished, the frame spans several splits, or its rows or the size differ from what was prepared.
    """
    if not directory or frame.empty:
        return None
    manifest = read_manifest(directory)
    splits = frame["split"].unique() if "split" in frame else []
    reason = None
    if manifest is None:
        reason = "not prepared (run `pneumocxr prepare`)"
    elif not manifest.get("complete"):
        reason = "prepare has not finished (run it again to resume)"
    elif len(splits) != 1 or splits[0] not in manifest["splits"]:
        reason = f"split(s) {list(splits)} not prepared as one split"
    elif manifest["image_size"] != size:
        reason = f"prepared at {manifest['image_size']} px, {size} px wanted"
    elif manifest["splits"][splits[0]]["key"] != split_key(frame):
        reason = f"split '{splits[0]}' holds a different image list"
    if reason:
        log.info("shards %s: %s; reading image files", directory, reason)
        return None
    return [str(Path(directory) / name) for name in manifest["splits"][splits[0]]["shards"]]


def shard_dataset(files: list[str], size: int, shuffle: bool = False, seed: int = 0):
    """A ``tf.data.Dataset`` of ((size, size, 1) uint8, (1,) float32 label) records from ``files``.

    In file and record order unless ``shuffle``: then the shard order is shuffled, 8 shards are
    interleaved and records pass a ``SHUFFLE_BUFFER`` shuffle (reshuffled every epoch, ``seed`` fixed).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    if shuffle:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)), num_parallel_calls=autotune)
    else:
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=None)
    ds = ds.map(lambda record: parse_record(record, size), num_parallel_calls=autotune)
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return ds
