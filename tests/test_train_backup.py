"""Training crash consistency (issue 11, class 8): a kill during a backup write never blocks ``--resume``.

A tiny Dense model on random numbers (plumbing: what is tested is which backup a resume restores)
and, marked slow, the real tiny config (configs/tiny-test.toml) with a crafted torn backup.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pneumocxr.train.backup import AtomicBackupAndRestore, AtomicModelCheckpoint

keras = pytest.importorskip("keras")
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny-test.toml"


class Stop(keras.callbacks.Callback):
    """Interrupt (as a kill would) at the start of epoch ``at`` (0-based)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated kill")


class Epochs(keras.callbacks.Callback):
    """Records the epochs a fit really ran."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def small_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def fit(model, backup: Path, *callbacks, epochs: int = 5):
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    model.fit(
        x,
        x.sum(axis=1),
        epochs=epochs,
        batch_size=8,
        verbose=0,
        callbacks=[AtomicBackupAndRestore(str(backup)), *callbacks],
    )


def tear(path: Path) -> None:
    """What a kill during an HDF5 write leaves: the first bytes of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_resume_skips_a_torn_backup_and_restores_the_last_complete_one(tmp_path, caplog):
    backup = tmp_path / "backup"
    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, backup, Stop(3))
    complete = sorted(p.name for p in backup.iterdir())
    assert complete == ["epoch-00002", "epoch-00003"]  # only complete backups, the newest two
    saved = keras.models.clone_model(model)
    saved.set_weights(model.get_weights())
    staging = backup / ".epoch-00004.staging"  # killed while writing the next backup
    staging.mkdir()
    (staging / "latest.weights.h5").write_bytes((backup / "epoch-00003" / "latest.weights.h5").read_bytes()[:100])
    tear(backup / "epoch-00003" / "latest.weights.h5")  # and the newest complete one damaged too
    resumed, epochs = small_model(), Epochs()
    with caplog.at_level("WARNING"):
        fit(resumed, backup, epochs)
    assert epochs.seen == [2, 3, 4]  # restored epoch 2's backup, ran the rest
    assert "epoch-00003 cannot be read" in caplog.text


def test_restored_weights_are_those_of_the_backup(tmp_path):
    backup = tmp_path / "backup"
    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, backup, Stop(2))
    after_two = [w.copy() for w in model.get_weights()]
    resumed = small_model()
    callback = AtomicBackupAndRestore(str(backup))
    callback.set_model(resumed)
    resumed.optimizer.build(resumed.trainable_variables)
    callback.on_train_begin()
    assert resumed._initial_epoch == 2
    for got, want in zip(resumed.get_weights(), after_two):
        np.testing.assert_array_equal(got, want)


def test_a_torn_legacy_backup_starts_the_stage_over_instead_of_failing(tmp_path, caplog):
    """What Keras' own BackupAndRestore left after a kill: a truncated latest.weights.h5 (resume then failed forever)."""
    backup = tmp_path / "backup"
    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            np.zeros((8, 4)),
            np.zeros(8),
            epochs=3,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(str(backup)), Stop(2)],
        )
    tear(backup / "latest.weights.h5")
    fresh = small_model()
    initial = [w.copy() for w in fresh.get_weights()]
    callback = AtomicBackupAndRestore(str(backup))
    callback.set_model(fresh)
    with caplog.at_level("WARNING"):
        callback.on_train_begin()
    assert "no readable backup" in caplog.text and not getattr(fresh, "_initial_epoch", 0)
    for got, want in zip(fresh.get_weights(), initial):  # no half-loaded weights left behind
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:Skipping variable loading")
def test_checkpoint_is_renamed_into_place(tmp_path):
    best = tmp_path / "best.weights.h5"
    model = small_model()
    x = np.random.default_rng(1).random((16, 4), dtype=np.float32)
    model.fit(
        x,
        x.sum(axis=1),
        epochs=2,
        verbose=0,
        validation_data=(x, x.sum(axis=1)),
        callbacks=[AtomicModelCheckpoint(str(best), save_best_only=True, save_weights_only=True)],
    )
    assert best.is_file() and [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]
    small_model().load_weights(best)


@pytest.mark.slow
def test_tiny_run_resumes_after_a_kill_during_the_backup_write(real_data, tmp_path):
    from pneumocxr.cli import main
    from pneumocxr.train.run import train_run

    class AfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt("simulated kill")

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(TINY, run, extra_callbacks=[AfterFirstEpoch()])
    backup = run / "backup" / "stage1-cache"
    complete = backup / "epoch-00001"
    assert (complete / "latest.weights.h5").is_file()
    torn = backup / ".epoch-00002.staging"  # the kill came during the next epoch's backup write
    torn.mkdir()
    (torn / "latest.weights.h5").write_bytes((complete / "latest.weights.h5").read_bytes()[:4096])
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # and a torn legacy file
    assert main(["train", "--out", str(run), "--resume"]) == 0
    history = list(csv.DictReader(open(run / "history.csv")))
    assert [(r["stage"], r["epoch"], r["resumed_from_epoch"]) for r in history][:2] == [
        ("stage1-cache", "1", ""),
        ("stage1-cache", "2", "1"),
    ]
    assert json.loads((run / "state.json").read_text())["finished"]
