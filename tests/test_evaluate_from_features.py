"""evaluate scores a head-only run from its feature cache: same numbers as its full model on the images."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.data import make_synthetic_catalog, read_catalog  # noqa: E402
from fashion_hier.evaluate import evaluate_run  # noqa: E402
from fashion_hier.features import extract_features, train_head_on_features  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402

SIZE = 32
LEVELS = ("category", "subcategory", "attributes")


@pytest.fixture(scope="module")
def head_run(tmp_path_factory):
    """A head trained for one epoch on cached features of a fixed random MobileNetV2 (a weights file)."""
    root = tmp_path_factory.mktemp("evaluate_features")
    labels_csv = make_synthetic_catalog(root / "catalog", n=40, image_size=SIZE, seed=5)
    image_dir = root / "catalog" / "images"
    keras.utils.set_random_seed(11)
    weights = root / "mobilenetv2.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                   pooling="avg").save_weights(weights)
    cache_dir = root / "cache"
    extract_features(read_catalog(labels_csv, image_dir).paths, backbone="mobilenetv2", weights=weights,
                     image_size=(SIZE, SIZE), cache_dir=cache_dir, batch_size=20, progress=False)
    config = TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "image_size": [SIZE, SIZE]},
        "model": {"backbone": "mobilenetv2", "weights": str(weights), "units": 16, "trainable_backbone": False},
        "training": {"epochs": 1, "batch_size": 8},
        "output_dir": str(root / "runs"), "name": "head",
    })
    return train_head_on_features(config, cache_dir, verbose=0), cache_dir


@pytest.mark.slow
def test_head_run_is_scored_from_its_cache_with_the_full_models_numbers(head_run, tmp_path):
    run_dir, cache_dir = head_run
    result = evaluate_run(run_dir, out_dir=tmp_path / "report", progress=False)

    assert result["data"]["scored_from"] == f"feature cache {cache_dir.resolve()}"
    saved = np.load(tmp_path / "report" / "predictions.npz")
    on_images = Predictor.load(run_dir).predict_scores(saved["image_path"].tolist(), batch_size=8)
    for level in LEVELS:
        np.testing.assert_allclose(saved[f"{level}_score"], on_images[level], rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n_samples"] == len(saved["image_path"])


@pytest.mark.slow  # a second evaluation, on the images (~10 s on 2 busy cores)
def test_without_its_cache_the_run_is_scored_on_images_with_the_same_metrics(head_run, tmp_path):
    run_dir, cache_dir = head_run
    from_cache = evaluate_run(run_dir, out_dir=tmp_path / "cached", progress=False)
    moved = cache_dir.with_name("cache_moved")
    shutil.move(cache_dir, moved)
    try:
        on_images = evaluate_run(run_dir, out_dir=tmp_path / "images", progress=False)
    finally:
        shutil.move(moved, cache_dir)

    assert on_images["data"]["scored_from"] == "images"
    assert on_images["n_samples"] == from_cache["n_samples"]
    for level in ("category", "subcategory"):
        assert on_images[level]["accuracy"] == pytest.approx(from_cache[level]["accuracy"])
    assert on_images["attributes"]["mAP"] == pytest.approx(from_cache["attributes"]["mAP"], abs=1e-6)


@pytest.mark.slow
def test_a_calibrated_head_run_is_scored_from_its_cache_with_the_calibrated_models_numbers(head_run, tmp_path):
    from fashion_hier.calibrate import calibrate_run

    run_dir, cache_dir = head_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock*"))
    calibration = calibrate_run(copy)  # fitted on the validation rows' cached scores
    assert any(value != 1.0 for value in calibration.temperatures.values())
    result = evaluate_run(copy, out_dir=tmp_path / "report", progress=False)
    assert result["data"]["scored_from"] == f"feature cache {cache_dir.resolve()}"
    saved = np.load(tmp_path / "report" / "predictions.npz")
    on_images = Predictor.load(copy).predict_scores(saved["image_path"].tolist(), batch_size=8)
    for level in LEVELS:  # the model's temperature layers on images = the temperatures on the cached head
        np.testing.assert_allclose(saved[f"{level}_score"], on_images[level], rtol=1e-4, atol=1e-5)
