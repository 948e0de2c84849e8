"""The one training loop (``fashion_hier.training_loop``): it ends on the best epoch, keeps its backup, and its
array loader draws each epoch's order from (seed, epoch)."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.checkpoints import Backup, TrainingState  # noqa: E402
from fashion_hier.features.batches import ArrayBatches  # noqa: E402
from fashion_hier.training_loop import MONITOR, Stage, fit_resumable, monitor_name  # noqa: E402



def _data(seed: int, rows: int = 48):
    generator = np.random.default_rng(seed)
    x = generator.normal(size=(rows, 4)).astype(np.float32)
    subcategory = (x[:, 0] + 0.5 * generator.normal(size=rows) > 0).astype(np.int64)
    return x, {"category": (x[:, 1] > 0).astype(np.int64), "subcategory": subcategory}


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, {level: keras.layers.Dense(2, activation="softmax", name=level)(hidden)
                                for level in ("category", "subcategory")})  # two outputs: Keras prefixes metric names


def _compile(model, learning_rate: float = 0.5) -> None:
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss={level: "sparse_categorical_crossentropy" for level in ("category", "subcategory")},
                  metrics={"subcategory": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]})


class WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_the_monitor_is_the_unweighted_subcategory_accuracy():
    assert MONITOR == "subcategory_accuracy"
    assert monitor_name(True) == "val_subcategory_accuracy" and monitor_name(False) == MONITOR


def test_a_fit_ends_on_the_weights_of_its_best_epoch_and_keeps_its_backup(tmp_path):
    x, y = _data(1)
    validation_x, validation_y = _data(2, rows=40)
    model, recorder = _model(), WeightsPerEpoch()
    backup = Backup(tmp_path / "backup")
    wreck = Stage(3, 6, lambda network: _compile(network, learning_rate=200.0))  # later epochs only get worse
    outcome = fit_resumable(model, [Stage(0, 3, _compile), wreck], ArrayBatches(x, y, 8, seed=3),
                            ArrayBatches(validation_x, validation_y, 8), backup=backup,
                            history_path=tmp_path / "history.csv", patience=None, callbacks=[recorder])
    scores = [row["val_subcategory_accuracy"] for row in outcome.state.history]
    best = int(np.argmax(scores))  # the first of equal values, as the loop picks it
    assert best < 5, "an earlier epoch must be the best, or this test cannot tell the best from the last"
    assert outcome.epochs == 6 and outcome.best_epoch == best and outcome.best_score == pytest.approx(scores[best])
    for final, at_best in zip(model.get_weights(), recorder.weights[best], strict=True):
        np.testing.assert_array_equal(final, at_best)
    assert TrainingState.load(backup).epochs_done == 6 and backup.best.is_file()
    assert len(backup.checkpoints()) == 2  # the newest checkpoint and the one before it
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,")
    assert len(outcome.epoch_seconds) == 6 and all(seconds > 0 for seconds in outcome.epoch_seconds)
    assert len(outcome.history["loss"]) == 6


def test_a_fit_outside_a_run_leaves_no_folder_behind(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x, y = _data(1)
    outcome = fit_resumable(_model(), [Stage(0, 2, _compile)], ArrayBatches(x, y, 16, seed=0), backup=None,
                            history_path=None, patience=None)
    assert outcome.epochs == 2 and outcome.monitor == MONITOR  # no validation: the training accuracy
    assert list(tmp_path.iterdir()) == []


def test_array_batches_draw_each_epochs_order_from_seed_and_epoch():
    x = np.arange(10, dtype=np.float32)[:, None]
    batches = ArrayBatches(x, {"subcategory": np.arange(10)}, 4, seed=7)
    assert len(batches) == 3
    first = np.concatenate([batches[i][0][:, 0] for i in range(len(batches))])
    assert sorted(first.tolist()) == list(range(10))  # every row once, the last batch partial
    np.testing.assert_array_equal(first, np.random.default_rng([7, 0]).permutation(10))
    batches.on_epoch_end()
    second = np.concatenate([batches[i][0][:, 0] for i in range(len(batches))])
    np.testing.assert_array_equal(second, np.random.default_rng([7, 1]).permutation(10))
    batches.epoch = 0  # what the loop does at each epoch's start: a resumed fit reads the same batches
    np.testing.assert_array_equal(np.concatenate([batches[i][0][:, 0] for i in range(3)]), first)
    in_order = ArrayBatches(x, {"subcategory": np.arange(10)}, 4)
    np.testing.assert_array_equal(in_order[2][1]["subcategory"], [8, 9])


def test_array_batches_refuse_labels_of_another_length_and_an_empty_batch():
    with pytest.raises(ValueError, match=r"labels\['subcategory'\] has 3 rows but x has 4"):
        ArrayBatches(np.zeros((4, 2)), {"subcategory": np.zeros(3)}, 2)
    with pytest.raises(ValueError, match="batch_size=0"):
        ArrayBatches(np.zeros((4, 2)), {"subcategory": np.zeros(4)}, 0)
