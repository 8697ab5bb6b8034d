"""Training crash consistency: backups and checkpoints that a kill cannot leave half-written.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` in place at every epoch end; a kill during
that write leaves a truncated HDF5 file, and every later ``--resume`` fails on it ("bad object header
version number"). Here:

* ``AtomicBackupAndRestore`` writes each epoch's backup (weights + ``training_metadata.json``) into a
  hidden staging folder, fsyncs it, and renames it to ``epoch-NNNNN/`` (a folder rename is atomic), then
  drops all but the ``KEEP`` newest complete backups. On resume it loads the newest complete backup
  that reads; an unreadable one (or a legacy ``latest.weights.h5`` from an older version) is skipped
  with a warning and the one before it is tried; with none readable the stage starts over, with a
  warning - never a run that cannot resume.
* ``AtomicModelCheckpoint``: the best-epoch checkpoint written to a temporary file and renamed.
* ``save_weights_atomic``: ``model.save_weights`` through a temporary file (stage-done weights).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import keras

from pneumocxr.atomic import atomic_path

log = logging.getLogger(__name__)

KEEP = 2  # complete backups kept: the newest, and one to fall back on if it cannot be read
WEIGHTS, METADATA = "latest.weights.h5", "training_metadata.json"


def save_weights_atomic(model, path: str | os.PathLike) -> Path:
    """``model.save_weights(path)`` written to a temporary ``.weights.h5`` beside it, then renamed."""
    with atomic_path(path, suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    return Path(path)


def _fsync_tree(folder: Path) -> None:
    """fsync every file in ``folder`` and the folder itself."""
    for item in folder.iterdir():
        with open(item, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backups are complete or absent (see module doc); epoch-level only."""

    def complete_backups(self) -> list[Path]:
        """Complete backup folders, newest first."""
        root = Path(self.backup_dir)
        if not root.is_dir():
            return []
        return sorted((p for p in root.glob("epoch-*") if p.is_dir() and (p / METADATA).is_file()), reverse=True)

    def _save_model(self) -> None:
        root = Path(self.backup_dir)
        root.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}"
        staging = root / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        self.model.save_weights(filepath=str(staging / WEIGHTS), overwrite=True)
        (staging / METADATA).write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        _fsync_tree(staging)
        shutil.rmtree(root / name, ignore_errors=True)
        os.rename(staging, root / name)
        for old in self.complete_backups()[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
        for leftover in [*root.glob(".epoch-*.staging"), root / WEIGHTS, root / METADATA]:  # interrupted or legacy
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()

    def on_train_begin(self, logs=None) -> None:
        self._load_model()

    def _load_model(self) -> None:
        if not self.model.built:
            raise ValueError("the model must be built before fit() to restore a backup")
        candidates = [(p / WEIGHTS, p / METADATA) for p in self.complete_backups()]
        legacy = Path(self.backup_dir) / WEIGHTS
        if legacy.is_file():
            candidates.append((legacy, Path(self.backup_dir) / METADATA))
        if not candidates:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        variables = list(self.model.weights) + (list(self.model.optimizer.variables) if self.model.optimizer else [])
        initial = [v.numpy() for v in variables]
        for weights, metadata in candidates:
            try:
                epoch = int(json.loads(metadata.read_text())["epoch"])
                self.model.load_weights(str(weights))
            except Exception as exc:
                log.warning(
                    "backup %s cannot be read (%s); trying the previous one",
                    weights.parent,
                    str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__,
                )
                continue
            self.model._initial_epoch = epoch
            log.info("resumed from backup %s (epoch %d)", weights.parent, epoch)
            return
        for variable, value in zip(variables, initial):  # a failed load may have half-assigned them
            variable.assign(value)
        log.warning("no readable backup in %s; this stage starts over", self.backup_dir)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` (fixed file path) that writes a temporary file and renames it into place."""

    def _get_file_path(self, epoch, batch, logs):
        target = Path(self.filepath)
        return str(target.with_name(f".staging-{target.name}"))

    def _save_model(self, epoch, batch, logs):
        staging = Path(self._get_file_path(epoch, batch, logs))
        super()._save_model(epoch, batch, logs)
        if staging.exists():
            with open(staging, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(staging, self.filepath)
