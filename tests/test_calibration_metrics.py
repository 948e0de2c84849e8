"""ECE, reliability curve, Brier score, log loss and temperature scaling against netcal, scikit-learn,
brute force and hand-worked cases."""
import doctest
import logging

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sklearn_log_loss

from fashion_hier.metrics import (
    apply_temperature,
    brier_score,
    calibration,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    reliability_curve,
)



def _netcal():
    """netcal, the ECE oracle, when installed (it pulls in torch, several GB, so the dev extra leaves it out)."""
    try:
        import netcal.metrics
    except ImportError:
        return None
    return netcal.metrics


def _bins_by_loop(labels, scores, n_bins, equal_intervals=True):
    """Per bin (count, accuracy, mean confidence) of the top label, sample by sample: netcal's convention
    (bins [lo, hi), the last one closed; adaptive edges the confidence quantiles with ends 0 and 1)."""
    confidence, correct = scores.max(axis=1), scores.argmax(axis=1) == labels
    edges = (np.linspace(0, 1, n_bins + 1) if equal_intervals
             else np.r_[0.0, np.quantile(confidence, np.linspace(0, 1, n_bins + 1))[1:-1], 1.0])
    bins = []
    for index in range(n_bins):
        members = [i for i in range(len(confidence))
                   if edges[index] <= confidence[i] < edges[index + 1]
                   or (index == n_bins - 1 and confidence[i] == edges[-1])]
        bins.append((len(members), np.mean(correct[members]) if members else np.nan,
                     np.mean(confidence[members]) if members else np.nan))
    return bins


def ece_oracle(labels, scores, n_bins, equal_intervals=True):
    """netcal's ECE when it is installed, else the same definition summed bin by bin."""
    netcal = _netcal()
    if netcal is not None:
        return netcal.ECE(bins=n_bins, equal_intervals=equal_intervals).measure(scores, labels)
    return sum(count * abs(accuracy - confidence) for count, accuracy, confidence
               in _bins_by_loop(labels, scores, n_bins, equal_intervals) if count) / len(labels)


SEEDS = (0, 1, 2)


def softmax_scores(rng, n_samples, n_classes, *, sharpness=2.0, decimals=None):
    scores = softmax(rng.normal(size=(n_samples, n_classes)) * sharpness, axis=1)
    return scores if decimals is None else np.round(scores, decimals)


def labels_from(rng, probabilities):
    """One class per row drawn from that row's distribution."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def calibration_data(seed, n_samples=400, n_classes=5, decimals=None):
    """Scores with some one-hot rows (confidence exactly 1) and labels holding at least 3 classes.

    netcal reads labels with at most two distinct values as a binary problem, so every test
    input holds three or more.
    """
    rng = np.random.default_rng(seed)
    scores = softmax_scores(rng, n_samples, n_classes, decimals=decimals)
    scores[:5] = np.eye(n_classes)[rng.integers(0, n_classes, 5)]
    labels = labels_from(rng, softmax_scores(rng, n_samples, n_classes))
    labels[:3] = [0, 1, 2]
    return labels, scores


# ---- ECE and the reliability curve -------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
@pytest.mark.parametrize("decimals", [None, 1, 2])  # rounded scores put confidences on the bin edges
def test_ece_equals_netcal_with_equal_width_bins(seed, n_bins, decimals):
    labels, scores = calibration_data(seed, decimals=decimals)
    ours = expected_calibration_error(labels, scores, n_bins=n_bins)
    oracle = ece_oracle(labels, scores, n_bins)
    assert ours == pytest.approx(oracle, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_adaptive_ece_equals_netcal_with_equal_mass_bins(seed, n_bins):
    # unrounded scores only: with tied confidences two quantile edges coincide, which netcal (through
    # scipy's binned_statistic_dd) refuses, while here the bin between them stays empty
    labels, scores = calibration_data(seed)
    ours = expected_calibration_error(labels, scores, n_bins=n_bins, strategy="quantile")
    oracle = ece_oracle(labels, scores, n_bins, equal_intervals=False)
    assert ours == pytest.approx(oracle, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_reliability_curve_counts_and_accuracy_equal_netcal_bin_maps(seed):
    labels, scores = calibration_data(seed, decimals=2)
    curve = reliability_curve(labels, scores, n_bins=10)
    count, accuracy, mean_confidence = np.array(_bins_by_loop(labels, scores, 10)).T
    if _netcal() is not None:  # netcal's samples map and accuracy histogram, through its binning helpers
        ece = _netcal().ECE(bins=10)
        confidence, matched, _, bounds, _ = ece.prepare(scores, labels)
        (accuracy, mean_confidence), count, _, _ = ece.binning(bounds[0], confidence[0], matched[0],
                                                              confidence[0][:, 0], nan=np.nan)
    np.testing.assert_array_equal(curve.count, count)
    np.testing.assert_allclose(curve.accuracy, accuracy, rtol=1e-12)
    np.testing.assert_allclose(curve.confidence, mean_confidence, rtol=1e-12)


def test_ece_hand_worked_with_confidences_on_bin_edges():
    # 4 bins [0, .25), [.25, .5), [.5, .75), [.75, 1]: an edge belongs to the bin above it, 1.0 to the last
    scores = np.array([
        [.25, .25, .25, .25],   # conf .25, arg-max 0 (first of ties), right -> bin 1
        [.1, .2, .3, .4],       # conf .40, right                           -> bin 1
        [.5, .2, .2, .1],       # conf .50, right                           -> bin 2
        [.5, .3, .1, .1],       # conf .50, wrong                           -> bin 2
        [.75, .25, 0, 0],       # conf .75, right                           -> bin 3
        [1, 0, 0, 0],           # conf 1.0, wrong                           -> bin 3
    ])
    labels = np.array([0, 3, 0, 1, 0, 2])
    curve = reliability_curve(labels, scores, n_bins=4)
    np.testing.assert_array_equal(curve.count, [0, 2, 2, 2])
    np.testing.assert_allclose(curve.confidence, [np.nan, .325, .5, .875])
    np.testing.assert_allclose(curve.accuracy, [np.nan, 1, .5, .5])
    np.testing.assert_allclose(curve.edges, [0, .25, .5, .75, 1])
    ece = (2 * abs(1 - .325) + 2 * abs(.5 - .5) + 2 * abs(.5 - .875)) / 6
    assert expected_calibration_error(labels, scores, n_bins=4) == pytest.approx(ece, rel=1e-12)


def rows_with_confidence(confidences, n_classes=3):
    """Score rows whose top probability (column 0) is each confidence, the rest split evenly."""
    confidences = np.asarray(confidences, dtype=float)
    rest = np.repeat(((1 - confidences) / (n_classes - 1))[:, None], n_classes - 1, axis=1)
    return np.column_stack([confidences, rest])


def test_adaptive_ece_hand_worked_equal_mass_bins():
    confidences = [.9, .35, .8, .4, .7, .5, .6, .55]   # unsorted on purpose
    right = [1, 0, 1, 1, 0, 1, 1, 0]                    # label 0 = the arg-max, else label 1 or 2
    labels = np.where(right, 0, [1, 2] * 4)
    # 8 samples, 4 bins: quantile edges fall between sorted neighbours, two samples a bin:
    # {.35 x, .4 v}  {.5 v, .55 x}  {.6 v, .7 x}  {.8 v, .9 v}
    groups = [((.35, .4), (0, 1)), ((.5, .55), (1, 0)), ((.6, .7), (1, 0)), ((.8, .9), (1, 1))]
    ece = sum(abs(np.mean(hits) - np.mean(conf)) * 2 / 8 for conf, hits in groups)
    scores = rows_with_confidence(confidences)
    assert expected_calibration_error(labels, scores, n_bins=4, strategy="quantile") == pytest.approx(ece, rel=1e-12)
    np.testing.assert_array_equal(reliability_curve(labels, scores, n_bins=4, strategy="quantile").count, [2] * 4)

    # a 9th sample puts the edges on samples (positions 2, 4, 6), which start the bin above:
    # {.35, .4}  {.5, .55}  {.6, .7}  {.8, .9, .95 v}
    scores9 = rows_with_confidence(confidences + [.95])
    labels9 = np.append(labels, 0)
    groups[-1] = ((.8, .9, .95), (1, 1, 1))
    ece9 = sum(abs(np.mean(hits) - np.mean(conf)) * len(conf) / 9 for conf, hits in groups)
    assert expected_calibration_error(labels9, scores9, n_bins=4, strategy="quantile") == pytest.approx(ece9, rel=1e-12)
    counts9 = reliability_curve(labels9, scores9, n_bins=4, strategy="quantile").count
    np.testing.assert_array_equal(counts9, [2, 2, 2, 3])


def test_adaptive_bins_never_split_equal_confidences():
    scores = rows_with_confidence([.5] * 6 + [.9, .95])
    labels = np.array([0, 1, 0, 2, 0, 1, 0, 0])
    curve = reliability_curve(labels, scores, n_bins=4, strategy="quantile")
    assert sorted(curve.count[curve.count > 0].tolist()) == [2, 6]
    assert np.nansum(curve.count * np.nan_to_num(curve.accuracy)) == 5


def test_empty_bins_have_nan_confidence_and_accuracy_and_no_weight():
    scores = rows_with_confidence([.95, .96, .97])
    curve = reliability_curve(np.array([0, 1, 2]), scores, n_bins=15)
    assert curve.count.sum() == 3 and curve.count[-1] == 3
    assert np.isnan(curve.accuracy[:-1]).all() and np.isnan(curve.confidence[:-1]).all()
    assert expected_calibration_error(np.array([0, 1, 2]), scores) == pytest.approx(.96 - 1 / 3)


# ---- Brier score and log loss --------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_classes", [2, 3, 8])
def test_brier_score_equals_sklearn_multiclass_form_and_twice_its_binary_form(seed, n_classes):
    rng = np.random.default_rng(seed)
    scores = softmax_scores(rng, 300, n_classes)
    labels = rng.integers(0, n_classes, 300)
    ours = brier_score(labels, scores)
    assert ours == pytest.approx(
        brier_score_loss(labels, scores, labels=np.arange(n_classes), scale_by_half=False), rel=1e-12)
    if n_classes == 2:
        assert ours == pytest.approx(2 * brier_score_loss(labels, scores[:, 1]), rel=1e-12)
        assert ours == pytest.approx(2 * brier_score_loss(labels, scores, labels=[0, 1]), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_loss_equals_sklearn_including_clipping_of_zero_and_one(seed, dtype):
    rng = np.random.default_rng(seed)
    scores = softmax_scores(rng, 300, 6, sharpness=4.0)
    scores[:10] = np.eye(6)[rng.integers(0, 6, 10)]   # probabilities 0 and 1: clipped to [eps, 1 - eps]
    scores = scores.astype(dtype)
    labels = rng.integers(0, 5, 300)                  # class 5 absent from the labels
    expected = sklearn_log_loss(labels, scores, labels=np.arange(6))
    assert log_loss(labels, scores) == pytest.approx(expected, rel=1e-12 if dtype == np.float64 else 1e-5)


def test_log_loss_and_brier_log_when_rows_are_not_distributions(caplog):
    scores = np.array([[.9, .9, .1], [.2, .3, .5]])
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        brier_score([0, 2], scores)
    assert "1 rows do not sum to 1 (row 0 sums to 1.9000)" in caplog.text


# ---- temperature scaling -------------------------------------------------------------------------
def over_confident(seed, model_temperature, n_samples=20_000, n_classes=10):
    """Labels drawn from softmax(z); the model reports softmax(z · T0), so temperature T0 undoes it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_samples, n_classes)) * 1.5
    labels = labels_from(rng, softmax(logits, axis=1))
    return labels, softmax(logits * model_temperature, axis=1), logits * model_temperature


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model_temperature", [0.5, 2.0, 3.0])
def test_fit_temperature_recovers_the_temperature_that_generated_the_scores(seed, model_temperature):
    labels, scores, logits = over_confident(seed, model_temperature)
    assert fit_temperature(scores, labels) == pytest.approx(model_temperature, rel=0.05)
    assert fit_temperature(logits, labels, from_logits=True) == pytest.approx(fit_temperature(scores, labels), rel=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_fitted_temperature_is_the_minimum_of_sklearn_log_loss_over_a_grid(seed):
    labels, scores, _ = over_confident(seed, 2.5, n_samples=3000)
    fitted = fit_temperature(scores, labels)
    loss = lambda temperature: sklearn_log_loss(labels, apply_temperature(scores, temperature),  # noqa: E731
                                                labels=np.arange(10))
    grid = np.geomspace(0.1, 10, 400)
    assert loss(fitted) <= min(loss(t) for t in grid) + 1e-9
    assert abs(np.log(fitted) - np.log(grid[np.argmin([loss(t) for t in grid])])) < 0.02


def test_temperature_scaling_keeps_the_arg_max_and_lowers_ece_and_log_loss_of_over_confident_scores():
    labels, scores, _ = over_confident(0, 2.5)
    temperature = fit_temperature(scores, labels)
    scaled = apply_temperature(scores, temperature)
    np.testing.assert_array_equal(scaled.argmax(axis=1), scores.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    before, after = expected_calibration_error(labels, scores), expected_calibration_error(labels, scaled)
    assert after < before / 4, (before, after)
    assert log_loss(labels, scaled) < log_loss(labels, scores)
    np.testing.assert_allclose(apply_temperature(scores, 1.0), scores, rtol=1e-9, atol=1e-12)


def test_apply_temperature_keeps_float32_and_softens_above_one():
    scores = np.array([[.7, .2, .1]], dtype=np.float32)
    softer = apply_temperature(scores, 3.0)
    assert softer.dtype == np.float32
    np.testing.assert_allclose(softer, [np.cbrt([.7, .2, .1]) / np.cbrt([.7, .2, .1]).sum()], rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_group_fit_recovers_its_temperature_and_keeps_each_decision_order(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(8000, 4)) * 2 + [-2, -1, 0, 1]
    labels = (rng.random(logits.shape) < expit(logits)).astype(int)
    scores = expit(logits * 2.0)
    temperature = fit_temperature(scores, labels, activation="sigmoid")
    assert temperature == pytest.approx(2.0, rel=0.05)
    scaled = apply_temperature(scores, temperature, activation="sigmoid")
    np.testing.assert_allclose(np.log(scaled / (1 - scaled)), np.log(scores / (1 - scores)) / temperature, rtol=1e-6)
    np.testing.assert_array_equal(np.argsort(scaled, axis=0), np.argsort(scores, axis=0))
    # one column alone: its own temperature, fitted from the (N, 1) slice
    assert fit_temperature(scores[:, :1], labels[:, :1], activation="sigmoid") == pytest.approx(2.0, rel=0.1)
    brute = lambda t: -np.mean(labels * np.log(apply_temperature(scores, t, activation="sigmoid"))  # noqa: E731
                               + (1 - labels) * np.log(1 - apply_temperature(scores, t, activation="sigmoid")))
    assert brute(temperature) <= min(brute(t) for t in np.geomspace(0.5, 8, 200)) + 1e-9


def test_temperature_on_a_bound_is_logged(caplog):
    scores = np.array([[.9, .05, .05], [.05, .9, .05], [.05, .05, .9]])
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        temperature = fit_temperature(scores, [0, 1, 2])       # always right: the loss falls as T -> 0
    assert temperature == pytest.approx(calibration.TEMPERATURE_BOUNDS[0], rel=1e-4)
    assert "lowest at the bound T = 0.05" in caplog.text


@pytest.mark.parametrize("call, message", [
    (lambda: fit_temperature([0, 1], np.eye(2)), r"y_score must be 2-D"),                  # arguments swapped
    (lambda: fit_temperature(np.eye(2), [0, 2]), "y_true has class index 2 at row 1"),
    (lambda: fit_temperature(np.eye(2), [0, 1, 1]), "y_true has 3 samples but y_score has 2"),
    (lambda: fit_temperature(np.eye(2), [[1, 0]], activation="sigmoid"), r"y_true has shape \(1, 2\) but y_score"),
    (lambda: fit_temperature(np.eye(2) * 3, [0, 1]), r"probabilities in \[0, 1\].*not logits"),
    (lambda: fit_temperature(np.eye(2), [0, 1], activation="relu"), "activation must be one of"),
    (lambda: fit_temperature(np.eye(2), [0, 1], bounds=(2.0, 1.0)), "bounds must be"),
    (lambda: apply_temperature(np.eye(2), 0.0), "temperature must be a finite number > 0"),
    (lambda: apply_temperature(np.array([[np.inf, 0.0]]), 1.0, from_logits=True), "NaN or infinite logits"),
    (lambda: expected_calibration_error([0], [[1.0]], n_bins=0), "n_bins must be a positive integer"),
    (lambda: reliability_curve([0], [[1.0]], strategy="equal"), "strategy must be one of"),
])
def test_bad_input_raises_a_message_naming_expected_and_received(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_docstring_examples_hold():
    result = doctest.testmod(calibration, extraglobs={"np": np})
    assert result.attempted >= 10 and result.failed == 0
