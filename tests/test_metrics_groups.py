"""fashion_hier.metrics.groups against scikit-learn on the known rows/entries, and the mask's properties."""
import doctest
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from fashion_hier.metrics import groups as groups_module
from fashion_hier.metrics import report as report_module
from fashion_hier.metrics.groups import (
    MULTI_GROUP_KEYS,
    SINGLE_GROUP_KEYS,
    group_report,
    masked_attribute_report,
    multi_group_metrics,
    single_group_confusion,
    single_group_metrics,
)

SEEDS = (0, 1, 2, 3)


def softmax_scores(rng, n_samples, n_values):
    logits = rng.normal(size=(n_samples, n_values)) * 2
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def single_group_data(rng, n_samples=80, n_values=6, unknown_share=0.4):
    """Class indices (-1 unknown, ~40% of rows) and softmax scores; the last value never occurs nor wins."""
    index = rng.integers(0, n_values - 1, size=n_samples)
    index[rng.random(n_samples) < unknown_share] = -1
    scores = softmax_scores(rng, n_samples, n_values)
    scores[:, -1] = 0.0
    return index, scores / scores.sum(axis=1, keepdims=True)


def one_hot(index, n_values):
    return np.where((index < 0)[:, None], -1.0, np.eye(n_values)[np.maximum(index, 0)])


def multi_group_data(rng, n_samples=90, n_values=7, unknown_share=0.4):
    """Targets 1/0 with ~40% of entries -1, and sigmoid scores carrying some signal."""
    prevalence = rng.uniform(0.1, 0.5, size=n_values)
    positive = rng.random((n_samples, n_values)) < prevalence
    scores = np.clip(0.35 * positive + 0.65 * rng.random((n_samples, n_values)), 0, 1)
    targets = np.where(rng.random((n_samples, n_values)) < unknown_share, -1.0, positive.astype(float))
    return targets, scores


def assert_same_metrics(first: dict, second: dict):
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_allclose(first[key], second[key], rtol=1e-12, atol=0, err_msg=key, equal_nan=True)


# --- single groups -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("form", ["indices", "one_hot"])
def test_single_group_metrics_equal_sklearn_on_the_known_rows(seed, form):
    rng = np.random.default_rng(seed)
    index, scores = single_group_data(rng)
    y_true = index if form == "indices" else one_hot(index, scores.shape[1])
    known = index >= 0
    true, predicted = index[known], scores[known].argmax(axis=1)

    metrics = single_group_metrics(y_true, scores)

    assert tuple(metrics) == SINGLE_GROUP_KEYS
    assert metrics["known"] == known.sum() and metrics["coverage"] == known.mean()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(true, predicted), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(true, predicted, average="macro"), abs=1e-12)
    assert metrics["micro_f1"] == pytest.approx(f1_score(true, predicted, average="micro"), abs=1e-12)
    micro, macro = metrics["micro_f1"], metrics["macro_f1"]
    assert metrics["hmean_f1"] == pytest.approx(2 * micro * macro / (micro + macro), abs=1e-12)
    # the never-seen last value is left out of macro-F1 (sklearn's default labels), not averaged in as 0
    all_columns = f1_score(true, predicted, average="macro", labels=range(scores.shape[1]), zero_division=0)
    assert metrics["macro_f1"] > all_columns


def test_single_group_hmean_is_zero_when_both_f1_are_zero():
    metrics = single_group_metrics(np.array([0, 0, -1]), np.array([[.2, .8], [.1, .9], [.5, .5]]))
    assert (metrics["micro_f1"], metrics["macro_f1"], metrics["hmean_f1"]) == (0.0, 0.0, 0.0)


def test_single_group_without_known_rows_is_nan_not_an_error():
    metrics = single_group_metrics(np.full((3, 2), -1.0), np.full((3, 2), 0.5))
    assert metrics["known"] == 0 and metrics["coverage"] == 0.0
    assert all(np.isnan(metrics[key]) for key in SINGLE_GROUP_KEYS[2:])
    empty = single_group_metrics(np.zeros(0), np.zeros((0, 2)))
    assert empty["known"] == 0 and np.isnan(empty["coverage"]) and np.isnan(empty["hmean_f1"])


@pytest.mark.parametrize("seed", SEEDS)
def test_single_group_confusion_equals_sklearn_on_the_known_rows(seed):
    rng = np.random.default_rng(seed)
    index, scores = single_group_data(rng)
    known = index >= 0
    expected = confusion_matrix(index[known], scores[known].argmax(axis=1), labels=range(scores.shape[1]))
    np.testing.assert_array_equal(single_group_confusion(index, scores), expected)
    np.testing.assert_array_equal(single_group_confusion(one_hot(index, scores.shape[1]), scores), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_single_group_ignores_scores_of_unknown_rows_and_equals_dropping_them(seed):
    rng = np.random.default_rng(seed)
    index, scores = single_group_data(rng)
    unknown = index < 0
    changed = scores.copy()
    changed[unknown] = softmax_scores(rng, unknown.sum(), scores.shape[1])
    assert_same_metrics(single_group_metrics(index, scores), single_group_metrics(index, changed))
    np.testing.assert_array_equal(single_group_confusion(index, scores), single_group_confusion(index, changed))
    dropped = single_group_metrics(index[~unknown], scores[~unknown])
    kept = single_group_metrics(index, scores)
    assert dropped["coverage"] == 1.0
    assert_same_metrics({k: kept[k] for k in SINGLE_GROUP_KEYS[2:]}, {k: dropped[k] for k in SINGLE_GROUP_KEYS[2:]})


# --- multi groups ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_multi_group_ap_per_value_equals_sklearn_on_the_rows_where_the_value_is_known(seed):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng)
    targets[:, 0] = np.where(targets[:, 0] == 1, -1.0, targets[:, 0])  # value 0: every positive unknown

    metrics = multi_group_metrics(targets, scores, threshold=0.5)

    assert tuple(metrics) == MULTI_GROUP_KEYS
    assert np.isnan(metrics["AP"][0])
    for value in range(1, targets.shape[1]):
        known = targets[:, value] != -1
        expected = average_precision_score(targets[known, value], scores[known, value])
        assert metrics["AP"][value] == pytest.approx(expected, abs=1e-12)
    assert metrics["mAP"] == pytest.approx(np.mean(metrics["AP"][1:]), abs=1e-12)
    assert metrics["known"] == np.count_nonzero((targets != -1).any(axis=1))
    assert metrics["coverage"] == metrics["known"] / len(targets)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("per_value_threshold", [False, True])
def test_multi_group_prf_equals_sklearn_over_the_known_entries(seed, per_value_threshold):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng)
    threshold = rng.uniform(0.3, 0.7, size=targets.shape[1]) if per_value_threshold else 0.5
    known = targets != -1
    predicted = scores >= threshold

    metrics = multi_group_metrics(targets, scores, threshold=threshold)

    # all known entries flattened into one row of a multi-label indicator: "micro" is over those pairs
    micro = precision_recall_fscore_support(targets[known][None, :].astype(int), predicted[known][None, :].astype(int),
                                            average="micro", zero_division=0)
    np.testing.assert_allclose([metrics["OP"], metrics["OR"], metrics["OF1"]], micro[:3], rtol=1e-12)
    per_value = np.array([
        precision_recall_fscore_support(targets[known[:, j], j], predicted[known[:, j], j], average="binary",
                                        zero_division=0)[:3]
        for j in range(targets.shape[1])
    ])
    np.testing.assert_allclose([metrics["CP"], metrics["CR"], metrics["CF1"]], per_value.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_unknown_entries_scores_change_nothing_but_calling_them_negative_does(seed):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng)
    unknown = targets == -1
    changed = np.where(unknown, rng.random(scores.shape), scores)
    groups = [SimpleNamespace(name="tags", kind="multi", start=0, stop=4, values=list("abcd")),
              SimpleNamespace(name="misc", kind="multi", start=4, stop=7, values=list("efg"))]
    for metric in (multi_group_metrics, masked_attribute_report):
        assert_same_metrics(metric(targets, scores, threshold=0.5), metric(targets, changed, threshold=0.5))
    before, after = group_report(targets, scores, groups), group_report(targets, changed, groups)
    for name in before:
        assert before[name].pop("kind") == after[name].pop("kind")
        assert_same_metrics(before[name], after[name])

    # the control: the same entries read as negatives (0) turn high scores into false positives
    as_negative = np.where(unknown, 0.0, targets)
    as_positive = np.where(unknown, 1.0, targets)
    base = multi_group_metrics(targets, changed, threshold=0.5)
    assert multi_group_metrics(as_negative, changed, threshold=0.5)["OP"] < base["OP"]
    assert multi_group_metrics(as_positive, changed, threshold=0.5)["CR"] != base["CR"]
    assert masked_attribute_report(as_negative, changed, threshold=0.5)["OP"] < masked_attribute_report(
        targets, changed, threshold=0.5)["OP"]


def test_multi_group_without_known_entries_is_nan_not_an_error():
    metrics = multi_group_metrics(np.full((4, 3), -1.0), np.full((4, 3), 0.9))
    assert metrics["known"] == 0 and metrics["coverage"] == 0.0
    assert all(np.isnan(metrics[key]).all() for key in MULTI_GROUP_KEYS[2:])
    assert np.isnan(multi_group_metrics(np.zeros((0, 3)), np.zeros((0, 3)))["coverage"])


# --- the masked flat attribute table -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_masked_attribute_report_equals_the_unmasked_report_without_unknowns(seed):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng, unknown_share=0.0)
    threshold = rng.uniform(0.3, 0.7, size=targets.shape[1])
    expected = report_module._attribute_report(targets.astype(bool), scores, threshold, 0.0)
    assert_same_metrics(masked_attribute_report(targets, scores, threshold=threshold), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_attribute_report_with_unknown_rows_equals_the_report_on_the_known_rows(seed):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng, unknown_share=0.0)
    unknown_rows = rng.random(len(targets)) < 0.4
    targets[unknown_rows] = -1
    masked = masked_attribute_report(targets, scores, threshold=0.5)
    expected = report_module._attribute_report(targets[~unknown_rows].astype(bool), scores[~unknown_rows], 0.5, 0.0)
    assert masked.pop("n_samples_without_labels") == expected.pop("n_samples_without_labels") + unknown_rows.sum()
    assert_same_metrics(masked, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_precision_at_k_ranks_each_row_among_its_known_entries(seed):
    rng = np.random.default_rng(seed)
    targets, scores = multi_group_data(rng, n_values=9)
    precisions = []
    for row_targets, row_scores in zip(targets, scores):
        known = row_targets != -1
        n_true = int((row_targets == 1).sum())
        if n_true:
            order = np.argsort(-row_scores[known], kind="stable")  # ties: lowest column first
            precisions.append(row_targets[known][order[:n_true]].sum() / n_true)
    report = masked_attribute_report(targets, scores, threshold=0.5)
    assert report["P@k"] == pytest.approx(np.mean(precisions), abs=1e-12) == pytest.approx(report["R@k"], abs=1e-12)
    known = targets != -1
    assert report["micro_AP"] == pytest.approx(average_precision_score(targets[known], scores[known]), abs=1e-12)


# --- group_report ------------------------------------------------------------------------------------------------

def test_group_report_scores_each_group_on_its_slice():
    rng = np.random.default_rng(5)
    season, season_scores = single_group_data(rng, n_values=4)
    tags, tag_scores = multi_group_data(rng, n_samples=80, n_values=5)
    y_true = np.hstack([one_hot(season, 4), tags])
    y_score = np.hstack([season_scores, tag_scores])
    thresholds = rng.uniform(0.3, 0.7, size=9)
    groups = [SimpleNamespace(name="season", kind="single", start=0, stop=4, values=["a", "b", "c", "d"]),
              SimpleNamespace(name="tags", kind="multi", start=4, stop=9, values=list("vwxyz"))]

    report = group_report(y_true, y_score, groups, thresholds=thresholds)

    assert list(report) == ["season", "tags"]
    assert report["season"].pop("kind") == "single" and report["tags"].pop("kind") == "multi"
    assert_same_metrics(report["season"], single_group_metrics(season, season_scores))
    assert_same_metrics(report["tags"], multi_group_metrics(tags, tag_scores, threshold=thresholds[4:]))


# --- bad input ---------------------------------------------------------------------------------------------------

_SCORES = np.full((4, 3), 1 / 3)
_GROUPS = [SimpleNamespace(name="season", kind="single", start=0, stop=2, values=["Summer", "Winter"]),
           SimpleNamespace(name="tags", kind="multi", start=2, stop=5, values=["a", "b", "c"])]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: multi_group_metrics(np.zeros((4, 2)), _SCORES),
     r"y_true has shape \(4, 2\) but y_score has shape \(4, 3\)"),
    (lambda: single_group_metrics(np.zeros(3, int), _SCORES), "y_true has 3 samples but y_score has 4"),
    (lambda: single_group_metrics(np.zeros((4, 2)), _SCORES), "y_true is one-hot with 2 columns but y_score has 3"),
    (lambda: single_group_metrics(np.array([[1, 0, 0]] * 3 + [[-1, 0, 1]]), _SCORES),
     r"y_true row 3 is \[-1.0, 0.0, 1.0\]; a single group's row must be one-hot .* never a mix of -1 and 0/1"),
    (lambda: single_group_metrics(np.array([[1, 0, 0]] * 3 + [[0, 0, 0]]), _SCORES), "y_true row 3 is"),
    (lambda: single_group_metrics(np.array([0, 1, 3, -1]), _SCORES),
     r"y_true has 3 at row 2; expected a class index 0..2 or -1 \(unknown\)"),
    (lambda: single_group_metrics(np.array([0, -2, 1, 1]), _SCORES), "y_true has -2 at row 1"),
    (lambda: single_group_confusion(np.array([0, 0.5, 1, 1]), _SCORES), "y_true has 0.5 at row 1"),
    (lambda: multi_group_metrics(np.array([[0, 1, 2]] * 4), _SCORES),
     r"y_true must hold only 1 \(present\), 0 \(absent\) and -1 \(unknown\), got 2 at row 0, column 2"),
    (lambda: masked_attribute_report(np.full((4, 3), np.nan), _SCORES), "y_true must hold only 1"),
    (lambda: multi_group_metrics(np.zeros((4, 3)), _SCORES * 4), r"y_score must be probabilities in \[0, 1\]"),
    (lambda: multi_group_metrics(np.zeros((4, 3)), _SCORES, threshold=[0.5, 0.5]), r"threshold must .* shape \(3,\)"),
    (lambda: group_report(np.zeros((4, 4)), np.full((4, 4), .25), _GROUPS),
     r"groups\[1\] \('tags'\) has slice \[2, 5\), outside the 4 attribute columns of y_true"),
    (lambda: group_report(np.zeros((4, 5)), np.full((4, 5), .2),
                          [SimpleNamespace(name="x", kind="multi", start=3, stop=2, values=[])]), r"slice \[3, 2\)"),
    (lambda: group_report(np.zeros((4, 5)), np.full((4, 5), .2),
                          [SimpleNamespace(name="x", kind="ordinal", start=0, stop=2, values=["a", "b"])]),
     r"groups\[0\] \('x'\) has kind 'ordinal'"),
    (lambda: group_report(np.zeros((4, 5)), np.full((4, 5), .2), [_GROUPS[0], _GROUPS[0]]),
     "two groups named 'season'"),
    (lambda: group_report(np.zeros((4, 5)), np.full((4, 5), .2),
                          [SimpleNamespace(name="x", kind="multi", start=0, stop=2, values=["a"])]),
     r"has 1 values for its 2 columns \[0, 2\)"),
    (lambda: group_report(np.array([[-1, 0, 1, 1, 0]] * 4), np.full((4, 5), .2), _GROUPS),
     r"y_true\[:, 0:2\] \(group 'season'\) row 0 is \[-1.0, 0.0\]"),
    (lambda: group_report(np.zeros((4, 5)), np.full((4, 5), .2), _GROUPS, thresholds=[.5, .5]),
     r"thresholds: threshold must be a number or have shape \(5,\)"),
])
def test_bad_input_raises_a_one_line_message_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_a_group_without_the_slice_fields_is_a_type_error():
    with pytest.raises(TypeError, match=r"groups\[0\] has no start, stop; expected a group like LabelSpace.groups"):
        group_report(np.zeros((4, 5)), np.full((4, 5), .2), [SimpleNamespace(name="x", kind="multi", values=[])])


def test_docstring_examples_run():
    result = doctest.testmod(groups_module, extraglobs={"np": np})
    assert result.attempted >= 15 and result.failed == 0
