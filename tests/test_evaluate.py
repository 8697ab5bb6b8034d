"""Tests for pneumocxr.evaluate.metrics and evaluate.figures: hand-checked values, agreement with sklearn,
threshold rules on constructed cases, patient bootstrap, calibration, subgroups, files written.
Score arrays here are synthetic numbers for checking the maths; the one real-data test
(PneumoniaMNIST from the data root) checks the threshold rules on a real validation/test shift."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from pneumocxr.evaluate import artifacts
from pneumocxr.evaluate import metrics as ev
from pneumocxr.evaluate import threshold as th
from pneumocxr.evaluate.figures import PLOT_FILES

# 10 hand-checkable predictions: at 0.5 -> tp 3 (0.8, 0.9, 0.95), fp 2 (0.6, 0.7), fn 1 (0.35), tn 4
TEN_LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
TEN_PROBS = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.35, 0.8, 0.9, 0.95])


def scored_frame(n_patients: int = 150, images_per_patient: int = 4, seed: int = 0) -> pd.DataFrame:
    """Synthetic scores with a per-patient effect (images of one patient look alike) and subgroup columns."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(n_patients), images_per_patient)
    label = np.repeat(rng.random(n_patients) < 0.5, images_per_patient).astype(int)
    logit = (
        2.0 * (label - 0.5)
        + np.repeat(rng.normal(0, 1.5, n_patients), images_per_patient)
        + rng.normal(0, 0.3, patient.size)
    )
    return pd.DataFrame(
        {
            "path": [f"img{i}.png" for i in range(patient.size)],
            "patient_id": patient,
            "label": label,
            "probability": 1 / (1 + np.exp(-logit)),
            "sex": np.repeat(rng.choice(["M", "F"], n_patients), images_per_patient),
            "age": np.repeat(rng.integers(1, 95, n_patients), images_per_patient),
            "view": rng.choice(["PA", "AP"], patient.size),
        }
    )


def test_metrics_at_threshold_hand_checked():
    m = ev.metrics_at_threshold(TEN_LABELS, TEN_PROBS, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 4, 1)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["npv"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))


def test_metrics_at_threshold_counts_a_score_equal_to_the_threshold_as_positive_and_nan_on_zero_division():
    assert ev.metrics_at_threshold(TEN_LABELS, TEN_PROBS, 0.35)["tp"] == 4
    nothing_called = ev.metrics_at_threshold(TEN_LABELS, TEN_PROBS, 0.99)
    assert nothing_called["tp"] + nothing_called["fp"] == 0
    assert np.isnan(nothing_called["precision"]) and nothing_called["specificity"] == 1.0


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    probs = np.clip(0.35 * labels + rng.random(500) * 0.65, 0, 1)
    m = ev.metrics_at_threshold(labels, probs, 0.42)
    called = (probs >= 0.42).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, called))
    assert m["sensitivity"] == pytest.approx(recall_score(labels, called))
    assert m["specificity"] == pytest.approx(recall_score(labels, called, pos_label=0))
    assert m["precision"] == pytest.approx(precision_score(labels, called))
    assert m["npv"] == pytest.approx(precision_score(labels, called, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(labels, called))
    frame = pd.DataFrame({"label": labels, "probability": probs, "patient_id": np.arange(500)})
    assert ev.evaluate_predictions(frame, 0.42, n_boot=20)["auc"] == pytest.approx(roc_auc_score(labels, probs))


@pytest.mark.parametrize(
    "labels, probs, message",
    [
        ([0, 1], [0.2], "2 values"),
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1, 1.2], "within"),
        ([0, 1], [0.1, np.nan], "finite"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_are_rejected_with_the_reason(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        ev.metrics_at_threshold(labels, probs, 0.5)


# Constructed case for the rules: thresholds .8 .7 .6 .5 .4 .3 give F1 .40 .67 .86 .75 .89 .80 and
# Youden J .25 .50 .75 .50 .75 .50 (a tie between 0.6 and 0.4, broken towards the higher threshold).
RULE_LABELS = np.array([0, 0, 0, 1, 0, 1, 1, 1])
RULE_PROBS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


def test_max_f1_picks_the_f1_maximising_score():
    rec = th.choose_threshold(RULE_LABELS, RULE_PROBS, "max_f1")
    assert rec["threshold"] == pytest.approx(0.4)
    assert rec["criterion"] == "f1" and rec["criterion_value"] == pytest.approx(8 / 9)
    assert (rec["rule"], rec["n"], rec["n_pos"]) == ("max_f1", 8, 4)


def test_youden_picks_the_highest_of_tied_maxima():
    rec = th.choose_threshold(RULE_LABELS, RULE_PROBS, "youden")
    assert rec["threshold"] == pytest.approx(0.6) and rec["criterion_value"] == pytest.approx(0.75)


@pytest.mark.parametrize("target, expected", [(0.9, 0.4), (0.75, 0.6), (0.5, 0.7), (0.2, 0.8)])
def test_sensitivity_target_picks_the_highest_threshold_meeting_the_target(target, expected):
    rec = th.choose_threshold(RULE_LABELS, RULE_PROBS, "sensitivity_target", target=target)
    assert rec["threshold"] == pytest.approx(expected)
    assert rec["sensitivity"] >= target and rec["target"] == target


def test_youden_midpoint_sits_in_the_middle_of_the_gap_where_the_other_rules_hug_the_positives():
    labels, probs = np.array([0, 0, 0, 1, 1, 1]), np.array([0.05, 0.1, 0.2, 0.7, 0.8, 0.9])
    assert th.choose_threshold(labels, probs, "max_f1")["threshold"] == pytest.approx(0.7)
    assert th.choose_threshold(labels, probs, "youden")["threshold"] == pytest.approx(0.7)
    rec = th.choose_threshold(labels, probs, "youden_midpoint", tolerance=0.0)
    assert (rec["low"], rec["high"], rec["threshold"]) == pytest.approx((0.2, 0.7, 0.45))
    assert rec["criterion_value"] == pytest.approx(1.0) and rec["tolerance"] == 0.0


def test_youden_midpoint_tolerance_bridges_outliers_to_the_middle_of_the_gap():
    # 50 negatives in [0.01, 0.30] plus one at 0.69; 50 positives in [0.70, 0.99] plus one at 0.32
    negatives, positives = np.r_[np.linspace(0.01, 0.30, 50), 0.69], np.r_[np.linspace(0.70, 0.99, 50), 0.32]
    labels, probs = np.r_[np.zeros(51), np.ones(51)].astype(int), np.r_[negatives, positives]
    # best balanced accuracy (1 + 50/51) / 2 only in two narrow cells, (0.30, 0.32] and (0.69, 0.70]
    strict = th.choose_threshold(labels, probs, "youden_midpoint", tolerance=0.0)
    assert (strict["low"], strict["high"], strict["threshold"]) == pytest.approx((0.30, 0.32, 0.31))
    # one more error on either side (balanced accuracy 50/51) is within 0.015: the run spans
    # (second-highest regular negative, second-lowest regular positive], centred on 0.5
    loose = th.choose_threshold(labels, probs, "youden_midpoint", tolerance=0.015)
    assert (loose["low"], loose["high"]) == pytest.approx((negatives[48], positives[1]))
    assert loose["threshold"] == pytest.approx(0.5) and loose["criterion_value"] == pytest.approx(50 / 51)


def test_youden_midpoint_matches_a_brute_force_grid_search():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    probs = np.clip(np.where(labels == 1, rng.beta(6, 2, 300), rng.beta(2, 6, 300)), 0, 1)
    rec = th.choose_threshold(labels, probs, "youden_midpoint", tolerance=0.02)
    grid = np.linspace(0.0005, 0.9995, 2000)
    ba = np.array(
        [(lambda m: (m["sensitivity"] + m["specificity"]) / 2)(ev.metrics_at_threshold(labels, probs, t)) for t in grid]
    )
    ok = np.r_[0, (ba >= ba.max() - 0.02).astype(int), 0]
    starts, ends = np.flatnonzero(np.diff(ok) == 1), np.flatnonzero(np.diff(ok) == -1) - 1
    widest = np.argmax(grid[ends] - grid[starts])
    assert rec["best_balanced_accuracy"] == pytest.approx(ba.max(), abs=1e-9)
    assert rec["threshold"] == pytest.approx((grid[starts[widest]] + grid[ends[widest]]) / 2, abs=1e-3)


@pytest.mark.parametrize(
    "rule, kwargs, message",
    [
        ("best", {}, "unknown threshold rule"),
        ("sensitivity_target", {}, "target"),
        ("youden_midpoint", {"tolerance": 0.7}, "tolerance"),
    ],
)
def test_choose_threshold_rejects_bad_rules(rule, kwargs, message):
    with pytest.raises(ValueError, match=message):
        th.choose_threshold(RULE_LABELS, RULE_PROBS, rule, **kwargs)


def test_choose_threshold_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        th.choose_threshold([1, 1, 1], [0.2, 0.5, 0.9])


def test_bootstrap_ci_contains_the_estimate_is_reproducible_and_narrows_with_more_data():
    small, large = scored_frame(60, 2, seed=1), scored_frame(600, 2, seed=1)
    auc = roc_auc_score(small["label"], small["probability"])
    low, high = ev.bootstrap_ci(small["label"], small["probability"], roc_auc_score, n_boot=300)
    assert low < auc < high
    assert (low, high) == ev.bootstrap_ci(small["label"], small["probability"], roc_auc_score, n_boot=300)
    big_low, big_high = ev.bootstrap_ci(large["label"], large["probability"], roc_auc_score, n_boot=300)
    assert big_high - big_low < 0.6 * (high - low)


def test_patient_resampling_is_wider_than_image_resampling_when_patients_have_many_images():
    frame = scored_frame(80, 10, seed=2)  # 800 images; a patient's images share most of their score
    args = (frame["label"], frame["probability"], roc_auc_score)
    image_low, image_high = ev.bootstrap_ci(*args, n_boot=300)
    patient_low, patient_high = ev.bootstrap_ci(*args, groups=frame["patient_id"], n_boot=300)
    assert patient_high - patient_low > 1.5 * (image_high - image_low)


def test_vectorised_confusion_cis_equal_the_generic_bootstrap_on_the_same_resamples():
    frame = scored_frame(50, 3)
    labels, probs, groups = frame["label"], frame["probability"], frame["patient_id"]
    cis = ev.bootstrap_confusion_cis(labels, probs, 0.5, groups, n_boot=200, seed=4)
    for name in ("accuracy", "sensitivity", "f1"):
        generic = ev.bootstrap_ci(
            labels, probs, lambda y, p, n=name: ev.metrics_at_threshold(y, p, 0.5)[n], groups, n_boot=200, seed=4
        )
        assert cis[name] == pytest.approx(generic)


def test_bootstrap_ci_of_auc_is_nan_when_one_class():
    low, high = ev.bootstrap_ci([1, 1, 1, 1], [0.2, 0.4, 0.6, 0.8], roc_auc_score, n_boot=50)
    assert np.isnan(low) and np.isnan(high)


def test_ece_and_reliability_curve():
    assert ev.expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.1)
    assert ev.expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    frame = scored_frame()
    curve = ev.reliability_curve(frame["label"], frame["probability"], n_bins=10)
    assert len(curve) == 10 and curve["count"].sum() == len(frame)
    fraction, mean_pred = calibration_curve(frame["label"], frame["probability"], n_bins=10)
    filled = curve.dropna()
    np.testing.assert_allclose(filled["fraction_positive"], fraction)
    np.testing.assert_allclose(filled["mean_predicted"], mean_pred)
    gap = (filled["count"] * (filled["fraction_positive"] - filled["mean_predicted"]).abs()).sum() / len(frame)
    assert ev.expected_calibration_error(frame["label"], frame["probability"]) == pytest.approx(gap)


def test_age_band():
    bands = ev.age_band([0, 17, 18, 39.5, 40, 59, 60, 79, 80, 95, None, -1, 414])
    assert bands.tolist()[:10] == ["0-17", "0-17", "18-39", "18-39", "40-59", "40-59", "60-79", "60-79", "80+", "80+"]
    assert bands.iloc[10:].isna().all()


def test_subgroup_table_on_sex_age_and_view():
    frame = pd.DataFrame(
        {
            "label": [1, 0, 1, 0, 1, 1],
            "probability": [0.9, 0.2, 0.4, 0.6, 0.8, 0.7],
            "patient_id": range(6),
            "sex": ["M", "M", "F", "F", None, "F"],
            "age": [5, 30, 45, 70, 85, 500],
            "view": ["PA", "PA", "AP", "AP", "AP", "PA"],
        }
    )
    table = ev.subgroup_table(frame, 0.5)
    assert set(table) == {"sex", "age_band", "view"}
    assert table["sex"]["M"] == {
        "n": 2,
        "n_pos": 1,
        "prevalence": 0.5,
        "auc": 1.0,
        "sensitivity": 1.0,
        "specificity": 1.0,
        "accuracy": 1.0,
    }
    female = table["sex"]["F"]  # 0.4 (pos, missed), 0.6 (neg, false alarm), 0.7 (pos, caught)
    assert (female["n"], female["sensitivity"], female["specificity"], female["auc"]) == (3, 0.5, 0.0, 0.5)
    assert sorted(table["age_band"]) == ["0-17", "18-39", "40-59", "60-79", "80+"]  # age 500 left out
    assert table["age_band"]["80+"]["auc"] is None  # one class only
    assert table["view"]["AP"]["n"] == 3
    assert set(ev.subgroup_table(frame[["label", "probability", "patient_id"]], 0.5)) == set()
    repeated_index = ev.subgroup_table(frame.set_axis([0, 0, 1, 1, 2, 2]), 0.5)  # e.g. a concatenated frame
    assert json.dumps(repeated_index, sort_keys=True) == json.dumps(table, sort_keys=True)  # (NaN != NaN in ==)


def test_evaluate_predictions_returns_the_design_metrics_object():
    frame = scored_frame()
    metrics = ev.evaluate_predictions(
        frame, 0.5, n_boot=100, dataset="synthetic", split="test", threshold_rule="youden_midpoint"
    )
    for key in (
        "n",
        "n_patients",
        "prevalence",
        "auc",
        "auc_ci95",
        "threshold",
        "threshold_rule",
        "ece",
        "average_precision",
        "confusion",
        "subgroups",
        "dataset",
        "split",
    ):
        assert key in metrics
    assert (metrics["n"], metrics["n_patients"], metrics["ci"]["unit"]) == (600, 150, "patient")
    at = ev.metrics_at_threshold(frame["label"], frame["probability"], 0.5)
    for name in ev.CONFUSION_METRICS:
        low, high = metrics[f"{name}_ci95"]
        assert metrics[name] == pytest.approx(at[name]) and low <= metrics[name] <= high
    assert metrics["confusion"] == {k: at[k] for k in ("tp", "fp", "tn", "fn")}
    assert set(metrics["subgroups"]) == {"sex", "age_band", "view"}
    json.dumps(metrics, allow_nan=False)


def test_evaluate_predictions_on_one_class_gives_null_auc_and_rejects_missing_columns():
    frame = pd.DataFrame({"label": [1, 1, 1], "probability": [0.2, 0.6, 0.9], "patient_id": ["a", "a", "b"]})
    metrics = ev.evaluate_predictions(frame, 0.5, n_boot=20)
    assert metrics["auc"] is None and metrics["auc_ci95"] == [None, None] and metrics["sensitivity"] == 2 / 3
    with pytest.raises(ValueError, match="patient_id"):
        ev.evaluate_predictions(frame.drop(columns="patient_id"), 0.5)
    with pytest.raises(ValueError, match="patient_id is missing"):
        ev.evaluate_predictions(frame.assign(patient_id=[None, "a", "b"]), 0.5)


def test_save_evaluation_writes_metrics_predictions_and_six_plots(tmp_path):
    frame = scored_frame(40, 2)
    metrics = ev.evaluate_predictions(frame, 0.5, n_boot=50, dataset="synthetic", split="val", threshold_rule="max_f1")
    written = artifacts.save_evaluation(metrics, frame, tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 80
    saved = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert list(saved.columns[:4]) == ["path", "patient_id", "label", "probability"] and len(saved) == 80
    np.testing.assert_allclose(saved["probability"], frame["probability"])
    plots = [p for p in written if p.suffix == ".png"]
    assert [p.name for p in plots] == list(PLOT_FILES) and all(p.parent == tmp_path / "eval" / "plots" for p in plots)
    for plot in plots:
        assert matplotlib.image.imread(plot).shape[0] > 300  # a real rendered figure at ~120 dpi


def test_save_evaluation_draws_placeholders_when_one_class(tmp_path):
    frame = pd.DataFrame({"label": [0, 0], "probability": [0.2, 0.7], "patient_id": ["a", "b"]})
    metrics = ev.evaluate_predictions(frame, 0.5, n_boot=10)
    written = artifacts.save_evaluation(metrics, frame, tmp_path, plots_dir=tmp_path / "figs")
    assert sorted(p.name for p in written if p.suffix == ".png") == sorted(PLOT_FILES)
    assert (tmp_path / "figs" / "roc.png").is_file()


def test_threshold_rules_on_real_pneumoniamnist_shift(real_data):
    """Real data (data root, PneumoniaMNIST = Kermany at 28 px; its test split is Kermany's official test,
    collected apart from train/val). A logistic regression scores val AUC ~0.99 but test ~0.92, like the
    VGG16 runs: max-F1 from val over-calls pneumonia on test, the gap-centred rule does better."""
    from sklearn.linear_model import LogisticRegression

    data = np.load(real_data / "pneumoniamnist" / "pneumoniamnist.npz")
    x = {s: data[f"{s}_images"].reshape(len(data[f"{s}_images"]), -1) / 255.0 for s in ("train", "val", "test")}
    y = {s: data[f"{s}_labels"].ravel() for s in ("train", "val", "test")}
    model = LogisticRegression(C=1.0, max_iter=3000).fit(x["train"], y["train"])
    val, test = model.predict_proba(x["val"])[:, 1], model.predict_proba(x["test"])[:, 1]
    assert roc_auc_score(y["val"], val) > 0.98 and roc_auc_score(y["test"], test) < 0.95
    accuracy = {
        rule: ev.metrics_at_threshold(y["test"], test, th.choose_threshold(y["val"], val, rule)["threshold"])[
            "accuracy"
        ]
        for rule in ("max_f1", "youden_midpoint")
    }
    assert accuracy["youden_midpoint"] > accuracy["max_f1"] + 0.01


def test_worst_group_midpoint_maximises_the_worst_groups_balanced_accuracy():
    # group a separates at any threshold in (0.2, 0.9]; group b only in (0.7, 0.8]: the worst group
    # decides, so the operating point is the middle of (0.7, 0.8], not of a's wide gap
    labels = [0, 0, 1, 1, 0, 0, 1, 1]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b"]
    chosen = th.choose_threshold(
        labels, [0.1, 0.2, 0.9, 0.95, 0.5, 0.7, 0.8, 0.95], "worst_group_midpoint", tolerance=0.0, groups=groups
    )
    assert chosen["low"] == pytest.approx(0.7) and chosen["high"] == pytest.approx(0.8)
    assert chosen["threshold"] == pytest.approx(0.75) and chosen["criterion_value"] == 1.0 and chosen["groups"] == 2
    # b's films score lower (a shifted acquisition): its gap (0.35, 0.4] now decides
    moved = th.choose_threshold(
        labels, [0.1, 0.2, 0.9, 0.95, 0.3, 0.35, 0.4, 0.95], "worst_group_midpoint", tolerance=0.0, groups=groups
    )
    assert moved["low"] == pytest.approx(0.35) and moved["high"] == pytest.approx(0.4)
    # no threshold separates b (a normal above a positive): the best worst case, 0.75, holds on (0.5, 0.8]
    # and (0.85, 0.9]; the widest run wins
    overlap = th.choose_threshold(
        labels, [0.1, 0.2, 0.9, 0.95, 0.5, 0.85, 0.8, 0.95], "worst_group_midpoint", tolerance=0.0, groups=groups
    )
    assert overlap["best_worst_balanced_accuracy"] == pytest.approx(0.75)
    assert overlap["low"] == pytest.approx(0.5) and overlap["high"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="needs one group label per score"):
        th.choose_threshold(labels, [0.1] * 8, "worst_group_midpoint")
