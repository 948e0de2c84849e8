"""Calibration: does a 0.9 from the model come true nine times in ten? Metrics, and temperature scaling.

Expected calibration error (ECE) of the top label and its reliability curve (Guo et al. 2017,
"On calibration of modern neural networks", section 2), Brier score and log loss, and temperature
scaling (Guo et al. 2017, section 4.2): one scalar T > 0 fitted on validation data that softens
(T > 1) or sharpens (T < 1) every prediction without changing its arg-max. The model outputs
probabilities, so the logits are taken back from them: log p for a softmax level (softmax(log p) = p)
and log(p / (1 - p)) for each sigmoid column of a multi-label group.

Binning, as ``netcal.metrics.ECE`` (version 1.4), which the tests check against: a sample's
confidence is its highest probability; bins are left-closed ``[edge_b, edge_b+1)``, the last one
closed ``[edge_B-1, 1]`` (``numpy.histogram``'s rule), and empty bins are left out. ``"uniform"``
edges are ``np.linspace(0, 1, n_bins + 1)``; ``"quantile"`` (adaptive, equal-mass) edges are
``np.quantile(confidence, np.linspace(0, 1, n_bins + 1))`` with the ends set to 0 and 1, so equal
confidences share a bin and bins hold about ``N / n_bins`` samples each.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logsumexp, softmax

from fashion_hier.metrics.checks import (
    check_class_indices,
    check_k,
    check_multi_hot,
    check_same_length,
    check_scores,
    single_label_inputs,
)

logger = logging.getLogger(__name__)

STRATEGIES = ("uniform", "quantile")
ACTIVATIONS = ("softmax", "sigmoid")
TEMPERATURE_BOUNDS = (0.05, 20.0)


class ReliabilityCurve(NamedTuple):
    """Per confidence bin ``(n_bins,)``: mean confidence, accuracy (NaN where empty), count; and the edges."""

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")


def _warn_unless_rows_sum_to_one(scores: np.ndarray, name: str) -> None:
    """Log (as scikit-learn warns) when rows are not a distribution: a sigmoid output or a sliced softmax."""
    off = np.abs(scores.sum(axis=1) - 1.0) > 1e-3
    if off.any():
        row = int(np.flatnonzero(off)[0])
        logger.warning("%s: %d rows do not sum to 1 (row %d sums to %.4f); expected softmax probabilities",
                       name, np.count_nonzero(off), row, float(scores[row].sum()))


def _bin_edges(confidence: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        edges = np.quantile(confidence, edges)
        edges[0], edges[-1] = 0.0, 1.0
    return edges


def reliability_curve(y_true, y_score, *, n_bins: int = 15, strategy: str = "uniform") -> ReliabilityCurve:
    """Mean top-label confidence, accuracy and sample count in each confidence bin.

    ``y_true`` is class indices ``(N,)`` or one-hot, ``y_score`` probabilities ``(N, C)``; a
    sample is right when its arg-max is its true class. Binning as in the module docstring
    (``strategy`` ``"uniform"`` or ``"quantile"``, as ``sklearn.calibration.calibration_curve``
    names them). Unlike scikit-learn, every bin is returned, empty ones with NaN confidence and
    accuracy and a count of 0, so the bins keep their place in a diagram.

    Examples
    --------
    >>> y_score = np.array([[.9, .1], [.8, .2], [.3, .7], [.45, .55]])
    >>> curve = reliability_curve(np.array([0, 1, 1, 1]), y_score, n_bins=2)   # bins [0, .5), [.5, 1]
    >>> curve.confidence, curve.accuracy, curve.count
    (array([   nan, 0.7375]), array([ nan, 0.75]), array([0, 4]))
    """
    n_bins = check_k(n_bins, "n_bins")
    _check_strategy(strategy)
    true_index, scores = single_label_inputs(y_true, y_score)
    confidence = scores.max(axis=1).astype(np.float64)
    correct = scores.argmax(axis=1) == true_index
    edges = _bin_edges(confidence, n_bins, strategy)
    bins = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return ReliabilityCurve(mean_confidence, accuracy, count, edges)


def expected_calibration_error(y_true, y_score, *, n_bins: int = 15, strategy: str = "uniform") -> float:
    """ECE of the top label: Σ_b (n_b / N) · |accuracy_b − confidence_b| over the non-empty bins.

    Equals ``netcal.metrics.ECE(bins=n_bins, equal_intervals=strategy == "uniform").measure(y_score,
    y_true)`` for three or more classes. For two, netcal scores the probability of class 1 instead
    of the top label, so the values differ; this function always scores the top label (Guo et al.
    2017). ``strategy="quantile"`` gives the adaptive (equal-mass) ECE.

    Examples
    --------
    >>> y_score = np.array([[.9, .1], [.8, .2], [.3, .7], [.45, .55]])
    >>> round(expected_calibration_error(np.array([0, 1, 1, 1]), y_score, n_bins=2), 6)   # |.75 - .7375|
    0.0125
    >>> # quantile edge .75: bins {.55, .7} (both right) and {.8, .9} (one right): (|1 - .625| + |.5 - .85|) / 2
    >>> round(expected_calibration_error(np.array([0, 1, 1, 1]), y_score, n_bins=2, strategy="quantile"), 6)
    0.3625
    """
    curve = reliability_curve(y_true, y_score, n_bins=n_bins, strategy=strategy)
    filled = curve.count > 0
    gaps = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return float(np.sum(curve.count[filled] * gaps) / np.sum(curve.count))


def brier_score(y_true, y_score) -> float:
    """Multi-class Brier score: the mean over samples of Σ_c (p_c − y_c)², from 0 (perfect) to 2.

    Equals ``sklearn.metrics.brier_score_loss(y_true, y_score, labels=range(C), scale_by_half=False)``.
    With two classes it is twice scikit-learn's default binary Brier score (``scale_by_half="auto"``,
    or ``brier_score_loss(y_true, y_score[:, 1])``): both columns' errors are counted.

    Examples
    --------
    >>> round(brier_score(np.array([0, 2]), np.array([[.8, .1, .1], [.2, .2, .6]])), 6)   # (.06 + .24) / 2
    0.15
    """
    true_index, scores = single_label_inputs(y_true, y_score)
    _warn_unless_rows_sum_to_one(scores, "brier_score")
    scores = scores.astype(np.float64)
    rows = np.arange(len(scores))
    # Σ_c p_c² − 2 p_true + 1, without building the one-hot matrix
    per_sample = np.einsum("ij,ij->i", scores, scores) - 2.0 * scores[rows, true_index] + 1.0
    return float(np.mean(per_sample))


def log_loss(y_true, y_score) -> float:
    """Mean negative log-likelihood of the true class (natural log): the loss temperature scaling fits.

    Equals ``sklearn.metrics.log_loss(y_true, y_score, labels=range(C))``, including its clipping
    of probabilities to ``[eps, 1 − eps]``, ``eps`` being the machine epsilon of ``y_score``'s dtype.

    Examples
    --------
    >>> round(log_loss(np.array([0, 1]), np.array([[.8, .2], [.5, .5]])), 6)   # -(ln .8 + ln .5) / 2
    0.458145
    """
    true_index, scores = single_label_inputs(y_true, y_score)
    _warn_unless_rows_sum_to_one(scores, "log_loss")
    eps = np.finfo(scores.dtype).eps
    true_probability = np.clip(scores[np.arange(len(scores)), true_index], eps, 1 - eps).astype(np.float64)
    return float(-np.mean(np.log(true_probability)))


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")


def _check_logits(y_score, name: str) -> np.ndarray:
    logits = np.asarray(y_score)
    if logits.dtype.kind not in "iuf" or logits.ndim != 2 or 0 in logits.shape:
        raise ValueError(
            f"{name} must be numeric logits of shape (n_samples, n_classes), got dtype {logits.dtype}, "
            f"shape {logits.shape}"
        )
    if not np.isfinite(logits).all():
        raise ValueError(f"{name} has NaN or infinite logits; expected finite values")
    return logits.astype(np.float64)


def _logits_from(y_score, activation: str, from_logits: bool, name: str = "y_score") -> np.ndarray:
    """The scores as logits: given, or log p (softmax) / log(p / (1 − p)) per column (sigmoid).

    Probabilities are clipped first, so 0 and 1 give finite logits: to the dtype's smallest
    normal number for softmax, to ``[eps, 1 − eps]`` for sigmoid (about ±36 in float64, ±16 in float32).
    """
    if from_logits:
        return _check_logits(y_score, name)
    scores = check_scores(y_score, name)
    info = np.finfo(scores.dtype)
    if activation == "softmax":
        _warn_unless_rows_sum_to_one(scores, "temperature scaling")
        return np.log(np.maximum(scores, info.tiny).astype(np.float64))
    scores = np.clip(scores, info.eps, 1 - info.eps).astype(np.float64)
    return np.log(scores) - np.log1p(-scores)


def _scale(logits: np.ndarray, temperature: float, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return expit(logits / temperature)
    scaled = logits / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    probabilities = np.exp(scaled)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def apply_temperature(y_score, temperature: float, *, activation: str = "softmax", from_logits: bool = False):
    """Probabilities after temperature scaling: softmax(z / T), or sigmoid(z / T) per column.

    ``z`` is taken from the probabilities ``y_score`` (see the module docstring) unless
    ``from_logits``. T > 1 softens, T < 1 sharpens; arg-max and ranking are unchanged. The
    result keeps ``y_score``'s float dtype (float64 for integer input).

    Examples
    --------
    >>> apply_temperature(np.array([[.8, .2]]), 2.0)   # softmax(log p / 2) ∝ sqrt(p): 2/3, 1/3
    array([[0.66666667, 0.33333333]])
    """
    _check_activation(activation)
    temperature = _check_temperature(temperature)
    logits = _logits_from(y_score, activation, from_logits)
    dtype = np.asarray(y_score).dtype
    return _scale(logits, temperature, activation).astype(dtype if dtype.kind == "f" else np.float64)


def _check_temperature(temperature) -> float:
    value = float(temperature)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def _negative_log_likelihood(logits: np.ndarray, target: np.ndarray, inverse_temperature: float,
                             activation: str) -> float:
    """Mean NLL of ``logits · inverse_temperature``; convex in the inverse temperature."""
    scaled = logits * inverse_temperature
    if activation == "sigmoid":
        return float(np.mean(np.logaddexp(0.0, scaled) - target * scaled))
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(scaled)), target]))


def _negative_log_likelihood_slope(logits: np.ndarray, target: np.ndarray, inverse_temperature: float,
                                   activation: str) -> float:
    """d NLL / d(1/T): the expected logit under the scaled prediction minus the true one, averaged."""
    if activation == "sigmoid":
        return float(np.mean((expit(logits * inverse_temperature) - target) * logits))
    expected = np.einsum("ij,ij->i", softmax(logits * inverse_temperature, axis=1), logits)
    return float(np.mean(expected - logits[np.arange(len(logits)), target]))


def fit_temperature(
    y_score, y_true, *, activation: str = "softmax", from_logits: bool = False,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """The temperature T > 0 that minimises the log loss of ``apply_temperature(y_score, T)`` on ``y_true``.

    Fit on validation data, never on the test split. ``"softmax"``: ``y_true`` is class indices
    or one-hot and the loss is :func:`log_loss`; ``"sigmoid"`` (one multi-label group):
    ``y_true`` is multi-hot ``(N, A)``, the loss is the binary cross-entropy averaged over all
    sample-column pairs, and one T serves every column (fit a column alone for its own T).
    Scores first, as in ``fit(X, y)``; a swapped call is refused by the shape checks.

    The NLL is convex in 1/T, so its slope in 1/T only rises: Brent's root finder on that slope
    gives the global minimum within ``bounds`` (on T). Where the slope keeps one sign over the
    bounds, the minimum is the bound, and that is logged: the data want a more extreme T, as
    when every validation prediction is right and confident (the loss falls as T → 0).

    Examples
    --------
    >>> y_score = np.array([[.9, .1], [.9, .1], [.9, .1], [.1, .9]])
    >>> y_true = np.array([0, 0, 1, 1])                       # 0.9 is right 3 times in 4: over-confident
    >>> temperature = fit_temperature(y_score, y_true)
    >>> round(temperature, 3), apply_temperature(y_score, temperature)[0].round(3)   # ln 9 / ln 3 = 2
    (2.0, array([0.75, 0.25]))
    """
    _check_activation(activation)
    low, high = (float(bound) for bound in bounds)
    if not 0 < low < high < np.inf:
        raise ValueError(f"bounds must be (low, high) with 0 < low < high, got {bounds!r}")
    logits = _logits_from(y_score, activation, from_logits)
    if activation == "sigmoid":
        target = check_multi_hot(y_true).astype(np.float64)
        if target.shape != logits.shape:
            raise ValueError(f"y_true has shape {target.shape} but y_score has shape {logits.shape}; "
                             "expected the same (n_samples, n_labels)")
    else:
        target = check_class_indices(y_true, logits.shape[1])
        check_same_length(target, logits, ("y_true", "y_score"))
    def slope(inverse_temperature: float) -> float:
        return _negative_log_likelihood_slope(logits, target, inverse_temperature, activation)

    softest, sharpest = 1.0 / high, 1.0 / low
    if slope(softest) >= 0:
        inverse_temperature = softest
    elif slope(sharpest) <= 0:
        inverse_temperature = sharpest
    else:
        inverse_temperature = brentq(slope, softest, sharpest, xtol=1e-12)
    temperature = 1.0 / inverse_temperature
    if inverse_temperature in (softest, sharpest):
        logger.warning("fit_temperature: the log loss is lowest at the bound T = %s of %s; the data want a more "
                       "extreme temperature (widen bounds, or check the validation data)", f"{temperature:.4g}",
                       bounds)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("fit_temperature: T = %.4f, log loss %.4f -> %.4f", temperature,
                     _negative_log_likelihood(logits, target, 1.0, activation),
                     _negative_log_likelihood(logits, target, inverse_temperature, activation))
    return temperature
