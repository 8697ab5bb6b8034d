"""Training step: fit a config's model in stages, with checkpoints, resume, precision and strategy by config.

Stage 1 trains the layers from ``train.stage1_trainable_from`` on (the head, and e.g. VGG16 block5):
on cached outputs of the frozen layers when ``train.feature_cache`` (the CPU path, ``features``), else on
augmented images. Stage 2 (``train.finetune_epochs > 0``) unfreezes from ``model.trainable_from`` and
fine-tunes on augmented images with a smaller learning rate. Each stage: Adam (or AdamW/SGD) with a
cosine schedule, class weights, label smoothing, best-on-validation checkpoint, early stopping, one
``history.csv`` row per epoch, and ``BackupAndRestore`` so ``--resume`` continues an interrupted stage at
its next epoch; finished stages are skipped on resume. ``train.run.train_run`` writes the run directory.

Crash consistency (``train.backup``): epoch backups, the best checkpoint, stage weights, ``history.csv``
and ``state.json`` are written to a temporary file or folder and renamed into place, so a kill at any
moment leaves the previous complete version; ``--resume`` restores the newest backup that reads.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumocxr import runs
from pneumocxr.config import Config, TrainConfig
from pneumocxr.train import clock

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored")


def cpu_has_bf16() -> bool:
    """True when the CPU advertises native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str) -> str:
    """The Keras dtype policy for a config value: ``auto`` picks float16 on GPU, bf16 on capable CPUs."""
    if name not in PRECISIONS:
        raise ValueError(f"mixed_precision '{name}' is unknown; expected one of {PRECISIONS}")
    if name != "auto":
        return name
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[str]:
    """Build models under dtype policy ``name`` inside the block; the previous policy is restored after."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_strategy(name: str) -> None:
    """Raise ``ConfigError`` for a strategy that is not offered, saying why and what to do instead.

    ``multi_worker`` was removed: ``tf.distribute.MultiWorkerMirroredStrategy`` with Keras 3 ``model.fit``
    fails (keras-team/keras#20585, reproduced with Keras 3.15 / TF 2.21), and one GPU node with
    ``mirrored`` trains the 112,120 NIH images in minutes per epoch.
    """
    from pneumocxr.config import ConfigError

    if name == "multi_worker":
        raise ConfigError(
            "[train] strategy = 'multi_worker' is not offered: TensorFlow's MultiWorkerMirroredStrategy "
            "fails under Keras 3 model.fit (keras-team/keras#20585); use strategy = 'mirrored' on one "
            "machine with several GPUs (README, 'NIH at full scale')"
        )
    if name not in STRATEGIES:
        raise ConfigError(f"[train] strategy = '{name}' is unknown; expected one of {STRATEGIES}")


def make_strategy(name: str):
    """The ``tf.distribute`` strategy: default, or mirrored over all GPUs (else all logical CPUs)."""
    import tensorflow as tf

    check_strategy(name)
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def class_weights(labels: Any, mode: str) -> dict[int, float] | None:
    """Per-class loss weights: ``balanced`` gives each class half the total weight; ``none`` gives None."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight '{mode}' is unknown; expected 'balanced' or 'none'")
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        raise ValueError(f"training labels hold only class {int(counts.argmax())}; both classes are needed")
    return {c: float(len(labels) / (2 * counts[c])) for c in (0, 1)}


def make_optimizer(config: TrainConfig, learning_rate: float, total_steps: int):
    """Adam / AdamW / SGD-momentum with a constant or cosine-decayed learning rate."""
    import keras

    rate = learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
    elif config.lr_schedule != "constant":
        raise ValueError(f"lr_schedule '{config.lr_schedule}' is unknown; expected 'cosine' or 'constant'")
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=1e-4)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer '{config.optimizer}' is unknown; expected adam, adamw or sgd")


def compile_for_training(model, config: TrainConfig, learning_rate: float, total_steps: int) -> None:
    """Compile with binary cross-entropy (label smoothing per config), AUC and accuracy."""
    import keras

    model.compile(
        optimizer=make_optimizer(config, learning_rate, total_steps),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )


def _history_logger(run_dir: Path, stage: str):
    """A Keras callback appending one ``history.csv`` row per epoch of ``stage`` (resume-safe)."""
    import keras

    class HistoryLogger(keras.callbacks.Callback):
        """Append epoch rows; on a resumed stage drop rows past the restored epoch first."""

        def on_train_begin(self, logs=None):
            self.resumed = int(getattr(self.model, "_initial_epoch", 0) or 0)
            rows = [r for r in runs.read_history(run_dir) if r.stage != stage or r.epoch <= self.resumed]
            runs.write_history(run_dir, rows)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {
                "stage": stage,
                "epoch": epoch + 1,
                "seconds": round(time.perf_counter() - self.started, 1),
                "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)),
                "resumed_from_epoch": self.resumed or None,
                **{k: float(v) for k, v in (logs or {}).items() if k in runs.HISTORY_FIELDS},
            }
            runs.write_history(run_dir, [*runs.read_history(run_dir), row])

    return HistoryLogger()


def checkpoint_threshold(run_dir: Path, stage: str, monitor: str, tolerance: float = 0.0) -> float | None:
    """The value ``stage``'s checkpoint must beat: the best ``monitor`` of earlier stages relaxed by
    ``tolerance``, and the best of this stage's own epochs logged before a resume (whichever is stricter)."""
    rows = [r for r in runs.history_records(run_dir) if r.get(monitor) is not None]
    higher_is_better = not monitor.endswith("loss")
    pick = max if higher_is_better else min
    earlier = [float(r[monitor]) for r in rows if r["stage"] != stage]
    own = [float(r[monitor]) for r in rows if r["stage"] == stage]
    candidates = [pick(earlier) + (-tolerance if higher_is_better else tolerance)] if earlier else []
    candidates += [pick(own)] if own else []
    return pick(candidates) if candidates else None


@dataclass
class Stage:
    """One ``fit``: which model object trains, on what, for how long, from which layer."""

    name: str
    model: Any  # the full model, or its top when training on cached features
    train_data: Any
    val_data: Any
    epochs: int
    steps_per_epoch: int
    learning_rate: float
    trainable_from: str


def load_weights_quietly(model, path: Path) -> None:
    """Load a ``.weights.h5`` into ``model`` without Keras' note that optimizer slots are not restored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _finished_stage(
    stage: Stage, full_model, state: runs.RunState, done_weights: Path, best_path: Path, previous: str | None
) -> runs.StageSummary:
    """A stage finished before a resume: its weights loaded back, its summary marked ``skipped``."""
    load_weights_quietly(full_model, done_weights)
    log.info("stage %s already finished; weights loaded from %s", stage.name, done_weights)
    # a state.json of a run started before summaries were kept: rebuild it (best checkpoint = kept)
    summary = state.stages.get(stage.name) or runs.StageSummary(
        stage=stage.name,
        trainable_from=stage.trainable_from,
        epochs=stage.epochs,
        steps_per_epoch=stage.steps_per_epoch,
        kept=best_path.is_file() or previous is None,
    )
    return summary.model_copy(update={"skipped": True})


def _stage_callbacks(stage: Stage, run_dir: Path, train_cfg: TrainConfig, best_path: Path, extra_callbacks) -> list:
    """Backup for resume, best-on-validation checkpoint (over the whole run), early stopping, NaN stop, history."""
    import keras

    from pneumocxr.train.backup import AtomicBackupAndRestore, AtomicModelCheckpoint

    monitor, mode = train_cfg.monitor, "min" if train_cfg.monitor.endswith("loss") else "max"
    return [
        AtomicBackupAndRestore(str(run_dir / "backup" / stage.name)),
        AtomicModelCheckpoint(
            str(best_path),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=checkpoint_threshold(run_dir, stage.name, monitor, train_cfg.stage_tolerance),
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=train_cfg.early_stopping_patience),
        keras.callbacks.TerminateOnNaN(),
        _history_logger(run_dir, stage.name),
        *extra_callbacks,
    ]


def _keep_best(
    stage: Stage, full_model, best_path: Path, checkpoints: Path, previous: str | None, train_cfg: TrainConfig
) -> bool:
    """After ``fit``: load the stage's best checkpoint and return True; without one (the stage never came
    within ``stage_tolerance`` of the earlier best) put the ``previous`` stage's weights back and return False."""
    if best_path.is_file():
        load_weights_quietly(stage.model, best_path)
        return True
    if previous:
        load_weights_quietly(full_model, checkpoints / f"{previous}-done.weights.h5")
        log.warning(
            "stage %s never came within %g of stage %s's best %s; keeping %s's weights",
            stage.name,
            train_cfg.stage_tolerance,
            previous,
            train_cfg.monitor,
            previous,
        )
    return False


def fit_stage(
    stage: Stage,
    full_model,
    run_dir: Path,
    config: Config,
    labels: Any,
    extra_callbacks=(),
    previous: str | None = None,
) -> runs.StageSummary:
    """Train one stage (skipped when already finished), keep its best epoch, mark it done; return its summary.

    The checkpoint is best-on-validation over the whole run: a stage whose best epoch is not within
    ``train.stage_tolerance`` of the ``previous`` stage's best ``monitor`` value (0: not better than it)
    leaves that stage's weights in place.
    """
    import keras

    from pneumocxr.models import set_trainable_from
    from pneumocxr.train.backup import save_weights_atomic

    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    done_weights = checkpoints / f"{stage.name}-done.weights.h5"
    state = runs.load_state(run_dir)
    best_path = checkpoints / f"{stage.name}-best.weights.h5"
    if stage.name in state.done and done_weights.is_file():
        return _finished_stage(stage, full_model, state, done_weights, best_path, previous)
    train_cfg = config.train
    with clock.timed(run_dir, stage.name) as commit:  # compiling included; summed over the processes training it
        set_trainable_from(full_model, stage.trainable_from)
        compile_for_training(stage.model, train_cfg, stage.learning_rate, stage.epochs * stage.steps_per_epoch)
        epoch_clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: commit())
        callbacks = _stage_callbacks(stage, run_dir, train_cfg, best_path, [epoch_clock, *extra_callbacks])
        log.info(
            "stage %s: %d epoch(s) x %d steps, lr %.1e, trainable from %s, %d trainable tensors",
            *(stage.name, stage.epochs, stage.steps_per_epoch, stage.learning_rate, stage.trainable_from),
            len(stage.model.trainable_weights),
        )
        stage.model.fit(
            stage.train_data,
            validation_data=stage.val_data,
            epochs=stage.epochs,
            steps_per_epoch=stage.steps_per_epoch,
            class_weight=class_weights(labels, train_cfg.class_weight),
            callbacks=callbacks,
            shuffle=False,
            verbose=2,
        )
        improved = _keep_best(stage, full_model, best_path, checkpoints, previous, train_cfg)
        save_weights_atomic(full_model, done_weights)
    state = runs.load_state(run_dir)  # re-read: the clock wrote it since
    summary = runs.StageSummary(
        stage=stage.name,
        trainable_from=stage.trainable_from,
        epochs=stage.epochs,
        steps_per_epoch=stage.steps_per_epoch,
        seconds=round(state.seconds[stage.name], 1),
        kept=improved or previous is None,
    )
    runs.save_state(
        run_dir,
        state.model_copy(update={"done": [*state.done, stage.name], "stages": {**state.stages, stage.name: summary}}),
    )
    log.info("stage %s finished in %.0f s (all processes)", stage.name, summary.seconds)
    return summary


def plot_history(rows: list[dict[str, Any]]):
    """Figure of training/validation loss and AUC per epoch (``runs.history_records``), stages one after another."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    x = np.arange(1, len(rows) + 1)
    for ax, metric, label in ((axes[0], "loss", "binary cross-entropy"), (axes[1], "auc", "ROC AUC")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = [np.nan if r.get(prefix + metric) is None else float(r[prefix + metric]) for r in rows]
            ax.plot(x, values, style, label=f"{'validation' if prefix else 'training'} {metric}")
        for i in range(1, len(rows)):
            if rows[i]["stage"] != rows[i - 1]["stage"]:
                ax.axvline(i + 0.5, color="grey", lw=1, ls=":")
                ax.text(i + 0.6, ax.get_ylim()[1], rows[i]["stage"], va="top", fontsize=8, color="grey")
        ax.set(xlabel="epoch (all stages, in order)", ylabel=label, title=f"{label} per epoch")
        ax.legend()
    return fig
