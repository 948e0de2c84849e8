"""Feature cache: features equal the backbone's, extraction resumes, heads trained on features serve."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.data import load_image, make_synthetic_catalog, read_catalog  # noqa: E402
from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.commands.features import main  # noqa: E402
from fashion_hier.features import (  # noqa: E402
    MANIFEST_FILE,
    FeatureCacheMismatch,
    extract_features,
    load_feature_cache,
    predict_from_features,
    scores_from_feature_cache,
    train_head_on_features,
)

SIZE = 32


@pytest.fixture(scope="module")
def catalog_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    return make_synthetic_catalog(root, n=40, image_size=SIZE, seed=3), root / "images"


@pytest.fixture(scope="module")
def catalog(catalog_files):
    return read_catalog(*catalog_files)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A fixed random MobileNetV2: a weights file makes the backbone reproducible across builds."""
    keras.utils.set_random_seed(7)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None,
                                              input_shape=(SIZE, SIZE, 3), pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "mobilenetv2.weights.h5"
    backbone.save_weights(path)
    return path


@pytest.fixture(scope="module")
def expected_features(catalog, weights_file):
    """Oracle: keras.applications' own preprocess_input and pooled MobileNetV2, image by image."""
    backbone = keras.applications.MobileNetV2(include_top=False, weights=str(weights_file),
                                              input_shape=(SIZE, SIZE, 3), pooling="avg")
    images = np.stack([load_image(p, (SIZE, SIZE)) for p in catalog.paths])
    preprocessed = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    return np.asarray(backbone.predict_on_batch(preprocessed))


def _extract(catalog, weights_file, cache_dir, **kwargs):
    options = dict(backbone="mobilenetv2", weights=weights_file, image_size=(SIZE, SIZE),
                   cache_dir=cache_dir, batch_size=8, progress=False)
    return extract_features(catalog.paths, **{**options, **kwargs})


@pytest.fixture(scope="module")
def cache_dir(catalog, weights_file, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    _extract(catalog, weights_file, cache_dir)
    return cache_dir


def test_cached_features_equal_backbone_on_preprocessed_images(cache_dir, expected_features):
    cache = load_feature_cache(cache_dir)
    assert cache.features.shape == (40, 1280)
    assert cache.features.dtype == np.float32
    np.testing.assert_allclose(cache.features, expected_features, rtol=1e-4, atol=1e-4)
    manifest = json.loads((cache_dir / MANIFEST_FILE).read_text())
    assert manifest["rows_done"] == 40 and manifest["feature_dim"] == 1280


def test_interrupted_extraction_resumes_without_recomputing_done_rows(catalog, weights_file,
                                                                      expected_features, tmp_path):
    partial = _extract(catalog, weights_file, tmp_path, max_batches=2)
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["rows_done"] == 16
    np.testing.assert_allclose(partial[:16], expected_features[:16], rtol=1e-4, atol=1e-4)
    assert not partial[16:].any()
    # Mark a finished row: a rerun that recomputed done rows would overwrite the mark.
    marked = np.lib.format.open_memmap(tmp_path / "features.npy", mode="r+")
    marked[5] = -7.0
    marked.flush()
    del marked
    with pytest.raises(FeatureCacheMismatch, match="unfinished"):
        load_feature_cache(tmp_path)

    resumed = _extract(catalog, weights_file, tmp_path)

    assert np.all(resumed[5] == -7.0)
    keep = np.arange(40) != 5
    np.testing.assert_allclose(resumed[keep], expected_features[keep], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cache_made_for_other_images_or_size_is_refused_unless_overwritten(catalog, weights_file, tmp_path):
    _extract(catalog, weights_file, tmp_path, max_batches=1)
    with pytest.raises(FeatureCacheMismatch, match="paths_sha256"):
        extract_features(catalog.paths[:-1], backbone="mobilenetv2", weights=weights_file,
                         image_size=(SIZE, SIZE), cache_dir=tmp_path, progress=False)
    with pytest.raises(FeatureCacheMismatch, match="image_size"):
        _extract(catalog, weights_file, tmp_path, image_size=(48, 48))

    redone = _extract(catalog, weights_file, tmp_path, image_size=(48, 48), overwrite=True, max_batches=1)

    assert redone.shape == (40, 1280)
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["image_size"] == [48, 48]


def test_random_backbone_partial_cache_cannot_be_resumed(catalog, tmp_path):
    options = dict(backbone="mobilenetv2", weights=None, image_size=(SIZE, SIZE), cache_dir=tmp_path,
                   batch_size=8, progress=False)
    extract_features(catalog.paths, max_batches=1, **options)
    with pytest.raises(FeatureCacheMismatch, match="overwrite=True"):
        extract_features(catalog.paths, **options)


def test_empty_paths_and_missing_weights_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="paths is empty"):
        extract_features([], cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no_such.h5"):
        extract_features(["a.jpg"], weights=tmp_path / "no_such.h5", cache_dir=tmp_path)



def _config(catalog_files, weights_file, output_dir, **model) -> TrainConfig:
    labels_csv, image_dir = catalog_files
    return TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "image_size": [SIZE, SIZE],
                 "split": [0.6, 0.2, 0.2], "seed": 1},
        "model": {"backbone": "mobilenetv2", "weights": str(weights_file), "units": 16, **model},
        "training": {"epochs": 3, "batch_size": 8, "run_eagerly": True},
        "output_dir": str(output_dir), "name": "head",
    })


@pytest.mark.slow
def test_command_trains_head_whose_full_model_predicts_like_the_head_on_features(
        catalog_files, weights_file, cache_dir, tmp_path, capsys, caplog):
    from fashion_hier.predict import Predictor

    caplog.set_level(logging.INFO, logger="fashion_hier")
    config_yaml = _config(catalog_files, weights_file, tmp_path).to_yaml(tmp_path / "config.yaml")

    assert main(["--config", str(config_yaml), "--cache", str(cache_dir), "--set", "training.epochs=2"]) == 0

    run_dir = tmp_path / "head"
    printed = capsys.readouterr().out
    assert f"run: {run_dir}" in printed and "one head epoch on" in caplog.text
    for name in ("model.keras", "best.keras", "head.keras", "labels.json", "config.yaml", "history.csv",
                 "features.json", "splits/train.csv", "splits/validation.csv", "splits/test.csv"):
        assert (run_dir / name).is_file(), name
    assert len(pd.read_csv(run_dir / "history.csv")) == 2
    test_paths = pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].astype(str).tolist()
    cache = load_feature_cache(cache_dir)

    on_images = Predictor.load(run_dir).predict_scores(test_paths, batch_size=8)
    on_features = predict_from_features(run_dir, cache.features[cache.rows(test_paths)])
    from_cache = scores_from_feature_cache(run_dir, test_paths)

    for level in ("category", "subcategory", "attributes"):
        np.testing.assert_allclose(on_images[level], on_features[level], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(from_cache[level], on_features[level])


def test_cache_of_a_larger_catalogue_serves_a_subset_without_extracting(
        catalog_files, weights_file, cache_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fashion_hier")
    labels_csv, image_dir = catalog_files
    subset_csv = tmp_path / "subset.csv"
    pd.read_csv(labels_csv).iloc[:30].to_csv(subset_csv, index=False)
    config = _config((subset_csv, image_dir), weights_file, tmp_path, head="independent")
    config_yaml = config.with_overrides(["loss.weighting=none", "training.early_stopping_patience=0"]).to_yaml(
        tmp_path / "config.yaml")
    manifest_before = (cache_dir / MANIFEST_FILE).read_text()

    assert main(["--config", str(config_yaml), "--cache", str(cache_dir)]) == 0

    assert "holds every image of the catalogue" in caplog.text
    assert (cache_dir / MANIFEST_FILE).read_text() == manifest_before
    run_dir = tmp_path / "head"
    assert keras.saving.load_model(run_dir / "head.keras", compile=False).name == "independent_head"
    history = pd.read_csv(run_dir / "history.csv")
    assert 1 <= len(history) <= 3 and "val_loss" in history.columns
    assert len(pd.read_csv(run_dir / "splits" / "train.csv")) + len(pd.read_csv(run_dir / "splits" / "test.csv")) < 30
    # images outside the run's cache are not silently scored from it
    assert scores_from_feature_cache(run_dir, ["/not/in/the/cache.jpg"]) is None


def test_cache_from_another_image_size_is_refused_for_training(catalog_files, weights_file, cache_dir, tmp_path):
    config = _config(catalog_files, weights_file, tmp_path).with_overrides(["data.image_size=[48, 48]"])
    with pytest.raises(FeatureCacheMismatch, match="image_size"):
        train_head_on_features(config, cache_dir)


def test_flipped_cache_holds_the_mirrored_images_features_and_is_its_own_identity(catalog, weights_file, tmp_path):
    from fashion_hier.features.cache import flipped_cache_dir

    paths = catalog.paths[:8]
    backbone = keras.applications.MobileNetV2(include_top=False, weights=str(weights_file),
                                              input_shape=(SIZE, SIZE, 3), pooling="avg")
    mirrored = np.stack([load_image(p, (SIZE, SIZE))[:, ::-1] for p in paths])
    expected = np.asarray(backbone.predict_on_batch(keras.applications.mobilenet_v2.preprocess_input(mirrored)))
    directory = flipped_cache_dir(tmp_path)
    features = extract_features(paths, backbone="mobilenetv2", weights=weights_file, image_size=(SIZE, SIZE),
                                cache_dir=directory, batch_size=8, progress=False, flip=True)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert load_feature_cache(directory).manifest["flip"] is True
    with pytest.raises(FeatureCacheMismatch, match="flip"):
        extract_features(paths, backbone="mobilenetv2", weights=weights_file, image_size=(SIZE, SIZE),
                         cache_dir=directory, batch_size=8, progress=False)


@pytest.mark.slow
def test_unreadable_images_are_recorded_at_extraction_and_left_out_of_head_training(
        catalog_files, weights_file, tmp_path):
    import shutil

    from fashion_hier.features import train_head_on_features
    from fashion_hier.rundir import RunDir

    labels_csv, image_dir = catalog_files
    copy = tmp_path / "catalog"
    shutil.copytree(labels_csv.parent, copy)
    broken = sorted((copy / "images").glob("*.jpg"))[:4]
    for path in broken:
        path.write_bytes(b"")  # 0-byte files
    catalog = read_catalog(copy / labels_csv.name, copy / "images")
    _extract(catalog, weights_file, tmp_path / "cache")
    cache = load_feature_cache(tmp_path / "cache")
    assert set(cache.unreadable) == {str(path) for path in broken}
    assert all(cache.unreadable.values())  # each with its reason

    config = _config((copy / labels_csv.name, copy / "images"), weights_file, tmp_path / "runs")
    run = RunDir(train_head_on_features(config, tmp_path / "cache", verbose=0))
    listed = pd.read_csv(run.unreadable_images)
    assert sorted(listed["image_path"]) == sorted(map(str, broken))
    assert run.is_finished


@pytest.mark.slow
def test_train_with_cache_features_extracts_the_caches_and_writes_a_normal_run(catalog_files, weights_file, tmp_path):
    """One command (train) does every stage of the frozen-backbone recipe: caches (flipped too), head, run."""
    from fashion_hier.predict import Predictor
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    config = _config(catalog_files, weights_file, tmp_path / "runs", trainable_backbone=False)
    config = config.with_overrides(["training.cache_features=true", "data.flip_features=true", "training.epochs=2"])
    run = RunDir(train(config, verbose=0))
    assert run.is_finished and run.features_record.is_file() and len(pd.read_csv(run.history)) == 2
    (cache_dir,) = (tmp_path / "runs" / "features").iterdir()
    assert load_feature_cache(cache_dir).manifest["rows_done"] == 40
    assert load_feature_cache(cache_dir / "flipped").manifest["rows_done"] == 40
    stages = json.loads(run.timings.read_text())["stages"]  # this command's seconds, stage by stage
    assert list(stages) == ["extraction: pooled features", "head"] and min(stages.values()) > 0
    test_paths = pd.read_csv(run.split("test"))["image_path"].astype(str).tolist()
    on_images = Predictor.load(run.path).predict_scores(test_paths, batch_size=8)
    from_cache = scores_from_feature_cache(run.path, test_paths)
    np.testing.assert_allclose(on_images["subcategory"], from_cache["subcategory"], rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="finished run"):
        train(config, verbose=0)


def test_cache_features_with_a_trainable_backbone_is_refused_at_load():
    from fashion_hier.config import ConfigError

    with pytest.raises(ConfigError, match="training.cache_features"):
        TrainConfig().with_overrides(["training.cache_features=true"])
