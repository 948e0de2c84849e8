"""Class weights, class-weighted and logit-adjusted cross-entropies, and the losses a config asks for.

Keras 3 rejects ``class_weight`` for multi-output models, so the weighting lives in the losses:
each takes per-class (or per-label positive/negative) weight vectors. Weights are normalised so
the mean weight over training samples is 1 and the learning rate keeps its meaning (the paper's
raw ``1/count`` shrank the loss by orders of magnitude).

Weighting schemes (``loss.weighting``): ``none``; ``inverse_frequency`` (``count ** -power``, the
paper's); ``smoothed`` (``count ** -0.5`` capped at 5); ``effective_number`` (Cui et al. 2019,
``(1 - beta) / (1 - beta ** count)``); ``logit_adjustment`` (Menon et al. 2021: no weights, the
loss adds ``tau * log(prior)`` to the logits).
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from fashion_hier.labels import check_layout, group_counts


def inverse_frequency_weights(y, num_classes: int, *, power: float = 1.0, cap: float | None = None,
                              empty_value: float | None = None) -> np.ndarray:
    """One weight per class, proportional to ``count ** -power``, with mean 1 over the samples of ``y``.

    Args:
        y: training labels, int class indices (N,) or (N, 1), or one-hot (N, num_classes).
        power: 1 is plain inverse frequency, 0 gives all ones, values in between smooth.
        cap: largest weight allowed, in units of the normalised weights (>= 1). Capped classes
            keep ``cap`` and the others are rescaled, so the mean over samples stays exactly 1.
        empty_value: weight of classes with no training sample (they do not enter the mean);
            default: the largest weight among the classes that have samples.
    Returns:
        float64 array (num_classes,).
    """
    counts = np.bincount(_class_indices(y, num_classes), minlength=num_classes)
    return _normalised_weights(counts, power=power, cap=cap, empty_value=empty_value)


SMOOTHED_POWER = 0.5  # weighting="smoothed": square-root inverse frequency ...
SMOOTHED_CAP = 5.0    # ... no class weighted more than 5x the mean sample
WEIGHTINGS = ("none", "inverse_frequency", "smoothed", "effective_number", "logit_adjustment")
_LOG_EPSILON = 1e-7   # probabilities are clipped to [eps, 1] before their log (as Keras's cross-entropies do)


def effective_number_weights(y, num_classes: int, *, beta: float = 0.999) -> np.ndarray:
    """Class-balanced weights of Cui et al. 2019: ``(1 - beta) / (1 - beta ** count)``, mean 1 over samples.

    ``beta`` in [0, 1): 0 gives all ones, values near 1 approach inverse frequency. Classes with no
    training sample get the largest weight. Returns float64 (num_classes,).
    """
    counts = np.bincount(_class_indices(y, num_classes), minlength=num_classes)
    return _effective_number(counts, beta)


def attribute_effective_number_weights(y_multi_hot, *, beta: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """``effective_number_weights`` for each label's positives and negatives (as ``attribute_weights``)."""
    y = _check_multi_hot(y_multi_hot)
    positives = y.sum(axis=0).astype(np.int64)
    weights = _effective_number(np.concatenate([positives, y.shape[0] - positives]), beta)
    return weights[: y.shape[1]], weights[y.shape[1]:]


def _effective_number(counts: np.ndarray, beta: float) -> np.ndarray:
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    seen = counts > 0
    raw = np.zeros(len(counts))
    raw[seen] = (1.0 - beta) / (1.0 - beta ** counts[seen].astype(np.float64))
    weights = raw * counts.sum() / (counts * raw).sum()
    weights[~seen] = weights[seen].max()
    return weights


def class_log_prior(y, num_classes: int) -> np.ndarray:
    """``log(count / N)`` per class from the training labels; a class never seen counts as one sample."""
    counts = np.bincount(_class_indices(y, num_classes), minlength=num_classes).astype(np.float64)
    return np.log(np.maximum(counts, 1.0) / counts.sum())


def attribute_log_prior_odds(y_multi_hot) -> np.ndarray:
    """``log(positives / negatives)`` per label (a side never seen counts as one sample)."""
    y = _check_multi_hot(y_multi_hot)
    positives = y.sum(axis=0).astype(np.float64)
    return np.log(np.maximum(positives, 1.0) / np.maximum(y.shape[0] - positives, 1.0))


def _check_multi_hot(y_multi_hot) -> np.ndarray:
    y = np.asarray(y_multi_hot)
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"y_multi_hot must be a non-empty (samples, attributes) array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_multi_hot must hold only 0 and 1 (multi-hot attribute labels)")
    return y


def attribute_weights(y_multi_hot, *, power: float = 1.0,
                      cap: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-label weights for positives and negatives, balancing them within each label.

    Every (label, positive) and (label, negative) cell gets ``count ** -power``, normalised so the
    mean weight over all N x A sample-label pairs is 1 (with ``power=1`` each label's positives and
    negatives then carry equal total weight). ``cap`` as in ``inverse_frequency_weights``; a label
    that is never positive (or never negative) gets the largest weight seen for that side.

    Returns:
        ``(pos_weights, neg_weights)``, float64 arrays (A,).
    """
    y = _check_multi_hot(y_multi_hot)
    positives = y.sum(axis=0).astype(np.int64)
    counts = np.concatenate([positives, y.shape[0] - positives])
    weights = _normalised_weights(counts, power=power, cap=cap, empty_value=None)
    return weights[: y.shape[1]], weights[y.shape[1]:]


def _class_indices(y, num_classes: int) -> np.ndarray:
    """Int class indices (N,) from indices (N,) / (N, 1) or a one-hot (N, num_classes) array."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"y of shape {y.shape} looks one-hot but some rows are not a single 1")
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be non-empty class indices (N,) or (N, 1), or one-hot (N, {num_classes}); "
                         f"got shape {y.shape}")
    if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"y must hold integer class indices in [0, {num_classes}); "
                         f"got values from {y.min()} to {y.max()}")
    return y.astype(np.int64)


def _normalised_weights(counts: np.ndarray, *, power: float, cap: float | None,
                        empty_value: float | None) -> np.ndarray:
    """``min(scale * count ** -power, cap)`` with ``scale`` chosen so the count-weighted mean is 1."""
    if not power >= 0:
        raise ValueError(f"power must be >= 0, got {power!r}")
    if cap is not None and not cap >= 1:
        raise ValueError(f"cap must be >= 1 (weights have mean 1 over samples), got {cap!r}")
    seen = counts > 0
    raw = np.zeros(len(counts))
    raw[seen] = counts[seen].astype(np.float64) ** -float(power)
    capped = np.zeros(len(counts), dtype=bool)
    while True:
        # Capped cells hold `cap`; the free ones share what is left of the total so the mean is 1.
        free = seen & ~capped
        budget = counts.sum() - (cap or 0.0) * counts[capped].sum()
        weights = np.where(capped, cap or 0.0, raw * budget / (counts[free] * raw[free]).sum())
        over = free & (weights > cap) if cap is not None else np.zeros_like(free)
        if not over.any():
            break
        capped |= over
    weights[~seen] = weights[seen].max() if empty_value is None else float(empty_value)
    return weights


def _weight_list(weights, argument: str) -> list[float] | None:
    """Weights as a plain list of floats (what get_config stores); None stays None."""
    if weights is None:
        return None
    values = np.asarray(weights, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or (values < 0).any():
        raise ValueError(f"{argument} must be a non-empty 1-D sequence of finite numbers >= 0, "
                         f"got {weights!r}")
    return values.tolist()


def _check_width(weights: list[float] | None, y_pred, argument: str, loss_name: str) -> None:
    width = y_pred.shape[-1]
    if weights is not None and width is not None and width != len(weights):
        raise ValueError(f"{loss_name}: {argument} has {len(weights)} entries but the model output has "
                         f"{width} classes; compute the weights from the same label space as the model")


@keras.saving.register_keras_serializable(package="fashion_hier")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy of each sample multiplied by the weight of its true class.

    ``y_true``: int class indices (B,) or (B, 1), or one-hot (B, C) (soft labels get the
    label-weighted mean of the class weights). ``class_weights=None`` means all ones, which equals
    ``keras.losses.(Sparse)CategoricalCrossentropy``. ``label_smoothing`` mixes the one-hot target
    with the uniform distribution (``(1 - s) * y + s / C``) after the weight is read from the true
    class. Reduction: Keras's default, ``"sum_over_batch_size"`` (the mean over the batch).
    """

    def __init__(self, class_weights: Sequence[float] | None = None, *, from_logits: bool = False,
                 label_smoothing: float = 0.0, name: str = "weighted_categorical_crossentropy",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _weight_list(class_weights, "class_weights")
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        _check_width(self.class_weights, y_pred, "class_weights", self.name)
        target = _one_hot_target(y_true, y_pred)
        losses = keras.ops.categorical_crossentropy(_smoothed(target, self.label_smoothing), y_pred,
                                                    from_logits=self.from_logits)
        if self.class_weights is None:
            return losses
        weights = keras.ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
        return losses * keras.ops.sum(target * weights, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "class_weights": self.class_weights, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="fashion_hier")
class LogitAdjustedCrossentropy(keras.losses.Loss):
    """Logit-adjusted softmax cross-entropy (Menon et al. 2021): ``CE(y, softmax(z + tau * log_prior))``.

    The model outputs probabilities ``p = softmax(z)``; ``log p`` differs from the logits ``z`` by a
    per-row constant, which softmax ignores, so ``softmax(log p + tau * log_prior)`` equals the
    adjusted softmax exactly (up to the clip of ``p`` at 1e-7). Training this way makes the plain
    ``argmax p`` at prediction time approximate the balanced-error-optimal classifier.
    ``y_true`` as in ``WeightedCategoricalCrossentropy``; ``label_smoothing`` likewise.
    """

    def __init__(self, log_prior: Sequence[float], *, tau: float = 1.0, label_smoothing: float = 0.0,
                 name: str = "logit_adjusted_crossentropy", reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.log_prior = _finite_list(log_prior, "log_prior")
        self.tau = float(tau)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def call(self, y_true, y_pred):
        _check_width(self.log_prior, y_pred, "log_prior", self.name)
        target = _smoothed(_one_hot_target(y_true, y_pred), self.label_smoothing)
        logits = _log_clipped(y_pred) + self.tau * keras.ops.convert_to_tensor(self.log_prior, dtype=y_pred.dtype)
        return keras.ops.categorical_crossentropy(target, logits, from_logits=True)

    def get_config(self) -> dict:
        return {**super().get_config(), "log_prior": self.log_prior, "tau": self.tau,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="fashion_hier")
class LogitAdjustedBinaryCrossentropy(keras.losses.Loss):
    """Per-label binary form of logit adjustment: ``BCE(y, sigmoid(logit(p) + tau * log_prior_odds))``.

    ``logit(p) = log p - log(1 - p)`` recovers the sigmoid's input from its output (``p`` clipped to
    [1e-7, 1 - 1e-7]). Mean over labels per sample, like ``keras.losses.BinaryCrossentropy``.
    """

    def __init__(self, log_prior_odds: Sequence[float], *, tau: float = 1.0,
                 name: str = "logit_adjusted_binary_crossentropy", reduction: str = "sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.log_prior_odds = _finite_list(log_prior_odds, "log_prior_odds")
        self.tau = float(tau)

    def call(self, y_true, y_pred):
        _check_width(self.log_prior_odds, y_pred, "log_prior_odds", self.name)
        target = keras.ops.cast(keras.ops.convert_to_tensor(y_true), y_pred.dtype)
        clipped = keras.ops.clip(y_pred, _LOG_EPSILON, 1.0 - _LOG_EPSILON)
        logits = (keras.ops.log(clipped) - keras.ops.log(1.0 - clipped)
                  + self.tau * keras.ops.convert_to_tensor(self.log_prior_odds, dtype=y_pred.dtype))
        return keras.ops.mean(keras.ops.binary_crossentropy(target, logits, from_logits=True), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "log_prior_odds": self.log_prior_odds, "tau": self.tau}


def _one_hot_target(y_true, y_pred):
    """Class indices (B,) / (B, 1) or a one-hot (B, C) target as a float (B, C) tensor."""
    y_true = keras.ops.convert_to_tensor(y_true)
    num_classes = y_pred.shape[-1]
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == num_classes and num_classes != 1:
        return keras.ops.cast(y_true, y_pred.dtype)
    indices = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
    return keras.ops.one_hot(indices, num_classes, dtype=y_pred.dtype)


def _smoothed(target, label_smoothing: float):
    if not label_smoothing:
        return target
    return target * (1.0 - label_smoothing) + label_smoothing / target.shape[-1]


def _log_clipped(probabilities):
    return keras.ops.log(keras.ops.clip(probabilities, _LOG_EPSILON, 1.0))


def _check_smoothing(label_smoothing) -> float:
    if isinstance(label_smoothing, bool) or not 0 <= float(label_smoothing) < 1:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
    return float(label_smoothing)


def _finite_list(values, argument: str) -> list[float]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"{argument} must be a non-empty 1-D sequence of finite numbers, got {values!r}")
    return array.tolist()


@keras.saving.register_keras_serializable(package="fashion_hier")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy per label, positives weighted by ``pos_weights``, negatives by ``neg_weights``.

    Per sample: the mean over labels of ``w * bce`` (like ``keras.losses.BinaryCrossentropy``), with
    ``w = y * pos + (1 - y) * neg``. None means all ones. Reduction: Keras's default (the mean over
    the batch).
    """

    def __init__(self, pos_weights: Sequence[float] | None = None, neg_weights: Sequence[float] | None = None,
                 *, from_logits: bool = False, name: str = "weighted_binary_crossentropy",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pos_weights = _weight_list(pos_weights, "pos_weights")
        self.neg_weights = _weight_list(neg_weights, "neg_weights")
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        _check_width(self.pos_weights, y_pred, "pos_weights", self.name)
        _check_width(self.neg_weights, y_pred, "neg_weights", self.name)
        target = keras.ops.cast(keras.ops.convert_to_tensor(y_true), y_pred.dtype)
        losses = keras.ops.binary_crossentropy(target, y_pred, from_logits=self.from_logits)
        weights = (target * self._as_tensor(self.pos_weights, y_pred)
                   + (1.0 - target) * self._as_tensor(self.neg_weights, y_pred))
        return keras.ops.mean(losses * weights, axis=-1)

    @staticmethod
    def _as_tensor(weights: list[float] | None, y_pred):
        return keras.ops.convert_to_tensor(1.0 if weights is None else weights, dtype=y_pred.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weights": self.pos_weights, "neg_weights": self.neg_weights,
                "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="fashion_hier")
class GroupedAttributeLoss(keras.losses.Loss):
    """The attribute loss of a catalogue with attribute columns: masked, weighted, optionally focal.

    ``layout``: ``(kind, size)`` per group (``LabelSpace.attribute_layout``), the order of the groups'
    slices on the attribute axis. Per sample the loss is the mean over groups of:

    * ``single`` group: ``-w[y] * (1 - p_y) ** gamma * log p_y`` (softmax cross-entropy);
    * ``multi`` group: the mean over its values of ``w * (1 - p_t) ** gamma * bce`` with
      ``w = pos_weights`` for a present value and ``neg_weights`` for an absent one.

    A target of -1 (``labels.UNKNOWN``: the cell was empty, or the group does not apply to the row's
    category) contributes nothing: the loss and its gradient do not depend on the scores there.
    ``gamma = focal_gamma`` (Lin et al. 2017; 0 is cross-entropy) down-weights values already learned,
    the remedy for rare ones. ``log_prior`` (A,) with ``tau``: logit adjustment (Menon et al. 2021) per
    group, ``log p + tau * log_prior`` for single groups and ``logit(p) + tau * log_prior`` (the log
    prior odds) for multi groups. Weights: ``class_weights`` for single-group values, ``pos_weights`` /
    ``neg_weights`` for multi-group values; None means ones.
    """

    def __init__(self, layout, class_weights: Sequence[float] | None = None,
                 neg_weights: Sequence[float] | None = None, *, log_prior: Sequence[float] | None = None,
                 tau: float = 1.0, focal_gamma: float = 0.0, name: str = "grouped_attribute_loss",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.layout = check_layout(layout)
        width = sum(size for _, size in self.layout)
        self.class_weights = _weight_list(class_weights, "class_weights")
        self.neg_weights = _weight_list(neg_weights, "neg_weights")
        self.log_prior = None if log_prior is None else _finite_list(log_prior, "log_prior")
        for argument, values in (("class_weights", self.class_weights), ("neg_weights", self.neg_weights),
                                 ("log_prior", self.log_prior)):
            if values is not None and len(values) != width:
                raise ValueError(f"{argument} has {len(values)} entries; the layout has {width} attribute values")
        self.tau = float(tau)
        if not (np.isfinite(focal_gamma) and focal_gamma >= 0):
            raise ValueError(f"focal_gamma must be a number >= 0, got {focal_gamma!r}")
        self.focal_gamma = float(focal_gamma)

    def call(self, y_true, y_pred):
        target = keras.ops.cast(keras.ops.convert_to_tensor(y_true), y_pred.dtype)
        pos = self._vector(self.class_weights, y_pred)
        neg = self._vector(self.neg_weights, y_pred)
        prior = None if self.log_prior is None else keras.ops.convert_to_tensor(self.log_prior, dtype=y_pred.dtype)
        total, start = 0.0, 0
        for kind, size in self.layout:
            part = slice(start, start + size)
            y, p = target[:, part], y_pred[:, part]
            known = keras.ops.cast(y >= 0, y_pred.dtype)
            y = y * known  # unknown entries: target 0, then multiplied out below
            adjust = None if prior is None else self.tau * prior[part]
            if kind == "single":
                total = total + self._single(y, p, known[:, 0], pos[part], adjust)
            else:
                total = total + self._multi(y, p, known, pos[part], neg[part], adjust)
            start += size
        return total / len(self.layout)

    def _single(self, y, p, known_row, weights, adjust):
        log_p = keras.ops.log(keras.ops.clip(p, _LOG_EPSILON, 1.0))
        if adjust is not None:
            log_p = keras.ops.log_softmax(log_p + adjust, axis=-1)
        log_p_true = keras.ops.sum(y * log_p, axis=-1)
        loss = -log_p_true * keras.ops.sum(y * weights, axis=-1)
        if self.focal_gamma:
            loss = loss * (1.0 - keras.ops.exp(log_p_true)) ** self.focal_gamma
        return loss * known_row

    def _multi(self, y, p, known, pos, neg, adjust):
        clipped = keras.ops.clip(p, _LOG_EPSILON, 1.0 - _LOG_EPSILON)
        logits = keras.ops.log(clipped) - keras.ops.log(1.0 - clipped)
        if adjust is not None:
            logits = logits + adjust
        bce = keras.ops.binary_crossentropy(y, logits, from_logits=True)
        loss = bce * (y * pos + (1.0 - y) * neg)
        if self.focal_gamma:
            p_true = keras.ops.exp(-bce)
            loss = loss * (1.0 - p_true) ** self.focal_gamma
        return keras.ops.sum(loss * known, axis=-1) / keras.ops.maximum(keras.ops.sum(known, axis=-1), 1.0)

    @staticmethod
    def _vector(weights: list[float] | None, y_pred):
        return keras.ops.convert_to_tensor(1.0 if weights is None else weights, dtype=y_pred.dtype) * \
            keras.ops.ones((y_pred.shape[-1],), dtype=y_pred.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "layout": [list(entry) for entry in self.layout],
                "class_weights": self.class_weights, "neg_weights": self.neg_weights, "log_prior": self.log_prior,
                "tau": self.tau, "focal_gamma": self.focal_gamma}


def grouped_attribute_loss(loss_config, layout, y_attributes) -> GroupedAttributeLoss:
    """The ``GroupedAttributeLoss`` that ``loss_config`` asks for, weighted from the known training targets.

    Single-group values are weighted like classes (from their counts among the group's known rows),
    multi-group values like the flat tag set's positives and negatives (known rows only); unknown
    targets count nowhere.
    """
    positives, known = group_counts(y_attributes)
    weighting, weights, negatives, log_prior = loss_config.weighting, [], [], []
    start = 0
    for kind, size in layout:
        pos, seen = positives[start:start + size], known[start:start + size]
        counts = pos if kind == "single" else np.concatenate([pos, seen - pos])
        if weighting in ("none", "logit_adjustment"):
            group_weights = np.ones(len(counts))
        elif weighting == "effective_number":
            group_weights = _effective_number(counts, loss_config.beta) if counts.sum() else np.ones(len(counts))
        else:
            power, cap = _power_and_cap(loss_config)
            group_weights = (_normalised_weights(counts, power=power, cap=cap, empty_value=None) if counts.sum()
                             else np.ones(len(counts)))
        weights.append(group_weights[:size])
        negatives.append(group_weights[size:] if kind == "multi" else np.ones(size))
        if kind == "single":
            log_prior.append(np.log(np.maximum(pos, 1.0) / max(pos.sum(), 1.0)))
        else:
            log_prior.append(np.log(np.maximum(pos, 1.0) / np.maximum(seen - pos, 1.0)))
        start += size
    return GroupedAttributeLoss(layout, np.concatenate(weights), np.concatenate(negatives),
                                log_prior=np.concatenate(log_prior) if weighting == "logit_adjustment" else None,
                                tau=loss_config.tau, focal_gamma=loss_config.focal_gamma)


def losses_from_config(loss_config, label_space, train_labels: dict) -> dict:
    """The three per-level losses that ``loss_config`` (a ``LossConfig``) asks for, from the training labels.

    ``train_labels``: the encoded training split (``category``/``subcategory`` indices, ``attributes``
    multi-hot, or with -1 for unknown entries of attribute columns). Label smoothing applies to category
    and subcategory; ``focal_gamma`` to attribute columns.
    """
    weighting, smoothing = loss_config.weighting, loss_config.label_smoothing
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown loss.weighting {weighting!r}; expected one of {', '.join(WEIGHTINGS)}")
    grouped = getattr(label_space, "grouped", False)
    if getattr(loss_config, "focal_gamma", 0.0) and not grouped:
        raise ValueError("loss.focal_gamma applies to attribute columns (data.columns.groups); the flat tag set "
                         "is trained with (weighted) binary cross-entropy")
    counts = {"category": label_space.num_categories, "subcategory": label_space.num_subcategories}
    if weighting == "logit_adjustment":
        losses = {level: LogitAdjustedCrossentropy(class_log_prior(train_labels[level], n), tau=loss_config.tau,
                                                   label_smoothing=smoothing) for level, n in counts.items()}
    else:
        if weighting == "none":
            weights = {level: None for level in counts}
        elif weighting == "effective_number":
            weights = {level: effective_number_weights(train_labels[level], n, beta=loss_config.beta)
                       for level, n in counts.items()}
        else:
            power, cap = _power_and_cap(loss_config)
            weights = {level: inverse_frequency_weights(train_labels[level], n, power=power, cap=cap)
                       for level, n in counts.items()}
        losses = {level: WeightedCategoricalCrossentropy(weights[level], label_smoothing=smoothing)
                  for level in counts}
    losses["attributes"] = _attribute_loss(loss_config, label_space, train_labels["attributes"])
    return losses


def _power_and_cap(loss_config) -> tuple[float, float | None]:
    """``inverse_frequency``'s configured power and cap, or ``smoothed``'s."""
    if loss_config.weighting == "inverse_frequency":
        return loss_config.power, loss_config.cap
    return SMOOTHED_POWER, loss_config.cap or SMOOTHED_CAP


def _attribute_loss(loss_config, label_space, y_attributes) -> keras.losses.Loss:
    weighting = loss_config.weighting
    if getattr(label_space, "grouped", False):
        return grouped_attribute_loss(loss_config, label_space.attribute_layout, y_attributes)
    if weighting == "logit_adjustment":
        return LogitAdjustedBinaryCrossentropy(attribute_log_prior_odds(y_attributes), tau=loss_config.tau)
    if weighting == "none":
        return WeightedBinaryCrossentropy()
    if weighting == "effective_number":
        return WeightedBinaryCrossentropy(*attribute_effective_number_weights(y_attributes, beta=loss_config.beta))
    power, cap = _power_and_cap(loss_config)
    return WeightedBinaryCrossentropy(*attribute_weights(y_attributes, power=power, cap=cap))
