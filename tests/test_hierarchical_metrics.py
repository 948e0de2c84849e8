"""hP, hR, hF over the category -> subcategory tree against hiclass.metrics and hand-worked cases."""
import doctest
import warnings

import numpy as np
import pytest

hiclass_metrics = pytest.importorskip("hiclass.metrics")

from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.metrics import hierarchical, hierarchical_prf  # noqa: E402

SEEDS = (0, 1, 2, 3)
SIZES = ((1, 2, 3), (40, 3, 7), (500, 6, 25))  # (samples, categories, subcategories)


def random_tree(rng, n_categories, n_subcategories):
    """``parents`` with every category owning at least one subcategory."""
    parents = np.concatenate([np.arange(n_categories), rng.integers(0, n_categories, n_subcategories - n_categories)])
    return rng.permutation(parents)


def name(level, index):
    # hiclass compares names, so level-prefixed names keep a category and a subcategory distinct
    return "" if index < 0 else f"{level}{index}"


def hiclass_prf(y_true, y_pred, average, zero_division="warn"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hiclass warns on every sample with F1 0/0 under "warn"
        return (hiclass_metrics.precision(y_true, y_pred, average=average),
                hiclass_metrics.recall(y_true, y_pred, average=average),
                hiclass_metrics.f1(y_true, y_pred, average=average, zero_division=zero_division))


def paths(categories, subcategories):
    """One [category, subcategory] path per sample; a stopped subcategory is hiclass's empty cell."""
    return [[name("c", c), name("s", s)] for c, s in zip(categories, subcategories)]


def union_of_paths(categories, subcategories, parents):
    """Each sample as two paths, [category] and [parent(sub), sub], which hiclass takes as a union.

    This is the ancestor-augmented set even when the subcategory's parent is not the category
    beside it, which a single hiclass path cannot express.
    """
    rows = []
    for c, s in zip(categories, subcategories):
        second = ["", ""] if s < 0 else [name("c", parents[s]), name("s", s)]
        rows.append([[name("c", c), ""], second])
    return rows


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_samples, n_categories, n_subcategories", SIZES)
@pytest.mark.parametrize("average", ["micro", "macro"])
def test_consistent_and_stopped_predictions_equal_hiclass_on_label_paths(
    seed, n_samples, n_categories, n_subcategories, average
):
    rng = np.random.default_rng(seed)
    parents = random_tree(rng, n_categories, n_subcategories)
    subcategory_true = rng.integers(0, n_subcategories, n_samples)
    category_true = parents[subcategory_true]
    guessed = rng.integers(0, n_subcategories, n_samples)
    subcategory_pred = np.where(rng.random(n_samples) < 0.6, subcategory_true, guessed)
    category_pred = parents[subcategory_pred]
    stopped = rng.random(n_samples) < 0.3
    category_pred[stopped] = np.where(rng.random(stopped.sum()) < 0.5, category_true[stopped],
                                      rng.integers(0, n_categories, stopped.sum()))
    subcategory_pred[stopped] = -1

    ours = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents, average=average)
    oracle = hiclass_prf(paths(category_true, subcategory_true), paths(category_pred, subcategory_pred), average)
    np.testing.assert_allclose(ours, oracle, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n_samples, n_categories, n_subcategories", SIZES)
@pytest.mark.parametrize("average", ["micro", "macro"])
def test_inconsistent_predictions_and_misfiled_truth_equal_hiclass_on_unions_of_paths(
    seed, n_samples, n_categories, n_subcategories, average
):
    rng = np.random.default_rng(seed)
    parents = random_tree(rng, n_categories, n_subcategories)
    category_true, category_pred = rng.integers(0, n_categories, (2, n_samples))  # independent of the tree
    subcategory_true = rng.integers(0, n_subcategories, n_samples)
    subcategory_pred = rng.integers(-1, n_subcategories, n_samples)

    ours = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents,
                            n_categories=n_categories, average=average)
    oracle = hiclass_prf(union_of_paths(category_true, subcategory_true, parents),
                         union_of_paths(category_pred, subcategory_pred, parents), average)
    np.testing.assert_allclose(ours, oracle, rtol=1e-12)


def test_hand_worked_case_with_stopped_inconsistent_and_misfiled_rows():
    parents = np.array([0, 0, 1, 2])  # s0, s1 under c0; s2 under c1; s3 under c2
    category_true = [0, 0, 1, 1, 0]
    subcategory_true = [0, 1, 2, 2, 3]  # the last row is filed under c0 though s3's parent is c2
    category_pred = [0, 0, 1, 0, 0]
    subcategory_pred = [1, -1, -1, 2, 3]
    # row  T                P             |P∩T| |P| |T|
    # 0    {c0,s0}          {c0,s1}       1     2   2   wrong sibling
    # 1    {c0,s1}          {c0}          1     1   2   stopped, right category
    # 2    {c1,s2}          {c1}          1     1   2   stopped, right category
    # 3    {c1,s2}          {c0,c1,s2}    2     3   2   inconsistent prediction
    # 4    {c0,c2,s3}       {c0,c2,s3}    3     3   3   misfiled, predicted the same way
    micro = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents)
    assert micro == pytest.approx((8 / 10, 8 / 11, 2 * (8 / 10) * (8 / 11) / (8 / 10 + 8 / 11)), rel=1e-12)
    precision = np.array([1 / 2, 1, 1, 2 / 3, 1])
    recall = np.array([1 / 2, 1 / 2, 1 / 2, 1, 1])
    f1 = 2 * precision * recall / (precision + recall)
    macro = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents, average="macro")
    assert macro == pytest.approx((precision.mean(), recall.mean(), f1.mean()), rel=1e-12)


def test_score_matrices_and_one_hot_truth_give_what_their_indices_give():
    rng = np.random.default_rng(5)
    parents = np.array([0, 1, 1, 2, 0])
    category_score, subcategory_score = rng.random((30, 3)), rng.random((30, 5))
    subcategory_true = rng.integers(0, 5, 30)
    category_true = parents[subcategory_true]
    from_indices = hierarchical_prf(category_true, subcategory_true, category_score.argmax(1),
                                    subcategory_score.argmax(1), parents, average="macro")
    from_scores = hierarchical_prf(np.eye(3)[category_true], np.eye(5)[subcategory_true], category_score,
                                   subcategory_score, parents, average="macro")
    assert from_scores == from_indices


def test_parents_from_a_label_space_and_names_unique_only_within_a_level():
    # "Watches" is both a category and its own subcategory, as in the Fashion Product Images catalogue
    space = LabelSpace(["Topwear", "Watches"], ["Shirts", "Tshirts", "Watches"], [],
                       {"Shirts": "Topwear", "Tshirts": "Topwear", "Watches": "Watches"})
    category_true, subcategory_true = [1, 0], [2, 0]
    category_pred, subcategory_pred = [1, 0], [-1, 1]
    ours = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, space.parent_index)
    assert ours[:2] == pytest.approx((2 / 3, 2 / 4))
    raw = [[space.categories[c], space.subcategories[s] if s >= 0 else ""]
           for c, s in zip(category_true + category_pred, subcategory_true + subcategory_pred)]
    # hiclass compares names: a stopped "Watches" then looks like a full, right prediction
    assert hiclass_metrics.precision(raw[:2], raw[2:]) == pytest.approx(2 / 3)
    assert hiclass_metrics.recall(raw[:2], raw[2:]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("average", ["micro", "macro"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_zero_division_sets_f1_without_common_node_as_hiclass(average, zero_division):
    parents = np.array([0, 1])
    category_true, subcategory_true = [0, 0], [0, 0]
    category_pred, subcategory_pred = [1, 0], [1, 0]  # row 0 shares nothing with its truth
    ours = hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents,
                            average=average, zero_division=zero_division)
    # hiclass's macro F1 with zero_division=0 raises TypeError (5.0.8); its "warn" gives 0 too
    oracle = hiclass_prf(paths(category_true, subcategory_true), paths(category_pred, subcategory_pred), average,
                         "warn" if zero_division == 0.0 else zero_division)
    np.testing.assert_allclose(ours, oracle, rtol=1e-12)
    everything_wrong = hierarchical_prf([0], [0], [1], [1], parents, zero_division=zero_division)
    assert everything_wrong == (0.0, 0.0, zero_division)


def test_nan_zero_division_leaves_those_samples_out_of_macro_f1():
    parents = np.array([0, 1])
    result = hierarchical_prf([0, 0], [0, 0], [1, 0], [1, 0], parents, average="macro", zero_division=np.nan)
    assert result == (0.5, 0.5, 1.0)
    assert np.isnan(hierarchical_prf([0], [0], [1], [1], parents, average="macro", zero_division=np.nan)[2])


@pytest.mark.parametrize("call, message", [
    (lambda: hierarchical_prf([0], [0], [0], [-2], np.array([0, 1])),
     r"subcategory_pred has class index -2 at row 0.*; or -1 where the prediction stops at the category"),
    (lambda: hierarchical_prf([0], [0], [-1], [0], np.array([0, 1])), "category_pred has class index -1"),
    (lambda: hierarchical_prf([0], [-1], [0], [0], np.array([0, 1])), "subcategory_true has class index -1"),
    (lambda: hierarchical_prf([0, 1], [0], [0], [0], np.array([0, 1])),
     "category_true has 2 samples but subcategory_true has 1"),
    (lambda: hierarchical_prf([0], [0], np.ones((1, 2)) / 2, [0], np.array([0, 2])),
     r"parents\[1\] = 2 is not a category index \(0..1\)"),
    (lambda: hierarchical_prf([0], [0], [0], np.ones((1, 3)) / 3, np.array([0, 1])),
     "subcategory_pred has 3 score columns, expected 2"),
    (lambda: hierarchical_prf([0], [0], [0], [0], np.array([0.0, 1.0])), "parents must be integer category indices"),
    (lambda: hierarchical_prf([0], [0], [0], [0], np.array([[0, 1]])), "parents must be a non-empty 1-D array"),
    (lambda: hierarchical_prf([0], [0], np.ones((1, 2)) / 2, [0], np.array([0, 1]), n_categories=3),
     "category_pred has 2 score columns but n_categories is 3"),
    (lambda: hierarchical_prf([0], [0], [0], [0], np.array([0, 1]), average="weighted"), "average must be one of"),
    (lambda: hierarchical_prf([], [], [], [], np.array([0, 1])), "at least one sample"),
])
def test_bad_input_raises_a_message_naming_expected_and_received(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_misfiled_truth_is_logged(caplog):
    with caplog.at_level("INFO", logger="fashion_hier"):
        hierarchical_prf([1, 0], [0, 0], [0, 0], [0, 0], np.array([0, 1]))
    assert "1 of 2 true rows are filed under a category other than" in caplog.text


def test_docstring_examples_hold():
    result = doctest.testmod(hierarchical, extraglobs={"np": np})
    assert result.attempted >= 5 and result.failed == 0
