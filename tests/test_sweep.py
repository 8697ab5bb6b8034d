"""Sweep: variants merged over a base config, reuse of finished runs, the comparison table and its sentences."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from pneumocxr.config import PROJECT_ROOT
from pneumocxr.train import sweep

SWEEP = """
title = "tiny sweep"
base = "{base}"
evaluate_splits = ["official_val"]
[defaults.train]
epochs = 1
[[variant]]
name = "tiny"
run_dir = "{run}"
reference = true
note = "the session's tiny run"
[[variant]]
name = "frozen"
[variant.model]
trainable_from = "none"
[variant.train]
stage1_trainable_from = "none"
finetune_epochs = 0
"""


def test_shipped_sweep_parses_into_distinct_variants():
    entries, settings = sweep.load_sweep([PROJECT_ROOT / "configs" / "sweeps" / "kermany-cpu.toml"])
    by_name = {e.name: e for e in entries}
    assert list(by_name) == ["kermany-cpu", "eight-epochs"]
    assert by_name["kermany-cpu"].reference and by_name["kermany-cpu"].run_dir == "runs/kermany-cpu"
    assert by_name["kermany-cpu"].config.data.shift_copies == 2  # both rows select on the shift validation
    assert settings["evaluate_splits"] == ["official_val"]
    assert sweep.config_change(by_name["kermany-cpu"].config, by_name["eight-epochs"].config) == "train.epochs 4 -> 8"


def test_deep_merge_and_outcome_sentence():
    assert sweep.deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}, "b": 1}
    ref = {
        "name": "ref",
        "shift_auc": 0.93,
        "val_auc": 0.95,
        "val_accuracy": 0.90,
        "threshold": 0.5,
        "train_minutes": 10.0,
    }
    row = {
        "name": "new",
        "shift_auc": 0.96,
        "val_auc": 0.94,
        "val_accuracy": 0.88,
        "threshold": 0.4,
        "train_minutes": 5.0,
    }
    text = sweep.outcome_sentence(row, ref)
    # judged by the shift validation, the selection criterion, even when plain validation AUC fell
    assert text.startswith(
        "Helped: shift-validation AUC 0.930 -> 0.960 (+0.030), validation AUC 0.950 -> 0.940 (-0.010)"
    )
    assert "0.900 -> 0.880 (-0.020)" in text and "10 -> 5 min" in text
    assert sweep.outcome_sentence({**row, "val_auc": 0.5}, ref).startswith("Training collapsed")
    assert sweep.outcome_sentence({**row, "shift_auc": 0.931}, ref).startswith("No clear difference")
    assert sweep.outcome_sentence({**row, "shift_auc": 0.92}, ref).startswith("Hurt")
    assert sweep.outcome_sentence(ref, ref).startswith("Reference: shift-validation AUC 0.930")


def test_unknown_key_in_a_variant_names_it(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[variant]]\nname = "x"\n[variant.train]\nepoch = 3\n')
    with pytest.raises(ValueError, match="variant x.*unknown key"):
        sweep.load_sweep([path])


@pytest.mark.slow
def test_sweep_trains_new_rows_reuses_finished_runs_and_writes_table(tiny_run, tmp_path):
    run = tmp_path / "tiny-copy"
    shutil.copytree(tiny_run, run)
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(base=PROJECT_ROOT / "configs" / "tiny-test.toml", run=run))
    table = sweep.run_sweep([path], tmp_path / "out")
    assert list(table["name"]) == ["tiny", "frozen"]
    assert (tmp_path / "out" / "frozen" / "model.keras").is_file() and not (tmp_path / "out" / "tiny").exists()
    saved = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert saved["official_val_n"].tolist() == [16, 16] and saved["val_auc"].between(0, 1).all()
    markdown = (tmp_path / "out" / "sweep.md").read_text()
    assert markdown.startswith("# tiny sweep") and "**frozen** (model.trainable_from block5_conv1 -> none" in markdown
    assert "Reference: shift-validation AUC" in markdown
    assert saved["shift_auc"].between(0, 1).all() and saved["shift_worst_balanced_accuracy"].between(0, 1).all()
    again = sweep.run_sweep([path], tmp_path / "out")  # everything finished: nothing retrains
    assert again["val_auc"].tolist() == table["val_auc"].tolist()
