"""Benchmark model: one VGG16 classifier shared by every measurement, as a run directory.

A finished run (``runs/*/`` with a VGG16 ``model.keras`` and ``threshold.json``) is used when one
exists, so the probabilities are a trained model's; otherwise the project's model builder makes a
VGG16 classifier from the local ImageNet weights (head untrained, fixed seed) and writes it as a
run directory with a 0.5 threshold. Speed and memory do not depend on the head's training.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from pneumocxr import runs
from pneumocxr.config import PROJECT_ROOT, Config, ModelConfig, data_root

WEIGHTS_NAME = "vgg16_imagenet_notop.weights.h5"


def local_vgg16_weights(root: Path | None = None) -> Path:
    """The local ImageNet VGG16 conv weights: ``DATA/weights``, ``DATA/../weights`` or /work/shared/weights."""
    root = root or data_root()
    candidates = [
        root / "weights" / WEIGHTS_NAME,
        root.resolve().parent / "weights" / WEIGHTS_NAME,
        Path("/work/shared/weights") / WEIGHTS_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{candidates[0]}: ImageNet VGG16 weights not found (also looked in {candidates[1:]})")


RUN_FILES = ("config.toml", "model.keras", "threshold.json", "manifest.json")


def is_finished_run(run: Path) -> bool:
    """True when a run directory holds every file inference needs and training marked it finished."""
    if not all((run / name).is_file() for name in RUN_FILES):
        return False
    state = run / "state.json"
    return not state.is_file() or runs.load_state(run).finished


PREFERRED_RUN = "kermany-cpu"  # the project's CPU model (README); used whenever it is finished


def trained_vgg16_run(runs_root: Path = PROJECT_ROOT / "runs") -> Path | None:
    """``runs/kermany-cpu`` when finished, else the most recent finished VGG16 run at 224 px, else None."""
    if is_finished_run(runs_root / PREFERRED_RUN):
        return runs_root / PREFERRED_RUN
    finished = []
    for run in runs_root.glob("*/"):
        if not is_finished_run(run):
            continue
        try:
            config = runs.load_run_config(run)
        except Exception:
            continue
        if config.model.backbone == "vgg16" and config.data.image_size == 224:
            finished.append(run)
    return max(finished, key=lambda r: (r / "model.keras").stat().st_mtime) if finished else None


def bench_config(weights: Path, trainable_from: str = "none") -> Config:
    """The benchmark's config: VGG16 at 224 px from local weights, default head."""
    return replace(
        Config(name="bench"), model=ModelConfig(backbone="vgg16", weights=str(weights), trainable_from=trainable_from)
    )


def build_classifier(config: Config):
    """The project's VGG16 classifier for ``config`` (``pneumocxr.models.build_model``)."""
    from pneumocxr.models import build_model

    return build_model(config.model, config.data.image_size)


def write_bench_run(run_dir: str | os.PathLike, weights: Path) -> Path:
    """A run directory (config, model, 0.5 threshold, manifest) holding an ImageNet-VGG16 classifier."""
    import keras

    keras.utils.set_random_seed(0)
    config = bench_config(weights)
    run = runs.create_run_dir(run_dir, config)
    build_classifier(config).save(run / "model.keras")
    runs.save_threshold(run, {"threshold": 0.5, "rule": "fixed", "note": "benchmark; head untrained"})
    runs.write_manifest(run, config, data_hash="none (untrained head)", weights_path=str(weights))
    return run


def copy_run(run: Path, target: Path) -> Path:
    """A private copy of a run's inference files, so a retraining cannot change them mid-benchmark."""
    target.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        shutil.copy2(run / name, target / name)
    return target


def benchmark_run(
    workdir: str | os.PathLike,
    root: Path | None = None,
    prefer_trained: bool = True,
    run: str | os.PathLike | None = None,
) -> tuple[Path, str]:
    """The run directory to benchmark (``run`` when given) and a phrase saying where it came from."""
    if run is not None and not is_finished_run(Path(run)):
        raise FileNotFoundError(f"{run}: not a finished run directory (needs {', '.join(RUN_FILES)})")
    trained = Path(run) if run is not None else (trained_vgg16_run() if prefer_trained else None)
    if trained is not None:
        shown = (
            trained.resolve().relative_to(PROJECT_ROOT) if trained.resolve().is_relative_to(PROJECT_ROOT) else trained
        )
        return copy_run(trained, Path(workdir) / "bench-run"), f"trained run {shown}"
    weights = local_vgg16_weights(root)
    return write_bench_run(Path(workdir) / "bench-run", weights), f"ImageNet VGG16 from {weights} (head untrained)"
