"""Input step, one-time preparation: decode every image of a config's data once into uint8 TFRecord shards.

``prepare(config)`` takes the rows the config trains and evaluates on (``pipeline.data_frame``: the
dataset, its patient-wise splits and limits), decodes each image once through the one preprocessing
function (``preprocess.load_pixels`` + ``resize_pixels``, in ``pipeline.grey_images``: parallel decode
on every core) and writes its uint8 view (``pipeline.uint8_view``) at the training size into
``SPLIT-NNNNN.tfrecord`` shards, with labels, patient ids, an ``index.csv`` and the data list hash in
``prepare.json`` (format in ``pneumocxr.train.shards``). Memory is flat in the number of images: images stream
from the decoder to the current shard. Each shard is written to ``.partial`` and renamed when whole, so
running ``prepare`` again after an interruption skips the finished shards and resumes at the first missing
one; a directory prepared for another image list or size is refused, never mixed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pneumocxr.config import Config, resolve_path
from pneumocxr.provenance import data_list_hash
from pneumocxr.train import pipeline, shards

log = logging.getLogger(__name__)

SHARD_SIZE = 1024  # images per shard: 51 MB at 224 px


def plan(frame: pd.DataFrame, shard_size: int) -> pd.DataFrame:
    """The frame in shard order (split by split, frame order within) with a ``shard`` file name column."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1 image, got {shard_size}")
    parts = []
    for split, part in frame.groupby("split", sort=True):
        part = part.copy()
        part["shard"] = [shards.shard_name(str(split), i // shard_size) for i in range(len(part))]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def manifest_for(config: Config, planned: pd.DataFrame) -> dict[str, Any]:
    """``prepare.json`` contents (``complete`` False) for a planned frame."""
    splits = {}
    for split, part in planned.groupby("split", sort=True):
        splits[str(split)] = {
            "rows": len(part),
            "key": shards.split_key(part),
            "shards": list(dict.fromkeys(part["shard"])),
        }
    data_hash = data_list_hash(
        (shards.image_name(p), label, split)
        for p, label, split in planned[["path", "label", "split"]].itertuples(index=False)
    )
    return {
        "format": shards.FORMAT,
        "dataset": config.data.dataset,
        "image_size": config.data.image_size,
        "pixels": "uint8 grey, round(255 * resize_pixels(load_pixels(path)))",
        "data_list_hash": data_hash,
        "rows": len(planned),
        "splits": splits,
        "complete": False,
    }


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1))
    os.replace(partial, path)


def start(out: Path, manifest: dict[str, Any], planned: pd.DataFrame) -> None:
    """Create ``out`` with its manifest and index, or check an existing one was planned the same way."""
    existing = shards.read_manifest(out) if out.is_dir() else None
    if existing is not None:
        same = {k: existing.get(k) for k in ("image_size", "data_list_hash", "splits")}
        if same != {k: manifest[k] for k in same}:
            raise FileExistsError(
                f"{out}: already holds shards of another image list, size or shard size; "
                "choose another --out or delete it"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    index = planned.assign(name=planned["path"].map(shards.image_name))
    index[["name", "label", "patient_id", "split", "shard"]].to_csv(out / (shards.INDEX + ".partial"), index=False)
    os.replace(out / (shards.INDEX + ".partial"), out / shards.INDEX)
    write_json(out / shards.MANIFEST, manifest)


def write_shards(out: Path, pending: pd.DataFrame, size: int, progress) -> None:
    """Decode ``pending`` rows (whole shards, in order) in parallel and write each shard atomically."""
    import tensorflow as tf

    images = pipeline.grey_images(pending["path"].tolist(), size).prefetch(tf.data.AUTOTUNE)
    writer, current, partial = None, None, None
    try:
        for row, pixels in zip(pending.itertuples(index=False), images.as_numpy_iterator()):
            if row.shard != current:
                if writer is not None:
                    writer.close()
                    os.replace(partial, out / current)
                current, partial = row.shard, out / (row.shard + ".partial")
                writer = tf.io.TFRecordWriter(str(partial))
            writer.write(shards.image_record(shards.image_name(row.path), row.label, row.patient_id, pixels))
            progress.update(1)
        if writer is not None:
            writer.close()
            os.replace(partial, out / current)
            writer = None
    except tf.errors.OpError as exc:
        raise ValueError(
            f"{out}: prepare stopped at shard {current} ({exc.message}); finished shards are kept, "
            "run prepare again to resume after fixing the image"
        ) from exc
    finally:
        if writer is not None:
            writer.close()


def prepare(
    config: Config,
    out: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    shard_size: int = SHARD_SIZE,
    show_progress: bool = True,
) -> Path:
    """Write (or finish) the shards of ``config``'s data into ``out`` (default ``[data] shards``); return it.

    Raises ``ValueError`` when no output folder is given or an image cannot be decoded (finished
    shards are kept), ``FileExistsError`` when ``out`` holds shards of another image list or size.
    """
    from tqdm import tqdm

    target = out or config.data.shards
    if not target:
        raise ValueError("no shard folder: pass --out or set [data] shards in the config")
    out = resolve_path(target)
    planned = plan(pipeline.data_frame(config, root), shard_size)
    manifest = manifest_for(config, planned)
    start(out, manifest, planned)
    done = {name for name in set(planned["shard"]) if (out / name).is_file()}
    pending = planned[~planned["shard"].isin(done)]
    log.info(
        "prepare %s: %d images, %d shards (%d already written)",
        out,
        len(planned),
        planned["shard"].nunique(),
        len(done),
    )
    with tqdm(
        total=len(planned),
        initial=len(planned) - len(pending),
        unit="img",
        disable=not show_progress,
        desc=f"prepare {out.name}",
    ) as progress:
        write_shards(out, pending, config.data.image_size, progress)
    write_json(out / shards.MANIFEST, {**manifest, "complete": True})
    return out


def shard_bytes(directory: str | os.PathLike) -> int:
    """Bytes of the finished shard files in ``directory``."""
    return int(sum(p.stat().st_size for p in Path(directory).glob("*.tfrecord")))


def read_back(directory: str | os.PathLike, split: str) -> np.ndarray:
    """All images of one prepared split as an (N, size, size, 1) uint8 array, in shard order (tests, tools)."""
    manifest = shards.read_manifest(directory)
    if manifest is None or split not in manifest["splits"]:
        raise FileNotFoundError(f"{directory}: split '{split}' is not prepared")
    files = [str(Path(directory) / name) for name in manifest["splits"][split]["shards"]]
    return np.stack([image for image, _ in shards.shard_dataset(files, manifest["image_size"]).as_numpy_iterator()])
