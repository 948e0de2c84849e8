"""Class weights and weighted losses against hand-computed values, numpy oracles and Keras's own losses."""
import json

import keras
import numpy as np
import pytest

from fashion_hier.losses import (WeightedBinaryCrossentropy, WeightedCategoricalCrossentropy,
                                 attribute_weights, inverse_frequency_weights)
from fashion_hier.models import build_head_model

EPSILON = keras.config.epsilon()


def _numpy_weighted_ce(labels, probabilities, weights):
    """Oracle: mean over the batch of -log(p[true class]) * weight[true class] (Keras's clipping)."""
    p = probabilities / probabilities.sum(axis=1, keepdims=True)
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.mean(-np.log(p[np.arange(len(labels)), labels]) * weights[labels])


def _numpy_weighted_bce(y, p, pos, neg):
    """Oracle: mean over batch of the mean over labels of -(pos y log p + neg (1-y) log(1-p))."""
    p = np.clip(p, EPSILON, 1 - EPSILON)
    per_label = -(pos * y * np.log(p) + neg * (1 - y) * np.log(1 - p))
    return per_label.mean(axis=1).mean()


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype("float32") * 3
    labels = np.array([0, 1, 3, 3, 2, 1])
    return labels, logits


def _value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


# ---------------------------------------------------------------- inverse_frequency_weights
def test_inverse_frequency_weights_by_hand():
    # counts [3, 1, 0]: raw 1/3, 1; mean over the 4 samples (3 k/3 + k) / 4 = 1 -> k = 2.
    np.testing.assert_allclose(inverse_frequency_weights([0, 0, 0, 1], 3), [2 / 3, 2, 2])


def test_inverse_frequency_weights_accept_one_hot_and_column_labels():
    labels = np.array([0, 0, 0, 1])
    expected = inverse_frequency_weights(labels, 3)
    np.testing.assert_allclose(inverse_frequency_weights(np.eye(3)[labels], 3), expected)
    np.testing.assert_allclose(inverse_frequency_weights(labels[:, None], 3), expected)


@pytest.mark.parametrize("power, cap", [(1.0, None), (0.5, None), (1.0, 3.0), (2.0, 1.5)])
def test_inverse_frequency_weights_have_mean_one_over_samples(power, cap):
    labels = np.random.default_rng(1).choice(6, size=500, p=[0.5, 0.25, 0.15, 0.07, 0.02, 0.01])
    weights = inverse_frequency_weights(labels, 7, power=power, cap=cap)
    assert weights[labels].mean() == pytest.approx(1.0)
    if cap is not None:
        assert weights.max() <= cap + 1e-12


def test_cap_holds_capped_classes_and_rescales_the_rest():
    # counts [8, 1, 1], power 1: uncapped 5/12, 10/3, 10/3; cap 2 -> rare classes 2, the common
    # class takes what is left of the mean: (10 - 2 - 2) / 8 = 0.75.
    labels = [0] * 8 + [1, 2]
    np.testing.assert_allclose(inverse_frequency_weights(labels, 3), [5 / 12, 10 / 3, 10 / 3])
    np.testing.assert_allclose(inverse_frequency_weights(labels, 3, cap=2.0), [0.75, 2, 2])


def test_power_smooths_and_zero_power_gives_ones():
    labels = [0] * 9 + [1]
    # power 0.5: raw 1/3, 1; (9/3 + 1) k / 10 = 1 -> k = 2.5
    np.testing.assert_allclose(inverse_frequency_weights(labels, 2, power=0.5), [2.5 / 3, 2.5])
    np.testing.assert_allclose(inverse_frequency_weights(labels, 2, power=0.0), [1, 1])


def test_classes_without_samples_get_the_max_weight_or_the_given_value():
    labels = [0, 0, 1, 2, 2, 2]
    weights = inverse_frequency_weights(labels, 5)
    assert weights[3] == weights[4] == weights[:3].max()
    np.testing.assert_allclose(inverse_frequency_weights(labels, 5, empty_value=0.0)[3:], [0, 0])


@pytest.mark.parametrize("y, num_classes, kwargs, message", [
    ([0, 3], 3, {}, r"class indices in \[0, 3\); got values from 0 to 3"),
    ([-1, 0], 3, {}, r"class indices in \[0, 3\)"),
    ([0.5, 1], 3, {}, "integer class indices"),
    ([], 3, {}, "non-empty"),
    ([[1, 1, 0]], 3, {}, "not a single 1"),
    ([0, 1], 0, {}, "num_classes must be a positive integer"),
    ([0, 1], 2, {"cap": 0.5}, "cap must be >= 1"),
    ([0, 1], 2, {"power": -1}, "power must be >= 0"),
])
def test_inverse_frequency_weights_bad_input_is_a_clear_error(y, num_classes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        inverse_frequency_weights(y, num_classes, **kwargs)


# ---------------------------------------------------------------- attribute_weights
def test_attribute_weights_by_hand():
    # positives [1, 2], negatives [3, 2] -> raw pos [1, 1/2], neg [1/3, 1/2]; sum count*raw = 4
    # over 8 sample-label pairs -> k = 2.
    y = np.array([[1, 0], [0, 0], [0, 1], [0, 1]])
    pos, neg = attribute_weights(y)
    np.testing.assert_allclose(pos, [2, 1])
    np.testing.assert_allclose(neg, [2 / 3, 1])


@pytest.mark.parametrize("power, cap", [(1.0, None), (0.5, None), (1.0, 2.0)])
def test_attribute_weights_have_mean_one_over_sample_label_pairs(power, cap):
    y = (np.random.default_rng(2).random((300, 5)) < [0.5, 0.2, 0.05, 0.9, 0.01]).astype("float32")
    pos, neg = attribute_weights(y, power=power, cap=cap)
    pair_weights = y * pos + (1 - y) * neg
    assert pair_weights.mean() == pytest.approx(1.0)
    if power == 1.0 and cap is None:   # each label's positives and negatives carry equal total weight
        np.testing.assert_allclose((y * pos).sum(axis=0), ((1 - y) * neg).sum(axis=0))


def test_attribute_never_positive_gets_the_largest_weight():
    y = np.array([[1, 0], [0, 0], [0, 0]])
    pos, neg = attribute_weights(y)
    assert pos[1] == pos.max() == max(pos[0], neg.max())


def test_attribute_weights_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="only 0 and 1"):
        attribute_weights(np.array([[2, 0]]))
    with pytest.raises(ValueError, match=r"\(samples, attributes\)"):
        attribute_weights(np.array([1, 0]))


# ---------------------------------------------------------------- WeightedCategoricalCrossentropy
@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_ce_equals_keras_when_weights_are_one(batch, from_logits):
    labels, logits = batch
    y_pred = logits if from_logits else _softmax(logits)
    sparse = _value(keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, y_pred)
    dense = _value(keras.losses.CategoricalCrossentropy(from_logits=from_logits), np.eye(4)[labels], y_pred)
    for class_weights in (None, [1.0] * 4):
        loss = WeightedCategoricalCrossentropy(class_weights, from_logits=from_logits)
        assert _value(loss, labels, y_pred) == pytest.approx(sparse, rel=1e-5)
        assert _value(loss, labels[:, None], y_pred) == pytest.approx(sparse, rel=1e-5)
        assert _value(loss, np.eye(4)[labels], y_pred) == pytest.approx(dense, rel=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_ce_equals_numpy_oracle(batch, from_logits):
    labels, logits = batch
    weights = np.array([0.5, 2.0, 1.5, 0.25])
    expected = _numpy_weighted_ce(labels, _softmax(logits.astype(np.float64)), weights)
    loss = WeightedCategoricalCrossentropy(weights, from_logits=from_logits)
    y_pred = logits if from_logits else _softmax(logits)
    for y_true in (labels, labels[:, None], np.eye(4)[labels]):
        assert _value(loss, y_true, y_pred) == pytest.approx(expected, rel=1e-5)


def test_weighted_ce_is_finite_for_saturated_predictions():
    probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype="float32")
    value = _value(WeightedCategoricalCrossentropy([1.0, 2.0, 3.0]), [1, 0], probabilities)
    assert value == pytest.approx(-np.log(EPSILON) * (2 + 1) / 2, rel=1e-4)
    logits = np.array([[1000.0, -1000.0, 0.0]], dtype="float32")
    assert np.isfinite(_value(WeightedCategoricalCrossentropy(from_logits=True), [1], logits))


def test_weighted_ce_reduction_is_the_mean_over_the_batch(batch):
    labels, logits = batch
    loss = WeightedCategoricalCrossentropy([1.0, 2.0, 1.0, 1.0], from_logits=True)
    per_sample = [_value(loss, labels[i:i + 1], logits[i:i + 1]) for i in range(len(labels))]
    assert _value(loss, labels, logits) == pytest.approx(np.mean(per_sample), rel=1e-5)


def test_weighted_ce_with_wrong_number_of_weights_is_a_clear_error(batch):
    labels, logits = batch
    with pytest.raises(ValueError, match="class_weights has 3 entries but the model output has 4 classes"):
        WeightedCategoricalCrossentropy([1.0, 1.0, 1.0])(labels, logits)


@pytest.mark.parametrize("weights", [[1.0, -1.0], [np.nan, 1.0], [[1.0, 2.0]], []])
def test_bad_class_weights_are_a_clear_error(weights):
    with pytest.raises(ValueError, match="class_weights must be a non-empty 1-D sequence"):
        WeightedCategoricalCrossentropy(weights)


# ---------------------------------------------------------------- WeightedBinaryCrossentropy
@pytest.fixture
def multi_label():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 3)).astype("float32") * 2
    y = (rng.random((5, 3)) < 0.4).astype("float32")
    return y, logits


@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_bce_equals_keras_when_weights_are_one(multi_label, from_logits):
    y, logits = multi_label
    y_pred = logits if from_logits else 1 / (1 + np.exp(-logits))
    expected = _value(keras.losses.BinaryCrossentropy(from_logits=from_logits), y, y_pred)
    for pos, neg in ((None, None), ([1.0] * 3, [1.0] * 3)):
        loss = WeightedBinaryCrossentropy(pos, neg, from_logits=from_logits)
        assert _value(loss, y, y_pred) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_weighted_bce_equals_numpy_oracle(multi_label, from_logits):
    y, logits = multi_label
    pos, neg = np.array([3.0, 0.5, 2.0]), np.array([0.2, 1.0, 0.7])
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = _numpy_weighted_bce(y, probabilities, pos, neg)
    loss = WeightedBinaryCrossentropy(pos, neg, from_logits=from_logits)
    y_pred = logits if from_logits else probabilities.astype("float32")
    assert _value(loss, y, y_pred) == pytest.approx(expected, rel=1e-5)


def test_weighted_bce_is_finite_for_saturated_predictions():
    value = _value(WeightedBinaryCrossentropy([2.0], [1.0]), np.array([[1.0], [0.0]]),
                   np.array([[0.0], [1.0]], dtype="float32"))
    # clipped to [eps, 1 - eps] in float32, where 1 - (1 - eps) is a little above eps
    low, high = np.float32(EPSILON), np.float32(1 - EPSILON)
    expected = (2.0 * -np.log(low) + 1.0 * -np.log(1 - np.float64(high))) / 2
    assert value == pytest.approx(expected, rel=1e-4)


def test_weighted_bce_with_wrong_number_of_weights_is_a_clear_error(multi_label):
    y, logits = multi_label
    with pytest.raises(ValueError, match="neg_weights has 2 entries but the model output has 3"):
        WeightedBinaryCrossentropy(None, [1.0, 1.0])(y, logits)


# ---------------------------------------------------------------- serialisation and training
@pytest.mark.parametrize("loss", [
    WeightedCategoricalCrossentropy(np.array([0.5, 2.0]), from_logits=True, name="category_loss"),
    WeightedBinaryCrossentropy(np.array([2.0, 3.0]), [0.5, 0.25], name="attributes_loss"),
    WeightedCategoricalCrossentropy(),
])
def test_losses_round_trip_through_keras_serialisation(loss):
    config = loss.get_config()
    json.dumps(config)   # weights are plain lists
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(loss))))
    assert type(restored) is type(loss) and restored.get_config() == config
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    y_pred = np.array([[0.7, 0.2], [0.4, 0.9]], dtype="float32")
    assert _value(restored, y_true, y_pred) == _value(loss, y_true, y_pred)


def _compiled_head_model(labels):
    pos, neg = attribute_weights(labels["attributes"], power=0.5)
    model = build_head_model(3, 5, 4, feature_dim=8, units=16, dropout=0.0, l2=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss={
        "category": WeightedCategoricalCrossentropy(inverse_frequency_weights(labels["category"], 3)),
        "subcategory": WeightedCategoricalCrossentropy(inverse_frequency_weights(labels["subcategory"], 5)),
        "attributes": WeightedBinaryCrossentropy(pos, neg),
    })
    return model


def _tiny_batch():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 8)).astype("float32")
    labels = {"category": rng.integers(0, 3, 16), "subcategory": rng.integers(0, 5, 16),
              "attributes": (rng.random((16, 4)) < 0.3).astype("float32")}
    return features, labels


def test_one_training_step_with_weighted_losses_lowers_the_loss():
    keras.utils.set_random_seed(0)
    features, labels = _tiny_batch()
    model = _compiled_head_model(labels)
    before = model.evaluate(features, labels, verbose=0, return_dict=True)["loss"]
    model.train_on_batch(features, labels)
    after = model.evaluate(features, labels, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(before) and after < before


@pytest.mark.slow
def test_model_compiled_with_weighted_losses_saves_and_loads_with_same_loss(tmp_path):
    keras.utils.set_random_seed(0)
    features, labels = _tiny_batch()
    model = _compiled_head_model(labels)
    model.train_on_batch(features, labels)   # builds the optimizer, whose state is saved too
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.loss["category"].get_config() == model.loss["category"].get_config()
    assert loaded.evaluate(features, labels, verbose=0) == pytest.approx(
        model.evaluate(features, labels, verbose=0), rel=1e-6)


# ---- weighting schemes of the recipe, logit adjustment, label smoothing ---------------------------

from types import SimpleNamespace  # noqa: E402

from fashion_hier.losses import (  # noqa: E402
    SMOOTHED_CAP,
    SMOOTHED_POWER,
    LogitAdjustedBinaryCrossentropy,
    LogitAdjustedCrossentropy,
    attribute_effective_number_weights,
    attribute_log_prior_odds,
    class_log_prior,
    effective_number_weights,
    losses_from_config,
)


def test_effective_number_weights_by_hand():
    y = np.array([0, 0, 0, 1])                      # counts 3, 1; one empty class
    beta = 0.9
    raw = np.array([(1 - beta) / (1 - beta ** 3), (1 - beta) / (1 - beta ** 1)])
    scale = 4 / (3 * raw[0] + 1 * raw[1])           # mean 1 over the 4 samples
    expected = np.array([raw[0] * scale, raw[1] * scale, raw[1] * scale])
    np.testing.assert_allclose(effective_number_weights(y, 3, beta=beta), expected)


def test_effective_number_beta_zero_is_all_ones_and_near_one_approaches_inverse_frequency():
    y = np.array([0] * 30 + [1] * 3 + [2])
    np.testing.assert_allclose(effective_number_weights(y, 3, beta=0.0), np.ones(3))
    np.testing.assert_allclose(effective_number_weights(y, 3, beta=1 - 1e-9),
                               inverse_frequency_weights(y, 3), rtol=1e-4)


def test_effective_number_bad_beta_is_a_clear_error():
    with pytest.raises(ValueError, match="beta must lie in"):
        effective_number_weights([0, 1], 2, beta=1.0)


def test_attribute_effective_number_weights_balance_positives_and_negatives():
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])
    pos, neg = attribute_effective_number_weights(y, beta=0.5)
    raw = lambda n: (1 - 0.5) / (1 - 0.5 ** n)  # noqa: E731
    counts = np.array([1, 1, 3, 3])
    cells = np.array([raw(n) for n in counts])
    cells *= counts.sum() / (counts * cells).sum()
    np.testing.assert_allclose(np.concatenate([pos, neg]), cells)


def test_log_priors_by_hand():
    np.testing.assert_allclose(class_log_prior([0, 0, 0, 1], 3), np.log([3 / 4, 1 / 4, 1 / 4]))
    np.testing.assert_allclose(attribute_log_prior_odds(np.array([[1, 0], [0, 0], [1, 0]])),
                               np.log([2 / 1, 1 / 3]))


def test_logit_adjusted_crossentropy_equals_numpy_oracle_on_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4))
    labels = np.array([0, 1, 2, 3, 1, 0])
    log_prior = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    adjusted = logits + 2.0 * log_prior
    oracle = -np.log(_softmax(adjusted)[np.arange(6), labels]).mean()
    loss = LogitAdjustedCrossentropy(log_prior, tau=2.0)(labels, _softmax(logits).astype(np.float32))
    np.testing.assert_allclose(float(loss), oracle, rtol=1e-4)


def test_logit_adjustment_with_tau_zero_is_plain_crossentropy():
    rng = np.random.default_rng(1)
    probabilities = _softmax(rng.normal(size=(5, 3))).astype(np.float32)
    labels = np.array([0, 1, 2, 2, 1])
    adjusted = LogitAdjustedCrossentropy(np.log([0.7, 0.2, 0.1]), tau=0.0)(labels, probabilities)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    np.testing.assert_allclose(float(adjusted), float(plain), rtol=1e-4)


def test_logit_adjusted_binary_crossentropy_equals_numpy_oracle():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 3))
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
    odds = np.log([0.2, 1.0, 4.0])
    z = logits + odds
    oracle = np.mean(np.mean(-(y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 / (1 + np.exp(z)))), axis=1))
    probabilities = (1 / (1 + np.exp(-logits))).astype(np.float32)
    loss = LogitAdjustedBinaryCrossentropy(odds, tau=1.0)(y, probabilities)
    np.testing.assert_allclose(float(loss), oracle, rtol=1e-4)


def test_label_smoothing_equals_keras_categorical_crossentropy():
    rng = np.random.default_rng(3)
    probabilities = _softmax(rng.normal(size=(5, 4))).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 3])
    ours = WeightedCategoricalCrossentropy(label_smoothing=0.1)(labels, probabilities)
    theirs = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(4)[labels], probabilities)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-4)


def test_label_smoothing_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        WeightedCategoricalCrossentropy(label_smoothing=1.0)


def _loss_config(**changes):
    values = dict(weighting="none", power=1.0, cap=None, beta=0.999, tau=1.0, label_smoothing=0.0)
    return SimpleNamespace(**{**values, **changes})


LABEL_SPACE = SimpleNamespace(num_categories=2, num_subcategories=3)
TRAIN_LABELS = {"category": np.array([0, 0, 0, 1]), "subcategory": np.array([0, 1, 1, 2]),
                "attributes": np.array([[1, 0], [0, 0], [0, 1], [0, 0]])}


def test_losses_from_config_smoothed_is_square_root_inverse_frequency_capped():
    losses = losses_from_config(_loss_config(weighting="smoothed"), LABEL_SPACE, TRAIN_LABELS)
    expected = inverse_frequency_weights(TRAIN_LABELS["subcategory"], 3, power=SMOOTHED_POWER, cap=SMOOTHED_CAP)
    np.testing.assert_allclose(losses["subcategory"].class_weights, expected)
    pos, _ = attribute_weights(TRAIN_LABELS["attributes"], power=SMOOTHED_POWER, cap=SMOOTHED_CAP)
    np.testing.assert_allclose(losses["attributes"].pos_weights, pos)


def test_losses_from_config_picks_each_scheme():
    paper = losses_from_config(_loss_config(weighting="inverse_frequency"), LABEL_SPACE, TRAIN_LABELS)
    np.testing.assert_allclose(paper["category"].class_weights, inverse_frequency_weights([0, 0, 0, 1], 2))
    none = losses_from_config(_loss_config(label_smoothing=0.2), LABEL_SPACE, TRAIN_LABELS)
    assert none["category"].class_weights is None and none["subcategory"].label_smoothing == 0.2
    adjusted = losses_from_config(_loss_config(weighting="logit_adjustment", tau=0.5), LABEL_SPACE, TRAIN_LABELS)
    assert isinstance(adjusted["subcategory"], LogitAdjustedCrossentropy) and adjusted["subcategory"].tau == 0.5
    np.testing.assert_allclose(adjusted["subcategory"].log_prior, np.log([1 / 4, 2 / 4, 1 / 4]))
    assert isinstance(adjusted["attributes"], LogitAdjustedBinaryCrossentropy)
    effective = losses_from_config(_loss_config(weighting="effective_number", beta=0.9), LABEL_SPACE, TRAIN_LABELS)
    np.testing.assert_allclose(effective["subcategory"].class_weights,
                               effective_number_weights(TRAIN_LABELS["subcategory"], 3, beta=0.9))
    with pytest.raises(ValueError, match="unknown loss.weighting 'focal'"):
        losses_from_config(_loss_config(weighting="focal"), LABEL_SPACE, TRAIN_LABELS)


def test_logit_adjusted_loss_survives_a_config_round_trip():
    loss = LogitAdjustedCrossentropy([-1.0, -0.5], tau=0.7, label_smoothing=0.1)
    again = LogitAdjustedCrossentropy.from_config(loss.get_config())
    assert again.log_prior == loss.log_prior and again.tau == 0.7 and again.label_smoothing == 0.1
