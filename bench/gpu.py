"""`make bench-gpu`: on a GPU, does the model or the input pipeline limit NIH training at 224 px?

Measures, with ``configs/nih-gpu.toml``'s model (VGG16, 224 px, fine-tuned from block3, mixed float16,
augmentation on the device) and batch size:

* train-step images/s: ``fit`` steps of the device-augmented model on one in-memory uint8 batch
  (no input cost), after warm-up steps that compile;
* input images/s: the shard pipeline (``pneumocxr prepare`` output, uint8 grey batches) drained alone;

and says which is lower, i.e. which one limits an epoch. Without a GPU it prints why it cannot measure and
exits 0. Shards: ``--shards DIR`` (prepared with ``pneumocxr prepare --config configs/nih-gpu.toml``);
without them a small set is prepared from the real NIH images under the data root first.

    .venv/bin/python bench/gpu.py [--shards data/shards/nih-224] [--steps 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
__import__("pneumocxr.quiet").quiet.quiet_native_logs()  # TensorFlow's C++ start-up lines are not ours


def train_step_rate(config, steps: int, warmup: int = 5) -> float:
    """Images/s of training steps of the device-augmented VGG16 on one resident uint8 batch."""
    import numpy as np
    import tensorflow as tf

    from pneumocxr.models import build_model, resolve_weights, set_trainable_from
    from pneumocxr.train.augment import device_augmented_model
    from pneumocxr.train.stages import compile_for_training, precision_policy, resolve_precision

    size, batch = config.data.image_size, config.train.batch_size
    with precision_policy(resolve_precision(config.train.mixed_precision)):
        model = build_model(config.model, size, resolve_weights(config.model.weights, config.model.backbone))
    set_trainable_from(model, config.model.trainable_from)
    fitted = device_augmented_model(model, config)
    compile_for_training(fitted, config.train, 1e-5, steps + warmup)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 1), dtype=np.uint8)
    labels = rng.integers(0, 2, (batch, 1)).astype(np.float32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)
    fitted.fit(data, epochs=1, steps_per_epoch=warmup, verbose=0)
    started = time.perf_counter()
    fitted.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / (time.perf_counter() - started)


def input_rate(config, images: int) -> tuple[float, int]:
    """Images/s of the shard pipeline for the training split (uint8 grey batches), and images read."""
    from pneumocxr.train import pipeline

    frame = pipeline.data_frame(config)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    dataset = pipeline.frame_dataset(train, config, shuffle=True, seed=0, repeat=True, output="grey")
    count, started = 0, time.perf_counter()
    for batch, _ in dataset:
        count += int(batch.shape[0])
        if count >= images:
            break
    return count / (time.perf_counter() - started), count


def main(argv: list[str] | None = None) -> int:
    """Measure both rates on a GPU and name the limit; explain and exit 0 without one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(PROJECT_ROOT / "configs" / "nih-gpu.toml"))
    parser.add_argument("--shards", help="prepared shard folder (default: the config's [data] shards)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--input-images", type=int, default=20_000, help="images drained from the shards")
    args = parser.parse_args(argv)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        hint = (
            "nvidia-smi exists: install TensorFlow's CUDA wheels (make bench-gpu does: pip install "
            "'tensorflow[and-cuda]==2.21.0')"
            if shutil.which("nvidia-smi")
            else "this machine has no NVIDIA GPU"
        )
        print(f"bench-gpu: no GPU visible to TensorFlow; nothing measured ({hint}).")
        return 0
    from pneumocxr.config import load_config
    from pneumocxr.train.prepare import prepare
    from pneumocxr.train.shards import read_manifest

    config = load_config(args.config)
    shards = args.shards or config.data.shards
    if not shards or read_manifest(shards) is None or not read_manifest(shards).get("complete"):
        shards = str(Path(tempfile.mkdtemp(prefix="bench-gpu-")) / "shards")
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, limit_per_split=2000))
        print(f"bench-gpu: no finished shards for {args.config}; preparing 2,000 images per split in {shards}")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, shards=shards))
    prepare(config)
    fed, count = input_rate(config, args.input_images)
    trained = train_step_rate(config, args.steps)
    limit = "the model (GPU step)" if trained < fed else "the input pipeline (host CPU)"
    result = {
        "gpus": [g.name for g in gpus],
        "batch_size": config.train.batch_size,
        "train_step_img_s": round(trained, 1),
        "input_img_s": round(fed, 1),
        "input_images": count,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "limit": limit,
    }
    print(json.dumps(result, indent=1))
    print(f"bench-gpu: {trained:,.0f} img/s trained vs {fed:,.0f} img/s fed from shards: {limit} limits an epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
