"""Training step (model selection), calibration: make the saved model's probabilities mean what they say on validation.

Balanced class weights and label smoothing train a model whose raw outputs are compressed towards
0.5 and centred on a 50 % prior, whatever the real prevalence. Calibration fits a monotone map of the
logit ``z = log(p / (1 - p))`` on validation scores and folds it into the model's float32 output
layer, so ``model.keras`` itself returns calibrated probabilities and every consumer (evaluate,
predict, the DICOM node) sees the same numbers with no extra step. A monotone map leaves the ranking
(ROC AUC) unchanged; the threshold is chosen after it, on the calibrated scores.

* ``platt``: ``sigmoid(a * z + b)`` by logistic regression of the labels on ``z`` (Platt 1999,
  "Probabilistic outputs for support vector machines"); two parameters, because the training
  shifted the logits (class weights) and scaled them (label smoothing).
* ``temperature``: ``sigmoid(z / T)`` (Guo et al., ICML 2017, "On calibration of modern neural
  networks"); one parameter, for when validation is small.

Fitted on the pooled shift validation (plain and shifted renderings), so the probabilities are not
over-confident on the easy, familiar rendering alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METHODS = ("none", "platt", "temperature")
_EPS = 1e-6


def logit(probabilities: Any) -> np.ndarray:
    """``log(p / (1 - p))`` as float64, with p clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_calibration(labels: Any, probabilities: Any, method: str) -> dict[str, Any]:
    """Fit ``method`` on validation labels (0/1) and probabilities; return ``{"method", "a", "b"}``.

    The calibrated probability is ``sigmoid(a * logit(p) + b)`` (``none``: a = 1, b = 0). Fitting
    minimises the log loss: scikit-learn's ``LogisticRegression`` (no penalty, C = inf) for ``platt``,
    ``scipy.optimize.minimize_scalar`` over ``log T`` for ``temperature``.

    Raises
    ------
    ValueError
        An unknown method, or labels that hold a single class.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration {method!r}; expected one of {', '.join(METHODS)}")
    y = np.asarray(labels).astype(int).ravel()
    z = logit(probabilities).ravel()
    if method == "none":
        return {"method": "none", "a": 1.0, "b": 0.0}
    if y.min() == y.max():
        raise ValueError(f"calibration needs both classes; all {y.size} labels are {y[0]}")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        fit = LogisticRegression(C=np.inf, max_iter=1000).fit(z[:, None], y)
        return {"method": method, "a": float(fit.coef_[0, 0]), "b": float(fit.intercept_[0]), "n": int(y.size)}
    from scipy.optimize import minimize_scalar

    def log_loss(log_t: float) -> float:
        q = 1 / (1 + np.exp(-z / np.exp(log_t)))
        q = np.clip(q, _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    best = minimize_scalar(log_loss, bounds=(-4.0, 4.0), method="bounded")
    return {
        "method": method,
        "a": float(np.exp(-best.x)),
        "b": 0.0,
        "temperature": float(np.exp(best.x)),
        "n": int(y.size),
    }


def apply_calibration(probabilities: Any, calibration: dict[str, Any]) -> np.ndarray:
    """``sigmoid(a * logit(p) + b)`` as float32, the scores the folded model gives."""
    z = calibration["a"] * logit(probabilities) + calibration["b"]
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def fold_into_model(model, calibration: dict[str, Any], layer_name: str = "probability") -> None:
    """Rewrite the sigmoid output layer ``layer_name`` (Dense, 1 unit) so it returns calibrated values.

    ``sigmoid(a * (x . w + c) + b) = sigmoid(x . (a w) + (a c + b))``: exact, no new layer, so the
    saved model loads anywhere the uncalibrated one did. Raises ``ValueError`` when the layer is not a
    one-unit sigmoid ``Dense``.
    """
    import keras

    layer = model.get_layer(layer_name)
    if not isinstance(layer, keras.layers.Dense) or layer.units != 1 or layer.activation.__name__ != "sigmoid":
        raise ValueError(f"layer {layer_name!r} of {model.name} is not a one-unit sigmoid Dense layer")
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    a, b = calibration["a"], calibration["b"]
    layer.set_weights([(a * kernel).astype(np.float32), (a * bias + b).astype(np.float32)])
