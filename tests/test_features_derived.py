"""Pooled features derived from the activation cache equal the features extracted from the photos, so the recipe
sends each photo through the backbone once per view (issue 21)."""
from __future__ import annotations

import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.data import make_synthetic_catalog, read_catalog  # noqa: E402
from fashion_hier.features import extract_features, load_feature_cache  # noqa: E402
from fashion_hier.features.derived import derive_feature_caches, derived_cache_dir  # noqa: E402
from fashion_hier.finetune.stage import ensure_activation_cache  # noqa: E402

pytestmark = pytest.mark.slow  # a ResNet-50 over a few photos, three times

SIZE = 64
CUT = "conv4_block6_out"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("derived")
    labels_csv = make_synthetic_catalog(root / "catalog", n=15, image_size=SIZE, seed=3)
    catalog = read_catalog(labels_csv, root / "catalog" / "images")
    keras.utils.set_random_seed(4)
    weights = root / "resnet50.weights.h5"
    keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                pooling="avg").save_weights(weights)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={root / 'catalog' / 'images'}",
        f"data.image_size=[{SIZE}, {SIZE}]", "model.backbone=resnet50_multiscale", f"model.weights={weights}",
        "model.trainable_backbone=false", f"model.trainable_from={CUT}", "training.cache_features=true",
        f"output_dir={root / 'out'}"])
    return config, catalog, root


def test_derived_features_equal_the_features_of_the_photos_both_views(setup):
    config, catalog, root = setup
    activations = ensure_activation_cache(config, catalog.paths)
    cache_dir = derive_feature_caches(config, activations)
    assert cache_dir == derived_cache_dir(activations.cache_dir)
    for flip, directory in ((False, cache_dir), (True, cache_dir / "flipped")):
        derived = load_feature_cache(directory)
        direct = extract_features(catalog.paths, backbone="resnet50_multiscale", weights=config.model.weights,
                                  image_size=(SIZE, SIZE), cache_dir=root / f"direct_{flip}", flip=flip,
                                  progress=False)
        assert derived.features.shape == direct.shape == (len(catalog.paths), 3072)
        # the maps are cached as float16 (relative rounding 2**-11); the layers above the cut carry it along
        scale = float(np.abs(direct).max())
        np.testing.assert_allclose(derived.features, direct, rtol=0, atol=5e-3 * scale)
        assert derived.manifest["flip"] is flip and derived.manifest["source"].startswith("activations ")
        assert list(derived.paths) == [str(path) for path in catalog.paths]


def test_derived_features_are_computed_once(setup, monkeypatch):
    config, catalog, _ = setup
    activations = ensure_activation_cache(config, catalog.paths)
    cache_dir = derive_feature_caches(config, activations)
    before = os.stat(cache_dir / "features.npy").st_mtime_ns

    import fashion_hier.finetune.partial as partial

    def refuse(*args, **kwargs):
        raise AssertionError("a complete derived cache was computed again")

    monkeypatch.setattr(partial, "upper_backbone", refuse)
    assert derive_feature_caches(config, activations) == cache_dir
    assert os.stat(cache_dir / "features.npy").st_mtime_ns == before


def test_an_openvino_extraction_is_its_own_cache_and_agrees_with_keras(setup):
    pytest.importorskip("openvino")
    config, catalog, _ = setup
    keras_cache = ensure_activation_cache(config, catalog.paths)
    bf16 = config.with_overrides(["training.extraction_engine=openvino", "training.extraction_precision=bf16"])
    openvino_cache = ensure_activation_cache(bf16, catalog.paths)
    assert openvino_cache.cache_dir != keras_cache.cache_dir  # maps computed at bf16 never pass for float32 ones
    assert (openvino_cache.manifest["engine"], keras_cache.manifest["engine"]) == ("openvino bf16", "keras f32")
    maps, reference = (np.asarray(cache.activations, np.float32) for cache in (openvino_cache, keras_cache))
    # bf16 keeps 8 bits of mantissa: each map agrees with float32's to a few percent of its scale
    assert np.abs(maps - reference).max() <= 0.05 * np.abs(reference).max()
    derived = load_feature_cache(derive_feature_caches(bf16, openvino_cache))
    assert derived.manifest["engine"] == "openvino bf16" and "(openvino bf16)" in derived.manifest["source"]


def test_int8_extraction_calibrates_once_on_training_photos_and_stays_close_to_float32(setup, monkeypatch):
    pytest.importorskip("nncf")
    import fashion_hier.engine as engine_module
    from fashion_hier.data import read_images
    from fashion_hier.engine import calibration_sample, extraction_calibration_paths
    from fashion_hier.features import ensure_feature_caches

    config, catalog, _ = setup
    flat = config.with_overrides(["model.trainable_from=null", "data.flip_features=true"])
    int8 = flat.with_overrides(["training.extraction_engine=openvino", "training.extraction_precision=int8"])
    calibrated = []
    quantize = engine_module.quantize
    monkeypatch.setattr(engine_module, "quantize",
                        lambda ir, images: calibrated.append(np.array(images)) or quantize(ir, images))
    keras_dir, int8_dir = (ensure_feature_caches(cfg, catalog.paths) for cfg in (flat, int8))
    assert int8_dir != keras_dir
    # quantized once for both views, on the training split's photos as read for the model
    assert len(calibrated) == 1
    training = extraction_calibration_paths(int8)
    expected = read_images(calibration_sample(training, 128), (SIZE, SIZE)).images
    np.testing.assert_array_equal(calibrated[0], expected)
    assert load_feature_cache(int8_dir).manifest["engine"].startswith(f"openvino int8 calibrated on {len(training)} ")
    for directory_of in (lambda d: d, lambda d: d / "flipped"):
        quantized = np.asarray(load_feature_cache(directory_of(int8_dir)).features)
        reference = np.asarray(load_feature_cache(directory_of(keras_dir)).features)
        cosine = (quantized * reference).sum(1) / (np.linalg.norm(quantized, axis=1) * np.linalg.norm(reference, axis=1))
        assert cosine.min() > 0.95, cosine  # int8 ranges from the photos: each photo's features keep their direction
    # the maps at the cut, and the pooled features derived from them, calibrate on the same photos
    calibrated.clear()
    int8_finetune = int8.with_overrides([f"model.trainable_from={CUT}"])
    activations = ensure_activation_cache(int8_finetune, catalog.paths)
    derived = load_feature_cache(derive_feature_caches(int8_finetune, activations))
    assert len(calibrated) == 2 and calibrated[1].shape[1:] == activations.activations.shape[2:]
    assert derived.manifest["engine"] == activations.manifest["engine"] == load_feature_cache(int8_dir).manifest["engine"]
