"""HierarchicalClassifier: one .keras file is a usable model (names, scores, thresholds), config round-trips."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import LossConfig, TrainConfig  # noqa: E402
from fashion_hier.labels import LEVELS, LabelSpace  # noqa: E402
from fashion_hier.losses import attribute_weights, inverse_frequency_weights, losses_from_config  # noqa: E402
from fashion_hier.models import build_model  # noqa: E402
from fashion_hier.predict import Predictor, consistent_decode  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from fashion_hier.task import (  # noqa: E402
    HierarchicalClassifier,
    class_counts_from_labels,
    default_losses,
    save_task_model,
)
from fashion_hier.thresholds import DEFAULT_THRESHOLD, save_thresholds  # noqa: E402

SIZE = 32
REPO = Path(__file__).resolve().parents[1]
LABELS = LabelSpace(
    categories=["Bags", "Shoes"],
    subcategories=["Backpacks", "Heels", "Sneakers"],
    attributes=["Casual", "Summer", "Winter"],
    parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"},
)


def _tiny_network(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)  # weight initialisation only; tests compare models built alike
    return build_model(2, 3, 3, backbone="small_cnn", weights=None, input_shape=(SIZE, SIZE, 3), units=8)


def _images(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


# ---- construction, config, thresholds ----------------------------------------------------------

def test_get_config_and_from_config_round_trip_everything_the_task_carries():
    task = HierarchicalClassifier(_tiny_network(), LABELS, thresholds=[0.4, 0.5, 0.6], resize="pad",
                                  class_counts={"category": [3, 5], "subcategory": [3, 2, 3], "attributes": [1, 2, 3, 8]},
                                  build_settings={"backbone": "small_cnn", "units": 8})
    clone = HierarchicalClassifier.from_config(json.loads(json.dumps(task.get_config())))  # JSON-able too
    clone.set_weights(task.get_weights())

    assert clone.label_space == LABELS
    np.testing.assert_array_equal(clone.thresholds, [0.4, 0.5, 0.6])
    assert (clone.image_size, clone.resize) == ((SIZE, SIZE), "pad")
    assert {k: v.tolist() for k, v in clone.class_counts.items()} == task.get_config()["class_counts"]
    assert clone.build_settings == {"backbone": "small_cnn", "units": 8}
    without_network = lambda config: {key: value for key, value in config.items() if key != "network"}  # noqa: E731
    assert without_network(clone.get_config()) == without_network(task.get_config())
    assert [layer.name for layer in clone.network.layers] == [layer.name for layer in task.network.layers]
    assert sorted(clone.output_names) == sorted(LEVELS)
    images = _images()
    for level in LEVELS:
        np.testing.assert_allclose(clone.predict_scores(images)[level], task.predict_scores(images)[level],
                                   rtol=1e-4, atol=1e-6)


def test_import_fashion_hier_is_cheap_and_makes_keras_loading_work_in_either_order():
    script = ("import sys, fashion_hier; assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
              "import keras; assert 'fashion_hier.task' in sys.modules, 'task not registered'; "
              "assert keras.saving.get_registered_object('fashion_hier>HierarchicalClassifier') is not None")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={**_env(), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_thresholds_survive_a_save_and_with_thresholds_leaves_the_original_alone(tmp_path):
    task = HierarchicalClassifier(_tiny_network(), LABELS)
    np.testing.assert_array_equal(task.thresholds, np.full(3, DEFAULT_THRESHOLD))
    other = task.with_thresholds([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(task.thresholds, np.full(3, DEFAULT_THRESHOLD))
    task.set_thresholds(0.55)
    path = tmp_path / "task.keras"
    other.save(path)
    np.testing.assert_array_equal(keras.saving.load_model(path).thresholds, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(Predictor.load(path).thresholds, [0.1, 0.2, 0.3])  # a lone .keras file
    np.testing.assert_array_equal(task.thresholds, np.full(3, 0.55))
    with pytest.raises(ValueError, match=r"one number or 3"):
        task.set_thresholds([0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        task.set_thresholds([0.5, 1.5, 0.5])


def test_a_label_space_that_does_not_fit_the_network_is_refused():
    wider = LabelSpace(["Bags", "Shoes", "Watches"], LABELS.subcategories, LABELS.attributes, {**LABELS.parents})
    with pytest.raises(ValueError, match="do not match the label space"):
        HierarchicalClassifier(_tiny_network(), wider)
    with pytest.raises(ValueError, match="resize must be one of"):
        HierarchicalClassifier(_tiny_network(), LABELS, resize="crop")


def test_consistent_catalogue_entries_keep_the_subcategory_under_the_category():
    task = HierarchicalClassifier(_tiny_network(seed=3), LABELS)
    images = _images(12, seed=1)
    scores = task.predict_scores(images)
    table = task.predict_catalog(images, consistent=True)
    category, subcategory = consistent_decode(scores["category"], scores["subcategory"], LABELS.parent_index)
    assert table["category"].tolist() == LABELS.decode_category(category)
    assert table["subcategory"].tolist() == LABELS.decode_subcategory(subcategory)
    assert all(LABELS.parents[s] == c for c, s in zip(table["category"], table["subcategory"]))


def test_default_compile_weights_the_losses_as_the_training_labels_would():
    rng = np.random.default_rng(0)
    targets = {"category": rng.integers(0, 2, 40), "subcategory": rng.integers(0, 3, 40),
               "attributes": (rng.random((40, 3)) < [0.1, 0.5, 0.8]).astype(np.int8)}
    paper = LossConfig(weighting="inverse_frequency")
    losses = default_losses(LABELS, class_counts_from_labels(targets, LABELS), paper)
    one_hot = {**targets, "category": np.eye(2)[targets["category"]], "subcategory": np.eye(3)[targets["subcategory"]]}
    assert class_counts_from_labels(one_hot, LABELS) == class_counts_from_labels(targets, LABELS)
    assert class_counts_from_labels(targets, LABELS)["category"] == np.bincount(targets["category"]).tolist()
    np.testing.assert_allclose(losses["category"].get_config()["class_weights"],
                               inverse_frequency_weights(targets["category"], 2))
    np.testing.assert_allclose(losses["subcategory"].get_config()["class_weights"],
                               inverse_frequency_weights(targets["subcategory"], 3))
    pos, neg = attribute_weights(targets["attributes"])
    np.testing.assert_allclose(losses["attributes"].get_config()["pos_weights"], pos)
    np.testing.assert_allclose(losses["attributes"].get_config()["neg_weights"], neg)
    smoothed = default_losses(LABELS, class_counts_from_labels(targets, LABELS),
                              LossConfig(weighting="inverse_frequency", power=0.5, cap=1.2))
    np.testing.assert_allclose(smoothed["subcategory"].get_config()["class_weights"],
                               inverse_frequency_weights(targets["subcategory"], 3, power=0.5, cap=1.2))
    np.testing.assert_allclose(smoothed["attributes"].get_config()["pos_weights"],
                               attribute_weights(targets["attributes"], power=0.5, cap=1.2)[0])

    default = default_losses(LABELS, class_counts_from_labels(targets, LABELS))  # the library default: smoothed
    np.testing.assert_allclose(default["subcategory"].get_config()["class_weights"],
                               losses_from_config(LossConfig(), LABELS, targets)["subcategory"].get_config()["class_weights"])

    task = HierarchicalClassifier(_tiny_network(), LABELS, class_counts=class_counts_from_labels(targets, LABELS))
    task.compile()
    images = _images(4)
    history = task.fit(images, {level: targets[level][:4] for level in LEVELS}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert {"category_accuracy", "attributes_pr_auc"} <= set(history.history)


# ---- a trained run: model.keras alone, in a fresh process, predicts what Predictor predicts ------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    root = tmp_path_factory.mktemp("task_run")
    labels_csv = make_synthetic_catalog(root / "data", n=60, image_size=SIZE, seed=2)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={root / 'data' / 'images'}",
        f"data.image_size=[{SIZE}, {SIZE}]", "data.augment=false", "model.backbone=small_cnn",
        "model.weights=null", "model.units=8", "training.epochs=1", "training.batch_size=16",
        "training.jit_compile=false", f"output_dir={root}", "name=tiny",
    ])
    return train(config, verbose=0)


@pytest.mark.slow
def test_model_keras_alone_in_a_fresh_process_predicts_what_predictor_predicts_on_the_run(tiny_run, tmp_path):
    run = RunDir(tiny_run)
    label_space = LabelSpace.load(run.labels)
    tuned = np.linspace(0.3, 0.6, label_space.num_attributes)
    save_thresholds(run.thresholds, tuned, label_space.attributes)  # the run's file overrides the default
    paths = sorted(str(p) for p in (run.path.parent / "data" / "images").glob("*.jpg"))[:20]

    predictor = Predictor.load(run.path)
    np.testing.assert_array_equal(predictor.thresholds, tuned)
    expected_table = predictor.predict(paths, batch_size=8)
    expected_scores = predictor.predict_scores(paths, batch_size=8)

    # what train's final save will do: the network wrapped as the task, in one file, alone
    train_frame = pd.read_csv(run.split("train"), dtype=str)
    counts = class_counts_from_labels(label_space.encode(train_frame, unknown="drop"), label_space)
    lone = tmp_path / "lone"
    lone.mkdir()
    network = keras.saving.load_model(run.model, compile=False)
    save_task_model(network, label_space, lone / RunDir.MODEL, thresholds=predictor.thresholds,
                    image_size=predictor.image_size, resize=predictor.resize, class_counts=counts)
    shutil.rmtree(run.path)  # nothing else of the run exists any more
    assert sorted(p.name for p in lone.iterdir()) == [RunDir.MODEL]

    script = textwrap.dedent(f"""
        import json, sys
        import keras, fashion_hier
        model = keras.saving.load_model({str(lone / RunDir.MODEL)!r})
        paths = json.loads(sys.stdin.read())
        table = model.predict_catalog(paths, consistent=False, batch_size=8)
        scores = model.predict_scores(paths, batch_size=8)
        table.to_csv({str(tmp_path / "table.csv")!r}, index=False)
        json.dump({{"class": type(model).__name__, "thresholds": model.thresholds.tolist(),
                   "scores": {{level: values.tolist() for level, values in scores.items()}},
                   "modules": sorted(name for name in sys.modules if name.split(".")[0] in ("fashion_hier",))}},
                  open({str(tmp_path / "out.json")!r}, "w"))
    """)
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(paths), capture_output=True, text=True,
                          cwd=REPO, env={**_env(), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    table = pd.read_csv(tmp_path / "table.csv", dtype=str, keep_default_na=False)

    assert out["class"] == "HierarchicalClassifier"
    np.testing.assert_allclose(out["thresholds"], tuned)
    for column in ("image_path", "category", "subcategory", "attributes"):
        assert table[column].tolist() == expected_table[column].fillna("").astype(str).tolist(), column
    for level in LEVELS:
        # same weights, same graph, same batches, same CPU: equal to float32 rounding
        np.testing.assert_allclose(np.asarray(out["scores"][level], np.float32), expected_scores[level],
                                   rtol=0, atol=1e-6)


def _env() -> dict:
    import os

    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


# ---- loading errors --------------------------------------------------------------------------

def test_load_says_what_is_wrong_with_a_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist; pass a run directory"):
        Predictor.load(tmp_path / "no_such_run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"has no {RunDir.MODEL}"):
        Predictor.load(tmp_path / "empty")
    interrupted = RunDir(tmp_path / "interrupted")
    interrupted.path.mkdir()
    interrupted.config.write_text("name: x\n")
    with pytest.raises(FileNotFoundError, match="did not finish.*run the same 'fashion-hier train' command"):
        Predictor.load(interrupted.path)
    bare = tmp_path / "bare.keras"
    _tiny_network().save(bare)
    with pytest.raises(ValueError, match="bare Keras model without its label space"):
        Predictor.load(bare)


def test_a_legacy_run_without_its_config_gets_one_line_saying_so(tmp_path):
    legacy = RunDir(tmp_path / "legacy")
    legacy.path.mkdir()
    _tiny_network().save(legacy.model)
    LABELS.save(legacy.labels)
    assert legacy.is_legacy
    with pytest.raises(FileNotFoundError, match=rf"no {RunDir.CONFIG}; retrain"):
        Predictor.load(legacy.path)
