"""Attribute columns (issue 20): the schema, missing = unknown, applicability, the per-group model and loss.

Every number is checked against a numpy oracle written here from the definitions, not from the code.
"""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from fashion_hier.config import ConfigError, LossConfig, TrainConfig
from fashion_hier.decoding import group_columns, prediction_columns
from fashion_hier.labels import UNKNOWN, AttributeGroup, LabelColumns, LabelSpace
from fashion_hier.losses import GroupedAttributeLoss, grouped_attribute_loss, losses_from_config
from fashion_hier.models import GroupActivation, build_head_model

GROUPS = (AttributeGroup("colour"), AttributeGroup("sleeve"), AttributeGroup("tags", "multi", separator="|"))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "cat": ["Top", "Top", "Top", "Top", "Shoe", "Shoe"],
        "sub": ["T", "T", "S", "S", "B", "B"],
        "colour": ["Red", "Blue", None, "Red", "Red", "NA"],
        "sleeve": ["Long", "Short", "dummy", "Long", None, None],
        "tags": ["a|b", "", "b", " c | a ", "c", None],
    })


def _space(**columns) -> LabelSpace:
    return LabelSpace.from_columns(_frame(), LabelColumns("cat", "sub", groups=GROUPS,
                                                          missing_values=("NA", "dummy"), **columns))


# ---- schema ---------------------------------------------------------------------------------

def test_groups_learn_values_slices_and_where_they_apply():
    space = _space()
    assert space.grouped and space.attribute_layout == (("single", 2), ("single", 2), ("multi", 3))
    assert [(g.name, g.values, g.start, g.applies_to) for g in space.groups] == [
        ("colour", ("Blue", "Red"), 0, ("Shoe", "Top")),
        ("sleeve", ("Long", "Short"), 2, ("Top",)),        # no shoe row has a sleeve: it does not apply there
        ("tags", ("a", "b", "c"), 4, ("Shoe", "Top")),
    ]
    assert space.attributes == ["colour=Blue", "colour=Red", "sleeve=Long", "sleeve=Short", "tags=a", "tags=b", "tags=c"]
    np.testing.assert_array_equal(space.applicability(), [[True, False, True], [True, True, True]])


def test_missing_cells_and_groups_that_do_not_apply_are_unknown_never_no():
    y = _space().encode(_frame())["attributes"]
    U = UNKNOWN
    expected = np.array([
        [0, 1, 1, 0, 1, 1, 0],   # Red, Long, a|b
        [1, 0, 0, 1, 0, 0, 0],   # Blue, Short, tags entered as "" ... an empty cell: unknown (next line fixes)
        [U, U, U, U, 0, 1, 0],   # colour empty, sleeve "dummy" (a missing marker), b
        [0, 1, 1, 0, 1, 0, 1],   # " c | a " -> a, c (stripped)
        [0, 1, U, U, 0, 0, 1],   # Shoe: sleeve does not apply
        [U, U, U, U, U, U, U],   # Shoe: colour "NA" (missing), tags NaN
    ], dtype=np.float32)
    expected[1, 4:] = U  # the empty string is a missing cell, not "no tag"
    np.testing.assert_array_equal(y, expected)


def test_a_share_threshold_and_a_declared_list_decide_applicability():
    frame = _frame()
    # 1 of 2 shoe rows has a colour: a share of 0.5 applies at 0.5, not at 0.6
    assert _space(min_known_share=0.5).group("colour").applies_to == ("Shoe", "Top")
    assert _space(min_known_share=0.6).group("colour").applies_to == ("Top",)
    declared = (AttributeGroup("colour", applies_to=("Top",)), *GROUPS[1:])
    space = LabelSpace.from_columns(frame, LabelColumns("cat", "sub", groups=declared, missing_values=("NA",)))
    assert space.group("colour").applies_to == ("Top",)
    assert (space.encode(frame)["attributes"][4:, :2] == UNKNOWN).all()  # the shoe's Red is not trained


def test_label_space_with_groups_round_trips_through_json_and_old_files_still_load():
    space = _space()
    again = LabelSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and again.groups == space.groups
    np.testing.assert_array_equal(again.encode(_frame())["attributes"], space.encode(_frame())["attributes"])
    flat = LabelSpace.from_frame(_frame(), "cat", "sub", ["colour"])
    old = {**flat.to_dict(), "version": 1, "columns": {"category": "cat", "subcategory": "sub",
                                                       "attributes": ["colour"], "attribute_separator": None}}
    loaded = LabelSpace.from_dict(old)   # a 0.1/0.2 labels.json
    assert not loaded.grouped and loaded.attributes == ["Blue", "NA", "Red"] and loaded.attribute_layout is None
    # the flat tag set keeps "empty = none of them", and a missing marker is no tag
    assert LabelSpace.from_frame(_frame(), "cat", "sub", ["colour"], missing_values=["NA"]).attributes == ["Blue", "Red"]


@pytest.mark.parametrize("columns, message", [
    ({"groups": [{"name": "a", "kind": "one"}]}, "groups\\[0\\].kind: 'one' is not one of"),
    ({"groups": [{"name": "a", "kind": "multi"}]}, "a 'multi' group needs a non-empty separator"),
    ({"groups": [{"name": "a", "separator": "|"}]}, "a 'single' group takes none"),
    ({"groups": [{"name": "category"}]}, "'category' is taken by a prediction column"),
    ({"groups": [{"name": "a"}, {"name": "a"}]}, "group names must be unique"),
    ({"groups": [{"name": "a"}], "attributes": ["season"]}, "give one of them"),
    ({"groups": [{"name": "a"}], "min_known_share": 0}, "min_known_share must lie in"),
    ({"groups": [{"name": "a", "colum": "x"}]}, "unknown config key 'data.columns.groups\\[0\\].colum'"),
])
def test_bad_group_configs_are_one_line_errors_naming_the_key(columns, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"data": {"columns": columns}})


def test_a_group_with_no_value_where_it_applies_is_refused_naming_column_and_remedy():
    frame = _frame().assign(sleeve=None)
    with pytest.raises(ValueError, match="group 'sleeve': column 'sleeve' has no value.*missing_values"):
        LabelSpace.from_columns(frame, LabelColumns("cat", "sub", groups=GROUPS))


# ---- model ----------------------------------------------------------------------------------

def test_group_activation_is_a_softmax_per_single_group_and_sigmoids_per_multi_group(tmp_path):
    logits = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    layer = GroupActivation([("single", 2), ("single", 2), ("multi", 3)])
    out = keras.ops.convert_to_numpy(layer(logits))

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out[:, :2], softmax(logits[:, :2]), rtol=1e-5)
    np.testing.assert_allclose(out[:, 2:4], softmax(logits[:, 2:4]), rtol=1e-5)
    np.testing.assert_allclose(out[:, 4:], 1 / (1 + np.exp(-logits[:, 4:])), rtol=1e-5)

    head = build_head_model(2, 3, 7, feature_dim=6, units=4, attribute_layout=_space().attribute_layout)
    head.save(tmp_path / "head.keras")
    features = np.random.default_rng(1).random((3, 6)).astype(np.float32)
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "head.keras").predict(features, verbose=0)["attributes"],
                               head.predict(features, verbose=0)["attributes"], rtol=1e-6)
    with pytest.raises(ValueError, match="sizes add up to 6 but num_attributes is 7"):
        build_head_model(2, 3, 7, feature_dim=6, attribute_layout=[("single", 3), ("multi", 3)])


# ---- loss -----------------------------------------------------------------------------------

LAYOUT = (("single", 3), ("multi", 2), ("single", 2))


def _random_case(seed: int, rows: int = 16):
    rng = np.random.default_rng(seed)
    y = np.zeros((rows, 7), dtype=np.float32)
    y[np.arange(rows), rng.integers(0, 3, rows)] = 1
    y[:, 3:5] = rng.integers(0, 2, (rows, 2))
    y[np.arange(rows), 5 + rng.integers(0, 2, rows)] = 1
    for start, stop in ((0, 3), (3, 5), (5, 7)):  # ~40% of each group's cells unknown
        y[rng.random(rows) < 0.4, start:stop] = UNKNOWN
    logits = rng.normal(size=(rows, 7))
    p = np.concatenate([_softmax(logits[:, :3]), 1 / (1 + np.exp(-logits[:, 3:5])), _softmax(logits[:, 5:])], axis=1)
    return y, p.astype(np.float32), rng


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _oracle(y, p, weights, negatives, gamma):
    """The documented loss, row by row, in plain numpy."""
    per_row = []
    for t, q in zip(y, p):
        total = 0.0
        for (kind, size), start in zip(LAYOUT, (0, 3, 5)):
            tt, qq = t[start:start + size], q[start:start + size]
            if tt[0] < 0:
                continue  # unknown: contributes nothing
            if kind == "single":
                k = int(tt.argmax())
                total += -weights[start + k] * (1 - qq[k]) ** gamma * np.log(qq[k])
            else:
                terms = []
                for j in range(size):
                    pt = qq[j] if tt[j] == 1 else 1 - qq[j]
                    w = weights[start + j] if tt[j] == 1 else negatives[start + j]
                    terms.append(-w * (1 - pt) ** gamma * np.log(pt))
                total += np.mean(terms)
        per_row.append(total / len(LAYOUT))
    return float(np.mean(per_row))


@pytest.mark.parametrize("seed, gamma", [(0, 0.0), (1, 2.0), (2, 0.5)])
def test_grouped_loss_equals_the_numpy_oracle(seed, gamma):
    y, p, rng = _random_case(seed)
    weights, negatives = rng.uniform(0.5, 2, 7), rng.uniform(0.5, 2, 7)
    loss = GroupedAttributeLoss(LAYOUT, weights, negatives, focal_gamma=gamma)
    assert float(loss(y, p)) == pytest.approx(_oracle(y, p, weights, negatives, gamma), rel=1e-5)


def test_an_unknown_entry_changes_neither_the_loss_nor_the_gradient():
    import tensorflow as tf

    y, _, rng = _random_case(3)
    logits = tf.Variable(rng.normal(size=y.shape).astype(np.float32))
    activation = GroupActivation(LAYOUT)
    loss = GroupedAttributeLoss(LAYOUT, rng.uniform(0.5, 2, 7), rng.uniform(0.5, 2, 7), focal_gamma=1.0)

    def value_and_gradient():
        with tf.GradientTape() as tape:
            value = loss(y, activation(logits))
        return float(value), tape.gradient(value, logits).numpy()

    value, gradient = value_and_gradient()
    unknown = y < 0
    assert unknown.any() and np.all(gradient[unknown] == 0)
    logits.assign(np.where(unknown, rng.normal(size=y.shape) * 5, logits.numpy()).astype(np.float32))
    moved_value, moved_gradient = value_and_gradient()
    assert moved_value == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(moved_gradient, gradient, rtol=1e-5, atol=1e-7)
    # the control: reading the unknown entries as "no" (the old behaviour) does change the loss
    as_negative = np.where(unknown, 0.0, y)
    for start, stop in ((0, 3), (5, 7)):  # a single group's unknown row read as "no" has no true class: skip it
        as_negative[(y[:, start] < 0), start:stop] = UNKNOWN
    assert float(loss(as_negative, activation(logits))) != pytest.approx(moved_value, rel=1e-3)


def test_grouped_weights_count_only_known_rows():
    y, _, _ = _random_case(4, rows=200)
    config = LossConfig(weighting="inverse_frequency")
    loss = grouped_attribute_loss(config, LAYOUT, y)
    known = y[:, 0] >= 0
    counts = y[known, :3].sum(axis=0).astype(np.float64)
    expected = (1 / counts) * counts.sum() / (counts * (1 / counts)).sum()  # mean 1 over the known samples
    np.testing.assert_allclose(loss.class_weights[:3], expected, rtol=1e-9)
    positives, seen = y[y[:, 3] >= 0, 3:5].sum(axis=0).astype(np.float64), (y[:, 3] >= 0).sum()
    cells = np.concatenate([positives, seen - positives])
    both = (1 / cells) * cells.sum() / (cells * (1 / cells)).sum()
    np.testing.assert_allclose([*loss.class_weights[3:5], *loss.neg_weights[3:5]], both, rtol=1e-9)


def test_focal_loss_on_the_flat_tag_set_is_refused():
    flat = LabelSpace.from_frame(_frame(), "cat", "sub", ["colour"])
    labels = flat.encode(_frame().dropna(subset=["colour"]).query("colour != 'NA'"))
    with pytest.raises(ValueError, match="focal_gamma applies to attribute columns"):
        losses_from_config(LossConfig(focal_gamma=2.0), flat, labels)


def test_compile_from_stored_counts_gives_the_loss_training_used():
    from fashion_hier.task import class_counts_from_labels, default_losses

    space = _space()
    targets = space.encode(_frame())
    config = LossConfig(weighting="smoothed", focal_gamma=1.5)
    trained = losses_from_config(config, space, targets)["attributes"]
    stored = default_losses(space, class_counts_from_labels(targets, space), config)["attributes"]
    p = np.full((6, 7), 0.5, dtype=np.float32)
    assert stored.get_config() == trained.get_config()
    assert float(stored(targets["attributes"], p)) == pytest.approx(float(trained(targets["attributes"], p)))


# ---- decoding -------------------------------------------------------------------------------

def test_answers_per_group_leave_out_groups_that_do_not_apply_to_the_predicted_category():
    space = _space()
    assert prediction_columns(space) == ("image_path", "category", "category_score", "subcategory",
                                         "subcategory_score", "colour", "colour_score", "sleeve", "sleeve_score",
                                         "tags", "tags_score", "needs_review")
    scores = np.array([[0.3, 0.7, 0.9, 0.1, 0.8, 0.2, 0.76],
                       [0.6, 0.4, 0.2, 0.8, 0.1, 0.9, 0.5]], dtype=np.float32)
    category = np.array([space.categories.index("Top"), space.categories.index("Shoe")])
    table = group_columns(scores, np.full(7, 0.75), space, category)
    assert table["colour"][0] == "Red" and table["colour_score"][0] == pytest.approx(0.7)
    assert table["sleeve"] == ["Long", None] and np.isnan(table["sleeve_score"][1])  # no sleeves on shoes
    assert table["tags"][0] == "a|c" and table["tags_score"][0] == "0.8000|0.7600"
    # values are limited to those each category had in training: shoes were only ever Red and tagged c, so
    # the shoe's 0.6 Blue and 0.9 b are not answers (Red renormalised to 1, c at 0.5 below its threshold)
    assert table["colour"][1] == "Red" and table["colour_score"][1] == pytest.approx(1.0)
    assert table["tags"][1] == "" and table["tags_score"][1] == ""
    by_category = space.group("tags").values_by_category
    assert by_category == {"Shoe": ("c",), "Top": ("a", "b", "c")}
    mask = space.value_mask()
    np.testing.assert_array_equal(mask[space.categories.index("Shoe")], [False, True, False, False, False, False, True])


@pytest.mark.parametrize("attribute_weight, moves", [(0.0, False), (1.0, True)])
def test_attribute_weight_is_the_attribute_levels_share_of_the_loss(attribute_weight, moves):
    """With weight 0 (and no L2) the attribute output layer gets no gradient: its weights stay as built."""
    from fashion_hier.features import fit_head

    space = _space()
    targets = space.encode(_frame())
    features = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    config = TrainConfig.from_dict({
        "model": {"head": "independent", "units": 4, "l2": 0.0, "dropout": 0.0},
        "loss": {"weighting": "none", "attribute_weight": attribute_weight},
        "training": {"epochs": 2, "batch_size": 3, "seed": 0, "run_eagerly": True},
    })
    keras.utils.set_random_seed(0)
    initial = build_head_model(space.num_categories, space.num_subcategories, space.num_attributes, feature_dim=8,
                               units=4, l2=0.0, dropout=0.0, head="independent",
                               attribute_layout=space.attribute_layout).get_layer("attributes_logits").get_weights()
    fitted = fit_head(config, space, features, targets)
    trained = fitted.model.get_layer("attributes_logits").get_weights()
    changed = any(not np.array_equal(a, b) for a, b in zip(initial, trained))
    assert changed is moves
    assert config.loss.level_weights == {"category": 1.0, "subcategory": 1.0, "attributes": attribute_weight}


# ---- the evaluation's sample grid ---------------------------------------------------------------

def test_sample_captions_give_each_column_its_own_line_and_verdict():
    from fashion_hier.evaluate import _caption_verdicts, _captions

    space = _space()
    targets = {"category": np.array([0, 0]), "subcategory": np.array([0, 0]),
               "attributes": space.encode(_frame().iloc[[0, 2]])["attributes"]}  # rows: all known; colour empty
    predicted = {**targets, "attributes": targets["attributes"].clip(0, 1).copy()}
    colour = next(group for group in space.groups if group.name == "colour")
    predicted["attributes"][:, colour.slice] = 0
    predicted["attributes"][:, colour.start + list(colour.values).index("Blue")] = 1  # first row: Red -> Blue
    truth = _captions(targets, space)
    assert truth[0].split("\n")[1:] == ["colour: Red", "sleeve: Long", "tags: a, b"]
    assert truth[1].split("\n")[1] == "colour: ?"  # the catalogue left it empty
    assert _captions(predicted, space)[1].split("\n")[1] == "colour: Blue"
    verdicts = _caption_verdicts(targets, predicted, space)
    # one per line: the pair, then colour, sleeve, tags; an empty cell is neither right nor wrong
    np.testing.assert_array_equal(verdicts, [[True, False, True, True], [True, True, True, True]])
