"""Training: helpers, the feature cache, and real tiny runs on Kermany images (configs/tiny-test.toml via the
``tiny_run`` fixture): run directory contract, reload gives the same numbers, resume, evaluate, mirrored
strategy on two logical CPUs, the image path, and the training notebook executed headless."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from pneumocxr import runs
from pneumocxr.cli import main
from pneumocxr.config import PROJECT_ROOT, ModelConfig, TrainConfig, load_config
from pneumocxr.train import pipeline
from pneumocxr.train.run import RunExistsError, check_stage_config, train_run
from pneumocxr.train.stages import checkpoint_threshold, class_weights, cpu_has_bf16, make_optimizer, resolve_precision

TINY = PROJECT_ROOT / "configs" / "tiny-test.toml"


def test_balanced_class_weights_give_each_class_half_the_weight():
    weights = class_weights([1, 1, 1, 0], "balanced")
    assert weights == pytest.approx({0: 2.0, 1: 4 / 6})
    assert 1 * weights[0] == pytest.approx(3 * weights[1])
    assert class_weights([0, 1], "none") is None
    with pytest.raises(ValueError, match="only class 1"):
        class_weights([1, 1], "balanced")


def test_precision_auto_uses_bf16_on_this_cpu():
    assert resolve_precision("auto") == ("mixed_bfloat16" if cpu_has_bf16() else "float32")
    assert resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="'bf16' is unknown"):
        resolve_precision("bf16")


def test_cosine_schedule_decays_to_five_percent():
    optimizer = make_optimizer(TrainConfig(learning_rate=1e-3), 1e-3, total_steps=100)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(100)) == pytest.approx(5e-5)
    assert isinstance(
        make_optimizer(TrainConfig(optimizer="sgd", lr_schedule="constant"), 0.1, 1), keras.optimizers.SGD
    )


def test_checkpoint_threshold_relaxes_earlier_stages_only(tmp_path):
    (tmp_path / "history.csv").write_text(
        "stage,epoch,val_auc,val_loss\nstage1,1,0.990,0.30\nstage1,2,0.995,0.25\nstage2,1,0.994,0.28\n"
    )
    assert checkpoint_threshold(tmp_path, "stage1", "val_auc") == pytest.approx(0.995)  # resumed stage: its own best
    assert checkpoint_threshold(tmp_path, "stage2", "val_auc", 0.002) == pytest.approx(0.994)  # own 0.994 > 0.993
    assert checkpoint_threshold(tmp_path, "stage2", "val_auc", 0.0) == pytest.approx(0.995)
    assert checkpoint_threshold(tmp_path, "stage3", "val_loss", 0.01) == pytest.approx(0.26)
    assert checkpoint_threshold(tmp_path / "none", "stage1", "val_auc") is None


def test_stage_config_must_agree_without_finetune():
    config = load_config(TINY)
    bad = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, trainable_from="block4_conv1"),
        train=dataclasses.replace(config.train, finetune_epochs=0),
    )
    with pytest.raises(ValueError, match="stage1_trainable_from = 'block5_conv1' but"):
        check_stage_config(bad)


def test_tiny_run_writes_the_run_directory_contract(tiny_run):
    for name in (
        "config.toml",
        "model.keras",
        "threshold.json",
        "history.csv",
        "metrics.json",
        "manifest.json",
        "predictions.csv",
        "plots/history.png",
        "plots/roc.png",
        "plots/calibration.png",
    ):
        assert (tiny_run / name).is_file(), name
    metrics = runs.read_json(tiny_run / "metrics.json")
    for key in (
        "n",
        "prevalence",
        "auc",
        "auc_ci95",
        "threshold",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "npv",
        "accuracy_ci95",
        "ece",
        "subgroups",
    ):
        assert key in metrics, key
    assert metrics["n"] == 32 and metrics["split"] == "val"
    threshold = runs.load_threshold(tiny_run)
    # chosen on the shift validation: 32 plain validation images + 2 shifted renderings of each
    # + the 16 official_val films as a condition of their own
    assert threshold.rule == "worst_group_midpoint" and threshold.split == "val" and threshold.n == 112
    assert threshold.calibration.method == "platt" and threshold.calibration.n == 112
    assert threshold.validation == "shift (2 shifted copies + official_val)"
    shifted = metrics["shift_validation"]
    assert shifted["pooled"]["n"] == 112 and shifted["copies"] == 2
    conditions = {row["condition"]: row["n"] for row in shifted["conditions"]}
    assert conditions["plain"] == 32 and conditions["official_val"] == 16 and conditions["pooled"] == 112
    assert sum(n for c, n in conditions.items() if "/" in c and not c.startswith("all/")) == 64
    # the threshold's worst-condition balanced accuracy is the table's minimum at that threshold
    groups = [
        r
        for r in shifted["conditions"]
        if r["condition"] != "pooled" and not r["condition"].startswith("all/") and 0 < r["n"]
    ]
    assert threshold.criterion_value <= min(r["balanced_accuracy"] for r in groups) + 1e-9
    assert threshold.low <= threshold.threshold <= threshold.high
    assert metrics["threshold"] == threshold.threshold
    manifest = runs.read_json(tiny_run / "manifest.json")
    assert manifest["precision"] == resolve_precision("auto") and manifest["replicas"] == 1
    assert manifest["weights_sha256"] == "a2f51117308129c3de9a523c91d35160eb75a6a9e5db1e2afb4f48e48dfb733a"
    assert [s["stage"] for s in manifest["stages"]] == ["stage1-cache", "stage2-finetune"]
    history = list(csv.DictReader(open(tiny_run / "history.csv")))
    assert [(r["stage"], r["epoch"]) for r in history] == [
        ("stage1-cache", "1"),
        ("stage1-cache", "2"),
        ("stage2-finetune", "1"),
    ]
    assert len(list((tiny_run / "features").glob("train-view*.npy"))) == 2
    assert not (tiny_run / "backup").exists() and json.loads((tiny_run / "state.json").read_text())["finished"]


def test_saved_model_reloads_and_predicts_the_same_numbers(tiny_run):
    model = runs.load_model(tiny_run)
    assert model.get_layer("block5_conv3") is not None and model.layers[-1].compute_dtype == "float32"
    saved = pd.read_csv(tiny_run / "predictions.csv")
    again = pipeline.predict_files(model, saved["path"].tolist(), 64, "vgg16", batch_size=8)
    np.testing.assert_allclose(again, saved["probability"].to_numpy(), atol=1e-5)
    assert saved["probability"].std() > 0  # a trained model, not a constant


def test_evaluate_cli_writes_and_prints_metrics(tiny_run, capsys):
    status = main(
        ["evaluate", str(tiny_run), "--dataset", "kermany", "--split", "official_val", "--json", "--n-boot", "20"]
    )
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    written = runs.read_json(tiny_run / "eval" / "kermany-official_val" / "metrics.json")
    assert printed == written and printed["n"] == 16 and printed["split"] == "official_val"
    assert printed["threshold"] == runs.load_threshold(tiny_run).threshold
    assert (tiny_run / "eval" / "kermany-official_val" / "plots" / "roc.png").is_file()
    assert main(["evaluate", str(tiny_run), "--dataset", "kermany", "--split", "nosuch"]) == 2
    assert "no images in split 'nosuch'" in capsys.readouterr().err


class _Interrupt(keras.callbacks.Callback):
    """Stop the process-like way after the first epoch (as a kill or Ctrl-C would)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated interruption")


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint(real_data, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(TINY, run, extra_callbacks=[_Interrupt()])
    assert not (run / "model.keras").exists() and (run / "backup" / "stage1-cache").is_dir()
    with pytest.raises(RunExistsError, match="pass --resume"):
        train_run(TINY, run)
    assert main(["train", "--config", str(TINY), "--out", str(run)]) == 2
    assert main(["train", "--out", str(run), "--resume"]) == 0
    history = list(csv.DictReader(open(run / "history.csv")))
    assert [(r["stage"], r["epoch"], r["resumed_from_epoch"]) for r in history] == [
        ("stage1-cache", "1", ""),
        ("stage1-cache", "2", "1"),
        ("stage2-finetune", "1", ""),
    ]
    assert (run / "model.keras").is_file() and json.loads((run / "state.json").read_text())["finished"]


@pytest.mark.slow
def test_image_path_trains_the_baseline_cnn(real_data, tmp_path):
    config = load_config(TINY)
    config = dataclasses.replace(
        config,
        model=ModelConfig(backbone="baseline_cnn", weights="none", trainable_from="all", head_units=(8,)),
        train=dataclasses.replace(
            config.train,
            feature_cache=False,
            stage1_trainable_from="all",
            finetune_epochs=0,
            epochs=2,
            learning_rate=1e-3,
        ),
    )
    run = train_run(config, tmp_path / "cnn")
    manifest = runs.read_json(run / "manifest.json")
    assert [s["stage"] for s in manifest["stages"]] == ["stage1"] and manifest["weights_sha256"] is None
    assert runs.load_model(run).get_layer("relu4") is not None and not (run / "features").exists()


@pytest.mark.slow
def test_mirrored_strategy_runs_on_two_logical_cpus(real_data, tmp_path):
    script = f"""
import dataclasses, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pneumocxr.config import load_config
from pneumocxr.train.run import train_run
config = load_config({str(TINY)!r})
config = dataclasses.replace(config, train=dataclasses.replace(config.train, strategy="mirrored", epochs=1))
train_run(config, {str(tmp_path / "run")!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = runs.read_json(tmp_path / "run" / "manifest.json")
    assert manifest["strategy"] == "mirrored" and manifest["replicas"] == 2
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_training_notebook_executes_headless_on_tiny_config(real_data, tmp_path):
    from pneumocxr.notebooks import execute_notebook

    run = tmp_path / "nb-run"
    out = execute_notebook(
        "Build_and_train_model.ipynb",
        tmp_path / "executed.ipynb",
        {"CONFIG": str(TINY), "RUN_DIR": str(run), "SWEEP_DIR": str(tmp_path / "no-sweep")},
    )
    assert (run / "model.keras").is_file() and (run / "plots" / "augmentation.png").is_file()
    cells = json.loads(Path(out).read_text())["cells"]
    images = [
        o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 7  # augmentation, history, ROC, PR, threshold curves, confusion, calibration
