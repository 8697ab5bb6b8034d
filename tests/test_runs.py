"""Run directory: stable JSON, the typed records (threshold, manifest, state, metrics, history) validated on
read and write, and the data hash."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pneumocxr.config import Config
from pneumocxr.provenance import data_list_hash, sha256_file
from pneumocxr.runs import (
    RunError,
    RunFileError,
    create_run_dir,
    load_run_config,
    load_threshold,
    read_json,
    save_threshold,
    write_json,
    write_manifest,
)


def test_write_json_is_stable_and_nan_safe(tmp_path):
    path = write_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": float("nan"), "c": (1, 2)})
    assert path.read_text() == '{\n  "a": null,\n  "b": 0.5,\n  "c": [\n    1,\n    2\n  ]\n}\n'


def test_threshold_round_trip_and_validation(tmp_path):
    save_threshold(tmp_path, {"threshold": 0.42, "rule": "max_f1"})
    record = load_threshold(tmp_path)
    assert (record.threshold, record.rule, record.schema_version) == (0.42, "max_f1", 1)
    with pytest.raises(RunFileError, match=r"threshold.json: rule: field required"):
        save_threshold(tmp_path, {"threshold": 0.4})


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"threshold": NaN, "rule": "max_f1"}', r"threshold.json: threshold = nan: input should be a finite number"),
        ('{"threshold": 1.5, "rule": "max_f1"}', r"threshold = 1.5: input should be less than or equal to 1"),
        ('{"threshold": "0.4", "rule": "max_f1"}', r"threshold = '0.4': input should be a valid number"),
        ('{"threshold": 0.4, "rule": "median"}', r"rule = 'median': input should be 'max_f1', "),
        ('{"threshold": 0.4, "rule": "max_f1", "schema_version": 7}', r"schema_version = 7: input should be 1"),
        ('{"threshold": 0.4, "rule": "max_f1", "treshold": 0.3}', r"treshold = 0.3: extra inputs are not permitted"),
        ("[0.4", r"threshold.json: not valid JSON"),
    ],
)
def test_bad_threshold_files_are_refused_with_one_line(tmp_path, text, expected):
    (tmp_path / "threshold.json").write_text(text)
    with pytest.raises(RunFileError, match=expected) as caught:
        load_threshold(tmp_path)
    assert "\n" not in str(caught.value)


def test_missing_artifacts_are_named(tmp_path):
    with pytest.raises(RunError, match="threshold.json: missing"):
        load_threshold(tmp_path)
    with pytest.raises(RunError, match="config.toml: missing"):
        load_run_config(tmp_path)


def test_run_dir_and_manifest(tmp_path):
    config = Config(name="unit")
    run = create_run_dir(tmp_path / "r", config)
    assert (run / "plots").is_dir() and load_run_config(run) == config
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"abc")
    digest = data_list_hash([("a.png", 1, "train"), ("b.png", 0, "val")])
    manifest = write_manifest(run, config, digest, str(weights))
    assert (
        manifest.weights_sha256
        == sha256_file(weights)
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert read_json(run / "manifest.json")["data_list_sha256"] == digest
    assert set(manifest.packages) >= {"tensorflow", "keras", "pydicom", "python"}
    assert json.loads((run / "manifest.json").read_text())["seed"] == config.data.seed


def test_data_list_hash_ignores_order_but_not_content():
    rows = [("a.png", 1, "train"), ("b.png", 0, "val")]
    assert data_list_hash(rows) == data_list_hash(rows[::-1])
    assert data_list_hash(rows) != data_list_hash([("a.png", 0, "train"), ("b.png", 0, "val")])


def test_records_accept_every_key_the_shift_validation_path_writes(tmp_path):
    """What finish_run writes with worst_group_midpoint, temperature calibration and shift validation
    (choose_threshold and fit_calibration's own output on synthetic plumbing scores) reads back typed."""
    from pneumocxr.evaluate.threshold import choose_threshold
    from pneumocxr.runs import load_manifest, load_metrics, save_metrics
    from pneumocxr.train.calibrate import fit_calibration

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    scores = np.clip(labels * 0.4 + rng.random(80) * 0.6, 0.01, 0.99)
    groups = np.tile(["plain", "gamma/0.7"], 40)
    threshold = choose_threshold(labels, scores, "worst_group_midpoint", tolerance=0.01, groups=groups)
    calibration = fit_calibration(labels, scores, "temperature")
    save_threshold(
        tmp_path,
        {
            **threshold,
            "dataset": "kermany",
            "split": "val",
            "validation": "shift (2 shifted copies)",
            "calibration": calibration,
        },
    )
    record = load_threshold(tmp_path)
    assert record.rule == "worst_group_midpoint" and record.groups == 2
    assert record.best_worst_balanced_accuracy == pytest.approx(threshold["best_worst_balanced_accuracy"])
    assert record.calibration.method == "temperature" and record.calibration.temperature > 0
    assert record.validation == "shift (2 shifted copies)"
    shift = {"copies": 2, "pooled": {"n": 80}, "conditions": [{"condition": "plain", "n": 40}]}
    save_metrics(
        tmp_path,
        {
            "n": 40,
            "n_patients": 40,
            "n_pos": 20,
            "prevalence": 0.5,
            "threshold": record.threshold,
            "confusion": {"tp": 1, "fp": 0, "tn": 1, "fn": 0},
            "shift_validation": shift,
        },
    )
    assert load_metrics(tmp_path).shift_validation == shift
    write_manifest(tmp_path, Config(), "0" * 64, None, extra={"n_val": 40, "n_val_shifted": 80})
    assert load_manifest(tmp_path).n_val_shifted == 80
    with pytest.raises(RunFileError, match=r"groups = 0: input should be greater than or equal to 1"):
        save_threshold(tmp_path, {**threshold, "groups": 0})
