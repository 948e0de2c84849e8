"""train: the CLI writes a complete run directory, refuses to clobber it, and resumes an interrupted run."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.cli import main as cli_main  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from fashion_hier.task import HierarchicalClassifier  # noqa: E402
from fashion_hier.train import RunDirectoryError, _encode_known, train  # noqa: E402

SIZE = 32
TINY = [f"data.image_size=[{SIZE}, {SIZE}]", "data.augment=false", "model.backbone=mobilenetv2",
        "model.weights=null", "model.units=8", "training.batch_size=16", "training.jit_compile=false", "training.run_eagerly=true"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog

    root = tmp_path_factory.mktemp("catalogue")
    return make_synthetic_catalog(root, n=60, image_size=SIZE, seed=2)


def _config(labels_csv, output_dir, *overrides: str) -> TrainConfig:
    return TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={labels_csv.parent / 'images'}",
        f"output_dir={output_dir}", *TINY, *overrides,
    ])


@pytest.fixture(scope="module")
def cli_run(catalogue, tmp_path_factory):
    """One tiny run trained through the command line (YAML config plus --set overrides)."""
    root = tmp_path_factory.mktemp("cli")
    config_path = _config(catalogue, root).to_yaml(root / "cfg.yaml")
    code = cli_main(["train", "-q", "--config", str(config_path), "--set", "training.epochs=1", "--set", "name=cli"])
    assert code == 0
    return root / "cli", config_path


def test_cli_train_writes_every_file_of_the_run_directory(cli_run, catalogue):
    run_dir, _ = cli_run
    for name in ("config.yaml", "labels.json", "model.keras", "best.keras", "history.csv",
                 "splits/train.csv", "splits/validation.csv", "splits/test.csv"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()  # removed once the run finished
    assert RunDir(run_dir).is_finished and RunDir(run_dir).finished_marker.is_file()
    timings = json.loads(RunDir(run_dir).timings.read_text())  # where this command's time went, in seconds
    assert list(timings["stages"]) == ["training"] and timings["stages"]["training"] > 0
    assert timings["total"] == pytest.approx(timings["stages"]["training"] + timings["other"], abs=0.02)

    saved = TrainConfig.from_yaml(run_dir / "config.yaml")
    assert saved.training.epochs == 1 and saved.name == "cli"
    assert saved.data.labels_csv == str(catalogue.resolve())  # resolved: usable from any directory

    splits = {name: pd.read_csv(run_dir / "splits" / f"{name}.csv", dtype=str) for name in ("train", "validation", "test")}
    all_ids = pd.concat(splits.values())["id"]
    assert all_ids.is_unique and len(all_ids) == len(pd.read_csv(catalogue))
    expected_labels = LabelSpace.from_frame(splits["train"])
    assert LabelSpace.load(run_dir / "labels.json") == expected_labels

    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [0]
    for column in ("loss", "val_loss", "category_accuracy", "subcategory_accuracy", "attributes_pr_auc"):
        assert column in history.columns, column

    model = keras.saving.load_model(run_dir / "model.keras")
    assert [tuple(model.get_layer(level).output.shape) for level in ("category", "subcategory", "attributes")] == [
        (None, expected_labels.num_categories), (None, expected_labels.num_subcategories),
        (None, expected_labels.num_attributes)]
    assert model.input_shape == (None, SIZE, SIZE, 3)


def test_cli_refuses_to_overwrite_a_finished_run(cli_run, capsys):
    run_dir, config_path = cli_run
    before = (run_dir / "model.keras").stat().st_mtime_ns
    code = cli_main(["train", "-q", "--config", str(config_path), "--set", "training.epochs=1", "--set", "name=cli"])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("fashion-hier train: ") and error.count("\n") == 1 and "--overwrite" in error
    assert (run_dir / "model.keras").stat().st_mtime_ns == before


def test_cli_names_an_unknown_override_key(cli_run, capsys):
    _, config_path = cli_run
    assert cli_main(["train", "--config", str(config_path), "--set", "training.epoch=1"]) == 2
    assert "'training.epoch'" in capsys.readouterr().err


class _Interrupt(keras.callbacks.Callback):
    """Stands in for a killed process: raises once epoch ``after`` has been logged and backed up."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after:
            raise KeyboardInterrupt(f"interrupted after epoch {epoch}")


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.learning_rates, self.backbone_trainable = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        from fashion_hier.models import backbone_model

        self.epochs.append(epoch)
        self.learning_rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.backbone_trainable.append(backbone_model(self.model).trainable)


@pytest.mark.slow
def test_interrupted_two_stage_run_resumes_at_the_next_epoch(catalogue, tmp_path):
    config = _config(catalogue, tmp_path, "name=resumed", "training.epochs=3", "training.freeze_epochs=1",
                     "training.batch_size=64",
                     "training.finetune_learning_rate=0.0001")
    first = _EpochRecorder()
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[first, _Interrupt(after=1)], verbose=0)
    run_dir = tmp_path / "resumed"
    assert (run_dir / "backup").is_dir() and not (run_dir / "model.keras").exists()
    assert first.epochs == [0, 1] and first.backbone_trainable == [False, True]
    assert first.learning_rates == pytest.approx([1e-3, 1e-4])

    with pytest.raises(RunDirectoryError, match=r"different config \(changed: training\.epochs\)"):
        train(config.with_overrides(["training.epochs=4"]), verbose=0)

    second = _EpochRecorder()
    train(config, callbacks=[second], verbose=0)
    assert second.epochs == [2]  # the frozen stage and epoch 1 are not repeated
    assert second.learning_rates == pytest.approx([1e-4]) and second.backbone_trainable == [True]
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [0, 1, 2]
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()


def test_validation_rows_with_labels_unknown_to_training_are_dropped_with_a_warning():
    train_frame = pd.DataFrame({"subCategory": ["Bags", "Shoes"], "articleType": ["Backpacks", "Heels"],
                                "season": ["Summer", "Winter"], "usage": ["Casual", None]})
    label_space = LabelSpace.from_frame(train_frame)
    validation = pd.DataFrame({"subCategory": ["Shoes", "Watches", "Bags"],
                               "articleType": ["Heels", "Digital", "Backpacks"],
                               "season": ["Winter", "Summer", "Fall"], "usage": ["Casual", None, None]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame, labels = _encode_known(label_space, validation, "validation")
    assert frame.index.tolist() == [0, 2]
    np.testing.assert_array_equal(labels["category"], [1, 0])
    np.testing.assert_array_equal(labels["subcategory"], [1, 0])
    # attributes sorted: Casual, Summer, Winter; the unseen "Fall" is ignored
    np.testing.assert_array_equal(labels["attributes"], [[1, 0, 1], [0, 0, 0]])
    assert any("validation split" in str(w.message) and "dropped 1 of 3" in str(w.message) for w in caught)


def test_demo_chance_levels_are_the_majority_shares_of_the_test_split(cli_run):
    from fashion_hier.demo import chance_levels

    run_dir, _ = cli_run
    label_space = LabelSpace.load(run_dir / "labels.json")
    test = pd.read_csv(run_dir / "splits" / "test.csv", dtype=str)
    test = test[label_space.known_rows(test)]
    chance = chance_levels(run_dir)
    assert chance["category"] == test["subCategory"].value_counts(normalize=True).max()
    assert chance["subcategory"] == test["articleType"].value_counts(normalize=True).max()
    attributes = label_space.encode(test)["attributes"]
    present = attributes.sum(axis=0) > 0
    assert chance["attributes"] == pytest.approx(attributes[:, present].mean(axis=0).mean())


def test_early_stopping_counts_epochs_without_a_new_best_of_the_stage():
    from fashion_hier.checkpoints import best_epoch, should_stop

    history = [{"epoch": 0, "acc": 0.2}, {"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": float("nan")},
               {"epoch": 3, "acc": 0.5}, {"epoch": 4, "acc": 0.4}]
    assert best_epoch(history, "acc") == 1  # the first of equal values; NaN never wins
    assert best_epoch(history, "acc", since=2) == 3 and best_epoch(history, "missing") is None
    assert should_stop(history, "acc", 3, since=0)  # epochs 2, 3, 4 without a new best
    assert not should_stop(history, "acc", 4, since=0) and not should_stop(history, "acc", None, since=0)
    assert not should_stop(history, "acc", 2, since=2)  # the stage starting at epoch 2: best at 3, one epoch since
    assert should_stop(history[:3], "acc", 1, since=2)  # a stage whose only epoch has no value


@pytest.mark.slow
def test_best_checkpoint_and_the_final_model_follow_validation_subcategory_accuracy(catalogue, tmp_path):
    config = _config(catalogue, tmp_path, "name=best", "training.epochs=3", "training.early_stopping_patience=5",
                     "model.backbone=small_cnn", "optimizer.learning_rate=0.01")
    run = RunDir(train(config, verbose=0))
    history = pd.read_csv(run.history)
    best = int(history["epoch"][history["val_subcategory_accuracy"].idxmax()])  # the first of equal values
    assert run.finished_info()["monitor"] == "val_subcategory_accuracy"
    assert run.finished_info()["best_epoch"] == best
    import fashion_hier.losses  # noqa: F401

    final = keras.saving.load_model(run.model, compile=False).get_weights()
    best_model = keras.saving.load_model(run.best, compile=False)
    assert isinstance(best_model, HierarchicalClassifier)  # best.keras is the task, not a bare network
    for final_weights, best_weights in zip(final, best_model.get_weights(), strict=True):
        np.testing.assert_array_equal(final_weights, best_weights)


@pytest.mark.slow
def test_unreadable_training_images_are_skipped_and_listed_in_the_run(catalogue, tmp_path):
    """A corrupt image in the catalogue costs its sample, not the run; the run lists it with the reason."""
    import shutil

    copy = tmp_path / "catalogue"
    shutil.copytree(catalogue.parent, copy)
    broken = sorted((copy / "images").glob("*.jpg"))[:3]
    for path in broken:
        path.write_bytes(path.read_bytes()[:40])  # truncated JPEGs
    run_dir = train(_config(copy / catalogue.name, tmp_path, "training.epochs=1", "name=broken"), verbose=0)
    run = RunDir(run_dir)
    assert run.is_finished
    listed = pd.read_csv(run.unreadable_images)
    splits = pd.concat([pd.read_csv(run.split(name), dtype=str) for name in ("train", "validation")])
    expected = sorted(set(map(str, broken)) & set(splits["image_path"]))
    assert expected and sorted(listed["image_path"]) == expected and listed["reason"].notna().all()


def test_model_file_alone_is_the_task_with_names(cli_run):
    """train's model.keras is a HierarchicalClassifier that carries the run's label space and image policy."""
    from fashion_hier.task import HierarchicalClassifier

    run_dir, _ = cli_run
    model = keras.saving.load_model(RunDir(run_dir).model, compile=False)
    assert isinstance(model, HierarchicalClassifier)
    assert model.label_space == LabelSpace.load(RunDir(run_dir).labels)
    assert model.image_size == (SIZE, SIZE) and model.resize == "stretch"
    assert model.class_counts is not None
