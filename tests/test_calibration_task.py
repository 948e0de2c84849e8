"""Temperature scaling and selective prediction live in the task: every way of scoring answers the same
calibrated numbers, and a level below its confidence is left for a person (issue 22)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.metrics import apply_temperature  # noqa: E402
from fashion_hier.models import build_model  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.task import HierarchicalClassifier  # noqa: E402

SIZE = 32
LABELS = LabelSpace(
    categories=["Bags", "Shoes"],
    subcategories=["Backpacks", "Heels", "Sneakers"],
    attributes=["Casual", "Summer", "Winter"],
    parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"},
)
TEMPERATURES = {"category": 2.5, "subcategory": 0.6, "attributes": 1.7}


@pytest.fixture(scope="module")
def task() -> HierarchicalClassifier:
    keras.utils.set_random_seed(0)
    network = build_model(2, 3, 3, backbone="small_cnn", weights=None, input_shape=(SIZE, SIZE, 3), units=8)
    return HierarchicalClassifier(network, LABELS)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (6, SIZE, SIZE, 3)).astype(np.float32)


def test_calibrated_scores_equal_temperature_scaling_of_the_trained_scores(task, images):
    raw = Predictor(task).predict_scores(images)
    calibrated = Predictor(task.with_temperatures(TEMPERATURES)).predict_scores(images)
    for level, temperature in TEMPERATURES.items():
        activation = "sigmoid" if level == "attributes" else "softmax"
        expected = apply_temperature(raw[level], temperature, activation=activation)
        np.testing.assert_allclose(calibrated[level], expected, rtol=0, atol=1e-5)
        if level != "attributes":
            np.testing.assert_array_equal(calibrated[level].argmax(axis=1), raw[level].argmax(axis=1))


def test_temperatures_and_min_confidence_survive_a_save_and_a_fresh_load(task, images, tmp_path):
    calibrated = task.with_temperatures(TEMPERATURES).with_min_confidence({"subcategory": 0.7})
    calibrated.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.temperatures == TEMPERATURES
    assert loaded.min_confidence == {"category": None, "subcategory": 0.7}
    for level, scores in Predictor(loaded).predict_scores(images).items():
        np.testing.assert_allclose(scores, Predictor(calibrated).predict_scores(images)[level], atol=1e-6)


def test_a_task_saved_before_calibration_existed_loads_uncalibrated(task):
    config = task.get_config()
    del config["temperatures"], config["min_confidence"]
    old = HierarchicalClassifier.from_config(config)
    assert old.temperatures == {"category": 1.0, "subcategory": 1.0, "attributes": 1.0}
    assert old.min_confidence == {"category": None, "subcategory": None}


def test_the_savedmodel_answers_the_calibrated_scores(task, images, tmp_path):
    import cv2
    import tensorflow as tf

    from fashion_hier.export import export_savedmodel

    calibrated = task.with_temperatures(TEMPERATURES)
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"{index}.png"  # lossless: the export decodes the same pixels
        cv2.imwrite(str(path), image.astype(np.uint8)[:, :, ::-1])
        paths.append(str(path))
    export_savedmodel(Predictor(calibrated), tmp_path / "served")
    serving = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    served = serving(image_bytes=tf.constant([open(path, "rb").read() for path in paths]))
    expected = Predictor(calibrated).predict_scores(paths)
    for level, name in (("category", "category_scores"), ("subcategory", "subcategory_scores"),
                        ("attributes", "attribute_scores")):
        np.testing.assert_allclose(served[name].numpy(), expected[level], atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    ({"category": 0}, "temperatures\\['category'\\] must be a finite number > 0"),
    ({"category": float("nan")}, "finite number > 0"),
    ({"colour": 2.0}, "temperatures has levels \\['colour'\\]"),
])
def test_bad_temperatures_are_refused_naming_the_level(task, bad, message):
    with pytest.raises(ValueError, match=message):
        task.with_temperatures(bad)


@pytest.mark.parametrize("bad, message", [
    ({"subcategory": 1.5}, "must lie in \\[0, 1\\]"),
    ({"attributes": 0.5}, "min_confidence has levels \\['attributes'\\]"),
])
def test_bad_min_confidence_is_refused_naming_the_level(task, bad, message):
    with pytest.raises(ValueError, match=message):
        task.with_min_confidence(bad)


# ---- selective prediction ---------------------------------------------------------------------------------

def _scores(category, subcategory):
    return {"category": np.asarray(category, np.float32), "subcategory": np.asarray(subcategory, np.float32),
            "attributes": np.full((len(category), 3), 0.9, np.float32)}


def test_below_its_confidence_a_level_is_left_empty_and_the_row_marked_for_review(task):
    scores = _scores([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45]],
                     [[0.95, 0.03, 0.02], [0.1, 0.5, 0.4], [0.4, 0.3, 0.3]])
    table = Predictor(task.with_min_confidence({"category": 0.6, "subcategory": 0.9})).decode(scores)
    assert table["category"].fillna("").tolist() == ["Bags", "Shoes", ""]  # an empty cell, for a person
    assert table["subcategory"].fillna("").tolist() == ["Backpacks", "", ""]  # 0.5 < 0.9; no category, none
    assert table["needs_review"].tolist() == [False, True, True]
    np.testing.assert_allclose(table["subcategory_score"], [0.95, 0.5, 0.4])  # the scores stay, for the reviewer


def test_without_min_confidence_every_row_is_answered(task):
    scores = _scores([[0.51, 0.49]], [[0.34, 0.33, 0.33]])
    table = Predictor(task).decode(scores)
    assert table.loc[0, "subcategory"] == "Backpacks" and not table.loc[0, "needs_review"]


def test_an_explicit_min_confidence_overrides_the_stored_one(task):
    scores = _scores([[0.9, 0.1]], [[0.7, 0.2, 0.1]])
    stored = Predictor(task.with_min_confidence({"subcategory": 0.9}))
    assert stored.decode(scores)["subcategory"].isna().tolist() == [True]
    overridden = stored.decode(scores, min_confidence={"subcategory": 0.5})
    assert overridden["subcategory"].tolist() == ["Backpacks"] and isinstance(overridden, pd.DataFrame)


@pytest.mark.slow
def test_the_tflite_export_answers_the_calibrated_scores(task, images, tmp_path):
    from fashion_hier.export import export_tflite, tflite_scores

    calibrated = task.with_temperatures(TEMPERATURES)
    path = export_tflite(Predictor(calibrated), tmp_path / "model.tflite", quantization="none")
    served = tflite_scores(path, images)
    expected = Predictor(calibrated).predict_scores(images)
    for level in ("category", "subcategory", "attributes"):
        np.testing.assert_allclose(served[level], expected[level], atol=1e-5)
