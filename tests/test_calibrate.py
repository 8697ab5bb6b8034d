"""Calibration (pneumocxr.train.calibrate): fits recover known maps; folding into the model is exact."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pneumocxr.train import calibrate


def _logistic_sample(a: float, b: float, n: int = 20000, seed: int = 0):
    """Scores whose true calibration map is sigmoid(a * logit(p) + b)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    truth = 1 / (1 + np.exp(-(a * z + b)))
    labels = (rng.random(n) < truth).astype(int)
    return labels, 1 / (1 + np.exp(-z))


def test_platt_recovers_a_known_scale_and_offset():
    labels, p = _logistic_sample(a=2.0, b=-1.0)
    fit = calibrate.fit_calibration(labels, p, "platt")
    assert fit["a"] == pytest.approx(2.0, abs=0.15) and fit["b"] == pytest.approx(-1.0, abs=0.1)


def test_temperature_recovers_a_known_temperature_and_keeps_the_ranking():
    labels, p = _logistic_sample(a=0.5, b=0.0)
    fit = calibrate.fit_calibration(labels, p, "temperature")
    assert fit["temperature"] == pytest.approx(2.0, rel=0.1) and fit["b"] == 0.0
    calibrated = calibrate.apply_calibration(p, fit)
    assert roc_auc_score(labels, calibrated) == pytest.approx(roc_auc_score(labels, p))


def _log_loss(labels, q):
    q = np.clip(np.asarray(q, dtype=float), 1e-7, 1 - 1e-7)
    return -np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q))


def test_calibration_lowers_log_loss_of_compressed_scores():
    labels, p = _logistic_sample(a=3.0, b=0.5)
    calibrated = calibrate.apply_calibration(p, calibrate.fit_calibration(labels, p, "platt"))
    assert _log_loss(labels, calibrated) < _log_loss(labels, p) - 0.05


def test_none_is_the_identity_and_errors_name_the_cause():
    labels, p = _logistic_sample(1.0, 0.0, n=100)
    np.testing.assert_allclose(
        calibrate.apply_calibration(p, calibrate.fit_calibration(labels, p, "none")), p, atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown calibration 'isotonic'"):
        calibrate.fit_calibration(labels, p, "isotonic")
    with pytest.raises(ValueError, match="both classes"):
        calibrate.fit_calibration(np.ones(10), np.linspace(0.1, 0.9, 10), "platt")


def test_folding_into_the_output_layer_gives_the_calibrated_probabilities():
    import keras

    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden))
    x = np.random.default_rng(1).normal(size=(64, 5)).astype("float32")
    raw = model.predict(x, verbose=0).ravel()
    fit = {"method": "platt", "a": 1.7, "b": -0.4}
    calibrate.fold_into_model(model, fit)
    np.testing.assert_allclose(model.predict(x, verbose=0).ravel(), calibrate.apply_calibration(raw, fit), atol=1e-5)
    with pytest.raises(ValueError, match="not a one-unit sigmoid Dense"):
        calibrate.fold_into_model(model, fit, layer_name=model.layers[1].name)
