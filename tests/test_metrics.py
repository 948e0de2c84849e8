"""fashion_hier.metrics against scikit-learn, brute force and hand-worked examples."""
import doctest
import inspect
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from fashion_hier.metrics import classification, ranking
from fashion_hier.metrics import report as report_module
from fashion_hier.metrics import (
    ATTRIBUTE_KEYS,
    HIERARCHY_KEYS,
    SINGLE_LABEL_KEYS,
    accuracy,
    average_precision,
    classification_prf,
    hierarchical_report,
    hierarchy_metrics,
    multilabel_prf,
    per_class_report,
    precision_recall_at_k,
    top_k_accuracy,
    tune_thresholds,
)
from fashion_hier.thresholds import DEFAULT_THRESHOLD

SEEDS = (0, 1, 2)


def softmax_scores(rng, n_samples, n_classes, *, decimals=None):
    logits = rng.normal(size=(n_samples, n_classes)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return scores if decimals is None else np.round(scores, decimals)


def multi_label_data(rng, n_samples, n_labels, *, decimals=None):
    """Multi-hot labels with varied prevalence and scores that carry some signal."""
    prevalence = rng.uniform(0.05, 0.5, size=n_labels)
    labels = (rng.random((n_samples, n_labels)) < prevalence).astype(np.float32)
    scores = np.clip(0.35 * labels + 0.65 * rng.random((n_samples, n_labels)), 0, 1)
    return labels, scores if decimals is None else np.round(scores, decimals)


def brute_hits_at_k(labels, scores, k):
    """Hits among each row's top k by a stable descending sort (lowest index first on ties)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.array([labels[i, order[i, : k[i]]].sum() for i in range(len(labels))])


# ----------------------------------------------------------------------------- single-label levels
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["weighted", "macro", "micro", None])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_classification_prf_equals_sklearn_with_labels_range_including_absent_classes(seed, average, zero_division):
    rng = np.random.default_rng(seed)
    n_classes = 9
    y_true = rng.integers(0, 6, size=60)  # classes 6..8 never occur in y_true
    y_score = softmax_scores(rng, 60, n_classes)
    y_score[:5, 7] = 1.0  # ... but class 7 is predicted for a few samples
    ours = classification_prf(y_true, y_score, average=average, zero_division=zero_division)
    expected = precision_recall_fscore_support(
        y_true, y_score.argmax(1), labels=range(n_classes), average=average, zero_division=zero_division
    )
    for got, want in zip(ours, expected):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_absent_class_counts_as_sklearn_says_precision_zero_if_predicted_and_macro_includes_it():
    y_true = np.array([0, 0, 1, 1])
    y_score = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    precision, recall, f1, support = classification_prf(y_true, y_score, average=None)
    # class 2 never true, predicted once: precision 0/1, recall 0/0 -> zero_division 0
    np.testing.assert_allclose(precision, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(recall, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(support, [2, 2, 0])
    macro_precision, *_ = classification_prf(y_true, y_score, average="macro")
    weighted_precision, *_ = classification_prf(y_true, y_score, average="weighted")
    assert macro_precision == pytest.approx(2 / 3)
    assert weighted_precision == pytest.approx(1.0)  # weight 0 for the absent class


def test_weighted_f1_can_lie_below_both_weighted_precision_and_recall_hand_worked():
    # per class (P, R, F1, support): 0 -> (1/2, 1, 2/3, 2); 1 -> (1, 1/2, 2/3, 2); 2 -> (0, 0, 0, 1)
    y_true = np.array([0, 0, 1, 1, 2])
    y_score = np.eye(3)[[0, 0, 0, 1, 0]]
    precision, recall, f1, _ = classification_prf(y_true, y_score, average="weighted")
    assert (precision, recall) == pytest.approx((0.6, 0.6))
    assert f1 == pytest.approx(8 / 15)


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_and_top_k_equal_sklearn_including_ties_and_k_beyond_classes(seed):
    rng = np.random.default_rng(seed)
    n_classes = 6
    y_true = rng.integers(0, n_classes, size=80)
    y_score = softmax_scores(rng, 80, n_classes, decimals=1)  # many ties
    assert accuracy(y_true, y_score) == pytest.approx(accuracy_score(y_true, y_score.argmax(1)))
    for k in range(1, n_classes + 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns that k >= n_classes is a perfect score
            expected = top_k_accuracy_score(y_true, y_score, k=k, labels=range(n_classes))
        assert top_k_accuracy(y_true, y_score, k=k) == pytest.approx(expected), k


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_with_two_classes_equals_sklearn_on_a_padded_third_class(seed):
    # sklearn refuses (N, 2) scores; a third class scored below every probability leaves the ranks as they are
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=40)
    y_score = softmax_scores(rng, 40, 2, decimals=1)  # ties at 0.5
    padded = np.column_stack([y_score, np.full(40, -1.0)])
    for k in (1, 2):
        expected = top_k_accuracy_score(y_true, padded, k=k, labels=range(3))
        assert top_k_accuracy(y_true, y_score, k=k) == pytest.approx(expected), k


def test_top_k_tie_ranks_higher_class_index_first_like_sklearn():
    y_score = np.array([[0.4, 0.4, 0.2]])
    assert top_k_accuracy([0], y_score, k=1) == 0.0
    assert top_k_accuracy([1], y_score, k=1) == 1.0


def test_one_hot_and_index_inputs_give_identical_results():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 5, size=40)
    y_score = softmax_scores(rng, 40, 5)
    one_hot = np.eye(5, dtype=np.float32)[y_true]
    assert classification_prf(one_hot, y_score, average="macro") == classification_prf(y_true, y_score, average="macro")
    assert top_k_accuracy(one_hot, y_score, k=2) == top_k_accuracy(y_true, y_score, k=2)
    assert accuracy(one_hot, y_score) == accuracy(y_true, y_score)


# ----------------------------------------------------------------------------- attributes, thresholded
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
@pytest.mark.parametrize("zero_division", [0.0, np.nan])
def test_multilabel_prf_equals_sklearn_at_scalar_and_per_label_thresholds(seed, average, zero_division):
    rng = np.random.default_rng(seed)
    labels, scores = multi_label_data(rng, 70, 8, decimals=2)
    labels[:, 3] = 0  # a label with no positives
    per_label = rng.uniform(0.3, 0.8, size=8)
    for threshold in (0.75, per_label):
        ours = multilabel_prf(labels, scores, threshold=threshold, average=average, zero_division=zero_division)
        expected = precision_recall_fscore_support(
            labels, scores >= threshold, average=average, zero_division=zero_division
        )
        for got, want in zip(ours, expected):
            if want is not None:
                np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_multilabel_prf_with_one_attribute_scores_its_positive_class_only(average):
    # sklearn reads a single column as a binary target and would average over classes 0 and 1
    labels = np.array([[1], [0], [1], [0], [1]])
    scores = np.array([[0.9], [0.8], [0.2], [0.1], [0.95]])
    precision, recall, f1, support = multilabel_prf(labels, scores, threshold=0.5, average=average)
    np.testing.assert_allclose(precision, 2 / 3)  # predicted rows 0, 1, 4; right 0, 4
    np.testing.assert_allclose(recall, 2 / 3)  # true rows 0, 2, 4; found 0, 4
    assert (support is None) == (average is not None)
    if support is not None:
        np.testing.assert_array_equal(support, [3])
    table = per_class_report(labels, scores, ["striped"], multilabel=True, threshold=0.5)
    assert table.loc["striped", "recall"] == pytest.approx(2 / 3)


def test_multilabel_threshold_is_inclusive():
    precision, recall, _, _ = multilabel_prf([[1, 0]], [[0.75, 0.74]], threshold=0.75)
    assert (precision, recall) == (1.0, 1.0)


# ----------------------------------------------------------------------------- attributes, P@k
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [None, 1, 3, 50])
def test_precision_recall_at_k_equals_brute_force_stable_sort_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    labels, scores = multi_label_data(rng, 90, 7, decimals=1)  # many ties at the cut
    labels[:10] = 0  # samples without true labels
    n_true = labels.sum(1).astype(int)
    keep = n_true > 0
    per_sample_k = n_true if k is None else np.full(len(labels), min(k, 7))
    hits = brute_hits_at_k(labels, scores, np.maximum(per_sample_k, 1))[keep]
    precision = np.mean(hits / per_sample_k[keep])
    recall = np.mean(hits / n_true[keep])
    ours = precision_recall_at_k(labels, scores, k=k)
    assert ours == pytest.approx((precision, recall, 2 * precision * recall / (precision + recall)))


def test_precision_at_k_with_own_k_is_r_precision_and_ties_take_lowest_index():
    labels = np.array([[0, 1, 1, 0], [1, 0, 0, 0]])
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]])
    # row 0: k=2 among three tied at 0.5 -> labels 0, 1 -> 1 hit; row 1: k=1 -> label 0 -> 1 hit
    assert precision_recall_at_k(labels, scores) == pytest.approx((0.75, 0.75, 0.75))


def test_samples_without_true_labels_are_left_out_of_p_at_k_and_counted_in_report():
    rng = np.random.default_rng(5)
    labels, scores = multi_label_data(rng, 30, 5)
    labels[labels.sum(1) == 0, 0] = 1
    empty = np.zeros((4, 5), np.float32)
    with_empty = precision_recall_at_k(np.vstack([labels, empty]), np.vstack([scores, rng.random((4, 5))]), k=2)
    assert with_empty == precision_recall_at_k(labels, scores, k=2)
    assert all(np.isnan(precision_recall_at_k(empty, rng.random((4, 5)))))


def test_k_larger_than_label_count_is_clamped():
    rng = np.random.default_rng(6)
    labels, scores = multi_label_data(rng, 25, 4)
    assert precision_recall_at_k(labels, scores, k=10) == precision_recall_at_k(labels, scores, k=4)


# ----------------------------------------------------------------------------- attributes, AP
@pytest.mark.parametrize("seed", SEEDS)
def test_average_precision_per_label_equals_sklearn_with_ties_and_nan_without_positives(seed):
    rng = np.random.default_rng(seed)
    labels, scores = multi_label_data(rng, 200, 10, decimals=1)  # heavy ties
    labels[:, 4] = 0
    labels[:, 7] = 1  # every sample positive
    per_label = average_precision(labels, scores, average=None)
    assert np.isnan(per_label[4])
    expected = [average_precision_score(labels[:, j], scores[:, j]) for j in range(10) if j != 4]
    np.testing.assert_allclose(np.delete(per_label, 4), expected, rtol=1e-12)
    assert average_precision(labels, scores) == pytest.approx(np.mean(expected))
    assert average_precision(labels, scores, average="micro") == pytest.approx(
        average_precision_score(labels, scores, average="micro")
    )


def test_average_precision_hand_worked_with_a_tie_spanning_positive_and_negative():
    # scores .9(+) .5(+) .5(-) .1(+): thresholds .9 -> P 1, R 1/3; .5 -> P 2/3, R 2/3; .1 -> P 3/4, R 1
    labels = np.array([[1], [1], [0], [1]])
    scores = np.array([[0.9], [0.5], [0.5], [0.1]])
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_mean_average_precision_is_nan_when_no_label_has_positives():
    assert np.isnan(average_precision(np.zeros((3, 2)), np.full((3, 2), 0.5)))


def test_average_precision_spans_label_blocks_correctly(monkeypatch):
    monkeypatch.setattr(ranking, "_LABELS_PER_BLOCK", 3)  # 10 labels -> blocks of 3, 3, 3, 1
    rng = np.random.default_rng(9)
    labels, scores = multi_label_data(rng, 50, 10)
    expected = [average_precision_score(labels[:, j], scores[:, j]) for j in range(10)]
    np.testing.assert_allclose(average_precision(labels, scores, average=None), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- threshold tuning
@pytest.mark.parametrize("seed", SEEDS)
def test_tuned_thresholds_reach_the_best_f1_over_all_candidate_thresholds(seed):
    rng = np.random.default_rng(seed)
    labels, scores = multi_label_data(rng, 80, 6, decimals=2)
    labels[:, 2] = 0
    thresholds = tune_thresholds(labels, scores, floor=0.0, cap=1.0, default=0.6)
    assert thresholds[2] == 0.6
    for j in (0, 1, 3, 4, 5):
        best = max(f1_score(labels[:, j], scores[:, j] >= t) for t in np.unique(scores[:, j]))
        assert f1_score(labels[:, j], scores[:, j] >= thresholds[j]) == pytest.approx(best)


def test_tuned_thresholds_are_clamped_to_floor_and_cap():
    labels = np.array([[1, 1], [0, 1], [0, 0]])
    scores = np.array([[0.99, 0.02], [0.5, 0.01], [0.4, 0.0]])
    np.testing.assert_allclose(tune_thresholds(labels, scores, floor=0.05, cap=0.9), [0.9, 0.05])


# ----------------------------------------------------------------------------- hierarchy and report
def test_hierarchy_consistency_and_joint_accuracy_hand_worked():
    parents = np.array([0, 0, 1, 1])
    category_score = np.eye(2)[[0, 0, 1, 1]]
    subcategory_score = np.eye(4)[[1, 2, 3, 0]]  # parents: 0, 1, 1, 0 -> consistent for samples 0 and 2
    category_true = [0, 0, 1, 0]
    subcategory_true = [1, 1, 3, 0]  # both right: samples 0, 2; sample 1 category only; sample 3 subcategory only
    assert hierarchy_metrics(category_true, subcategory_true, category_score, subcategory_score, parents) == (0.5, 0.5)


def report_inputs(seed=0, n_samples=50):
    rng = np.random.default_rng(seed)
    attributes, attribute_scores = multi_label_data(rng, n_samples, 6)
    y_true = {
        "category": rng.integers(0, 3, size=n_samples),
        "subcategory": rng.integers(0, 7, size=n_samples),
        "attributes": attributes,
    }
    y_score = {
        "category": softmax_scores(rng, n_samples, 3),
        "subcategory": softmax_scores(rng, n_samples, 7),
        "attributes": attribute_scores,
    }
    parents = np.array([0, 0, 1, 1, 2, 2, 2])
    return y_true, y_score, parents


def test_report_key_set_is_the_public_contract_and_values_are_json_floats():
    y_true, y_score, parents = report_inputs()
    report = hierarchical_report(y_true, y_score, parents=parents)
    assert list(report) == ["category", "subcategory", "attributes", "hierarchy"]
    assert list(SINGLE_LABEL_KEYS) == ["OP", "OR", "OF1", "CP", "CR", "CF1", "accuracy", "top5_accuracy"]
    assert list(ATTRIBUTE_KEYS) == ["OP", "OR", "OF1", "CP", "CR", "CF1", "P@k", "R@k", "F1@k", "mAP", "micro_AP"]
    assert list(HIERARCHY_KEYS) == ["consistency", "joint_accuracy"]
    assert list(report["category"]) == list(SINGLE_LABEL_KEYS) == list(report["subcategory"])
    assert list(report["attributes"]) == [*ATTRIBUTE_KEYS, "n_labels_without_positives", "n_samples_without_labels"]
    assert list(report["hierarchy"]) == list(HIERARCHY_KEYS)
    assert all(type(value) in (float, int) for level in report.values() for value in level.values())
    json.dumps(report, allow_nan=False)
    assert "hierarchy" not in hierarchical_report(y_true, y_score)


def test_report_numbers_equal_the_individual_sklearn_metrics():
    y_true, y_score, parents = report_inputs(seed=1)
    thresholds = np.linspace(0.3, 0.8, 6)
    report = hierarchical_report(y_true, y_score, parents=parents, threshold=thresholds)
    for level in ("category", "subcategory"):
        predicted = y_score[level].argmax(1)
        labels = range(y_score[level].shape[1])
        weighted = precision_recall_fscore_support(y_true[level], predicted, labels=labels, average="weighted", zero_division=0)
        macro = precision_recall_fscore_support(y_true[level], predicted, labels=labels, average="macro", zero_division=0)
        expected = dict(zip(("OP", "OR", "OF1", "CP", "CR", "CF1"), (*weighted[:3], *macro[:3])))
        expected["accuracy"] = accuracy_score(y_true[level], predicted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k=5 >= 3 categories: sklearn warns of a perfect score
            expected["top5_accuracy"] = top_k_accuracy_score(y_true[level], y_score[level], k=5, labels=labels)
        assert report[level] == pytest.approx(expected)
    attributes, scores = y_true["attributes"], y_score["attributes"]
    micro = precision_recall_fscore_support(attributes, scores >= thresholds, average="micro", zero_division=0)
    assert (report["attributes"]["OP"], report["attributes"]["OR"], report["attributes"]["OF1"]) == pytest.approx(micro[:3])
    assert report["attributes"]["mAP"] == pytest.approx(average_precision_score(attributes, scores, average="macro"))
    assert report["attributes"]["micro_AP"] == pytest.approx(average_precision_score(attributes, scores, average="micro"))
    assert report["attributes"]["P@k"] == pytest.approx(precision_recall_at_k(attributes, scores)[0])
    consistency = np.mean(parents[y_score["subcategory"].argmax(1)] == y_score["category"].argmax(1))
    assert report["hierarchy"]["consistency"] == pytest.approx(consistency)


def test_report_counts_labels_without_positives_and_leaves_them_out_of_map():
    y_true, y_score, _ = report_inputs(seed=2)
    y_true["attributes"][:, [1, 4]] = 0
    report = hierarchical_report(y_true, y_score)
    assert report["attributes"]["n_labels_without_positives"] == 2
    kept = [0, 2, 3, 5]
    expected = np.mean([average_precision_score(y_true["attributes"][:, j], y_score["attributes"][:, j]) for j in kept])
    assert report["attributes"]["mAP"] == pytest.approx(expected)


def test_per_class_report_equals_sklearn_per_class_values():
    y_true, y_score, _ = report_inputs(seed=3)
    names = [f"sub{j}" for j in range(7)]
    table = per_class_report(y_true["subcategory"], y_score["subcategory"], names)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true["subcategory"], y_score["subcategory"].argmax(1), labels=range(7), zero_division=0
    )
    assert list(table.columns) == ["precision", "recall", "f1", "support"]
    assert list(table.index) == names
    np.testing.assert_allclose(table[["precision", "recall", "f1"]].to_numpy(), np.column_stack([precision, recall, f1]))
    np.testing.assert_array_equal(table["support"], support)

    attribute_names = list("abcdef")
    table = per_class_report(y_true["attributes"], y_score["attributes"], attribute_names, multilabel=True, threshold=0.5)
    assert list(table.columns) == ["precision", "recall", "f1", "AP", "support"]
    expected_ap = [average_precision_score(y_true["attributes"][:, j], y_score["attributes"][:, j]) for j in range(6)]
    np.testing.assert_allclose(table["AP"], expected_ap)
    _, recall, _, _ = precision_recall_fscore_support(y_true["attributes"], y_score["attributes"] >= 0.5, zero_division=0)
    np.testing.assert_allclose(table["recall"], recall)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: classification_prf([0, 1], np.full((3, 2), 0.5)), r"y_true has 2 samples but y_score has 3"),
        (lambda: classification_prf([0, 5], np.full((2, 3), 0.3)), r"class index 5 at row 1.*3 columns"),
        (lambda: classification_prf([0.5, 1.0], np.full((2, 2), 0.5)), r"whole class indices, got 0.5 at row 0"),
        (lambda: classification_prf([[1, 1], [0, 1]], np.full((2, 2), 0.5)), r"row 0 .*exactly one 1"),
        (lambda: accuracy([0, 1], np.array([[0.5, np.nan], [0.5, 0.5]])), r"1 NaN or infinite.*row 0, column 1"),
        (lambda: accuracy([0, 1], np.array([[2.0, -1.0], [0.5, 0.5]])), r"probabilities in \[0, 1\].*-1 to 2.*logits"),
        (lambda: accuracy([0, 1], np.array([0.5, 0.5])), r"must be 2-D .*shape \(2,\)"),
        (lambda: accuracy(["a"], [[1.0]]), r"y_true must hold class indices or one-hot rows, got dtype <U1"),
        (lambda: accuracy([0], [["a"]]), r"y_score must hold numeric probabilities, got dtype <U1"),
        (lambda: multilabel_prf([["x"]], [[1.0]]), r"y_true must hold multi-hot 0/1, got dtype <U1"),
        (lambda: top_k_accuracy([0], [[1.0]], k=0), r"k must be a positive integer, got 0"),
        (lambda: multilabel_prf(np.ones((2, 3)), np.ones((2, 4))), r"shape \(2, 3\) but y_score has shape \(2, 4\)"),
        (lambda: multilabel_prf([[0, 2]], [[0.1, 0.2]]), r"only 0 and 1, got 2 at row 0, column 1"),
        (lambda: multilabel_prf([[0, np.nan]], [[0.1, 0.2]]), r"only 0 and 1, got nan"),
        (lambda: multilabel_prf([[0, 1]], [[0.1, 0.2]], threshold=[0.5]), r"threshold .*shape \(2,\).*got shape \(1,\)"),
        (lambda: multilabel_prf([[0, 1]], [[0.1, 0.2]], threshold=1.5), r"threshold must lie in \[0, 1\], got \[1.5\]"),
        (lambda: classification_prf([0], [[1.0]], average="samples"), r"average must be one of"),
        (lambda: classification_prf([0], [[1.0]], zero_division="warn"), r"zero_division must be 0.0, 1.0 or np.nan"),
        (lambda: tune_thresholds([[1]], [[0.5]], floor=0.9, cap=0.1), r"floor \(0.9\) must not exceed cap \(0.1\)"),
        (lambda: per_class_report([0, 1], np.eye(2), ["a"]), r"names has 1 entries but y_score has 2 columns"),
    ],
)
def test_bad_input_raises_a_message_naming_expected_and_received(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_report_rejects_wrong_keys_and_mismatched_levels_naming_them():
    y_true, y_score, parents = report_inputs()
    with pytest.raises(ValueError, match=r"missing \['attributes'\], unexpected \['attribute'\]"):
        hierarchical_report({**{k: v for k, v in y_true.items() if k != "attributes"}, "attribute": 1}, y_score)
    short = {**y_score, "attributes": y_score["attributes"][:10]}
    with pytest.raises(ValueError, match=r"y_true\['attributes'\] has shape \(50, 6\) but y_score\['attributes'\] has shape \(10, 6\)"):
        hierarchical_report(y_true, short)
    with pytest.raises(ValueError, match=r"parents must be integer category indices of shape \(7,\)"):
        hierarchical_report(y_true, y_score, parents=parents[:5])
    with pytest.raises(ValueError, match=r"parents\[6\] = 3 is not a category index \(0..2\)"):
        hierarchical_report(y_true, y_score, parents=np.array([0, 0, 1, 1, 2, 2, 3]))
    with pytest.raises(TypeError, match="y_score must be a dict"):
        hierarchical_report(y_true, [1, 2, 3])


# ----------------------------------------------------------------------------- module hygiene
def test_every_default_attribute_threshold_is_the_one_in_thresholds():
    defaults = {
        function.__name__: inspect.signature(function).parameters[name].default
        for function, name in ((multilabel_prf, "threshold"), (hierarchical_report, "threshold"),
                               (per_class_report, "threshold"), (tune_thresholds, "default"))
    }
    assert defaults == dict.fromkeys(defaults, DEFAULT_THRESHOLD)
    assert DEFAULT_THRESHOLD == 0.75  # the paper's value
def test_docstring_examples_hold():
    results = [doctest.testmod(module, extraglobs={"np": np}) for module in (classification, ranking, report_module)]
    assert sum(result.attempted for result in results) >= 10 and sum(result.failed for result in results) == 0


def test_importing_metrics_does_not_import_tensorflow():
    code = "import sys, fashion_hier.metrics; print('tensorflow' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"
