"""Activation cache and partial fine-tuning: cached maps equal the backbone's, the assembled model scores alike."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.data import load_image, make_synthetic_catalog, read_catalog  # noqa: E402
from fashion_hier.finetune import (  # noqa: E402
    ActivationCacheMismatch,
    extract_activations,
    load_activation_cache,
)
from fashion_hier.finetune.partial import (  # noqa: E402
    CachedViews,
    cached_model,
    finetune_from_cache,
    predict_from_cache,
)
from fashion_hier.labels import LEVELS, LabelSpace  # noqa: E402

pytestmark = pytest.mark.slow  # ResNet-50 activation caches and fine-tunes: CI runs them with -m slow

SIZE = 64
CUT = "conv4_block6_out"


@pytest.fixture(scope="module")
def catalog_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    return make_synthetic_catalog(root, n=15, image_size=SIZE, seed=5), root / "images"


@pytest.fixture(scope="module")
def catalog(catalog_files):
    return read_catalog(*catalog_files)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A fixed random ResNet-50 (a weights file makes the backbone the same in every build)."""
    keras.utils.set_random_seed(11)
    network = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                          pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "resnet50.weights.h5"
    network.save_weights(path)
    return path


@pytest.fixture(scope="module")
def cache_dir(catalog, weights_file, tmp_path_factory):
    """A float32 cache extracted in two runs: one batch, then the rest (resume)."""
    directory = tmp_path_factory.mktemp("activations")
    partial = extract_activations(catalog.paths, cache_dir=directory, weights=weights_file, image_size=(SIZE, SIZE),
                                  cut_layer=CUT, dtype="float32", batch_size=5, max_batches=1)
    assert partial.manifest["rows_done"] == 5
    with pytest.raises(ActivationCacheMismatch, match="unfinished"):
        load_activation_cache(directory)
    unfinished = load_activation_cache(directory, allow_unfinished=True)
    assert unfinished.rows(catalog.paths[:5]).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ActivationCacheMismatch, match="1 of 1 paths are not in the activation cache"):
        unfinished.rows(catalog.paths[5:6])
    extract_activations(catalog.paths, cache_dir=directory, weights=weights_file, image_size=(SIZE, SIZE),
                        cut_layer=CUT, dtype="float32", batch_size=5)
    return directory


def test_cached_maps_equal_resnet50_at_the_cut_for_both_views(catalog, weights_file, cache_dir):
    network = keras.applications.ResNet50(include_top=False, weights=str(weights_file), input_shape=(SIZE, SIZE, 3),
                                          pooling="avg")
    below = keras.Model(network.input, network.get_layer(CUT).output)
    images = np.stack([load_image(p, (SIZE, SIZE)) for p in catalog.paths])
    original = np.asarray(below.predict_on_batch(keras.applications.resnet50.preprocess_input(images.copy())))
    flipped = np.asarray(below.predict_on_batch(
        keras.applications.resnet50.preprocess_input(images[:, :, ::-1].copy())))

    cache = load_activation_cache(cache_dir, expect={"cut_layer": CUT, "image_size": [SIZE, SIZE]})

    assert cache.activations.shape == (len(catalog), 2, SIZE // 16, SIZE // 16, 1024)
    assert cache.readable.all()
    np.testing.assert_allclose(cache.activations[:, 0], original, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cache.activations[:, 1], flipped, rtol=1e-4, atol=1e-4)
    assert not np.allclose(original, flipped)


def test_a_cache_for_another_cut_or_size_is_refused_in_one_line(catalog, weights_file, cache_dir):
    with pytest.raises(ActivationCacheMismatch, match="cut_layer: cache has 'conv4_block6_out'") as error:
        extract_activations(catalog.paths, cache_dir=cache_dir, weights=weights_file, image_size=(SIZE, SIZE),
                            cut_layer="conv3_block4_out", dtype="float32")
    assert "\n" not in str(error.value)
    with pytest.raises(ActivationCacheMismatch, match="image_size"):
        load_activation_cache(cache_dir, expect={"image_size": [32, 32]})
    with pytest.raises(ValueError, match="'conv9_out' is not a layer"):
        extract_activations(catalog.paths[:2], cache_dir=cache_dir.parent / "other", weights=weights_file,
                            image_size=(SIZE, SIZE), cut_layer="conv9_out")


def test_unreadable_images_are_skipped_and_listed(catalog, weights_file, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [catalog.paths[0], str(broken)]

    cache = extract_activations(paths, cache_dir=tmp_path / "cache", weights=weights_file, image_size=(SIZE, SIZE),
                                cut_layer=CUT, dtype="float16", batch_size=2)

    assert cache.readable.tolist() == [True, False]
    assert not cache.activations[1].any() and cache.activations[0].any()
    assert cache.activations.dtype == np.float16


def test_views_are_seeded_random_per_epoch_and_original_without_seed():
    activations = np.arange(10 * 2, dtype=np.float16).reshape(10, 2, 1, 1, 1)
    labels = {level: np.arange(10) for level in LEVELS}
    first, again = CachedViews(activations, np.arange(10), labels, 4, seed=3), CachedViews(
        activations, np.arange(10), labels, 4, seed=3)
    epoch0 = np.concatenate([first[i][0].ravel() for i in range(len(first))])
    assert np.array_equal(epoch0, np.concatenate([again[i][0].ravel() for i in range(len(again))]))
    views = epoch0.astype(int) % 2
    assert 0 < views.sum() < 10                       # a mixture of original and flipped views
    x, y = first[0]
    assert np.array_equal(x.ravel().astype(int) // 2, y["subcategory"])  # targets follow their rows
    first.on_epoch_end()
    epoch1 = np.concatenate([first[i][0].ravel() for i in range(len(first))])
    assert not np.array_equal(np.sort(epoch0), np.sort(epoch1))
    plain = CachedViews(activations, np.arange(10), None, 4)
    assert np.concatenate([plain[i][0].ravel() for i in range(3)]).tolist() == list(range(0, 20, 2))


def test_assembled_image_model_scores_like_the_cached_path(catalog, catalog_files, weights_file, cache_dir, tmp_path):
    labels_csv, image_dir = catalog_files
    config = TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "image_size": [SIZE, SIZE]},
        "model": {"backbone": "resnet50", "weights": str(weights_file), "units": 16, "trainable_backbone": False},
        "loss": {"weighting": "none"},
        "training": {"epochs": 1, "batch_size": 4, "seed": 2},
        "output_dir": str(tmp_path), "name": "finetune",
    })
    label_space = LabelSpace.from_frame(catalog.frame, **asdict(catalog.columns))
    labels = label_space.encode(catalog.frame)
    cache = load_activation_cache(cache_dir)
    before = keras.applications.ResNet50(include_top=False, weights=str(weights_file), input_shape=(SIZE, SIZE, 3),
                                         pooling="avg")

    result = finetune_from_cache(config, cache, label_space, catalog.paths[:10], {k: v[:10] for k, v in labels.items()},
                                 catalog.paths[10:], {k: v[10:] for k, v in labels.items()}, verbose=0)

    backbone = result.model.get_layer("backbone")
    conv = "conv5_block3_3_conv"
    assert not np.allclose(backbone.get_layer(conv).get_weights()[0], before.get_layer(conv).get_weights()[0])
    for name in ("conv5_block1_1_bn", "conv4_block6_3_conv"):   # frozen statistics, untouched layers below the cut
        for got, want in zip(backbone.get_layer(name).get_weights(), before.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert len(result.epoch_seconds) == 1 and result.best_epoch == 1
    images = np.stack([load_image(p, (SIZE, SIZE)) for p in catalog.paths])
    on_images = result.model.predict(images, verbose=0)
    on_cache = predict_from_cache(cached_model(result.upper, result.head), cache, np.arange(len(catalog)))
    for level in LEVELS:
        np.testing.assert_allclose(on_images[level], on_cache[level], rtol=1e-4, atol=1e-5)


def test_finetune_refuses_a_cache_made_for_another_config(catalog, catalog_files, weights_file, cache_dir, tmp_path):
    labels_csv, image_dir = catalog_files
    config = TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "image_size": [32, 32]},
        "model": {"backbone": "resnet50", "weights": str(weights_file)},
        "output_dir": str(tmp_path), "name": "x"})
    label_space = LabelSpace.from_frame(catalog.frame, **asdict(catalog.columns))
    with pytest.raises(ActivationCacheMismatch, match="image_size: cache has \\[64, 64\\], config has \\[32, 32\\]"):
        finetune_from_cache(config, load_activation_cache(cache_dir), label_space, catalog.paths,
                            label_space.encode(catalog.frame))


def _recipe_config(catalog_files, weights_file, tmp_path, **training):
    labels_csv, image_dir = catalog_files
    return TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(image_dir), "image_size": [SIZE, SIZE],
                 "split": [0.6, 0.4, 0.0]},
        "model": {"backbone": "resnet50", "weights": str(weights_file), "units": 16, "trainable_backbone": False,
                  "trainable_from": CUT},
        "loss": {"weighting": "none"},
        "training": {"epochs": 1, "batch_size": 4, "seed": 2, "cache_features": True, "finetune_epochs": 2,
                     "finetune_learning_rate": 1e-3, "run_eagerly": True, **training},
        "output_dir": str(tmp_path), "name": "recipe",
    })


def test_train_with_trainable_from_fine_tunes_above_the_cut_into_one_run(catalog_files, weights_file, tmp_path):
    from fashion_hier import Predictor
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    config = _recipe_config(catalog_files, weights_file, tmp_path, finetune_crop=0.7).with_overrides(
        ["model.backbone=resnet50_multiscale"])   # the recipe's backbone: its trunk's cache, cropped maps
    run = RunDir(train(config))

    finished = run.finished_info()
    record = finished["finetune"]
    assert record["cut_layer"] == CUT and record["epochs"] == 2
    assert len(open(run.finetune_history).read().strip().splitlines()) == 1 + 2   # header + one line per epoch
    assert not run.features_record.exists() and not run.head.exists()   # frozen features no longer describe it
    task = keras.saving.load_model(run.model)
    conv = task.network.get_layer("backbone").get_layer("conv5_block3_3_conv").get_weights()[0]
    original = keras.applications.ResNet50(include_top=False, weights=str(weights_file),
                                           input_shape=(SIZE, SIZE, 3)).get_layer("conv5_block3_3_conv").get_weights()[0]
    assert np.array_equal(conv, original) == (not record["kept"])
    if record["kept"]:
        assert record["finetuned_val_subcategory_accuracy"] > record["frozen_val_subcategory_accuracy"]
    image = load_image(catalog_files[1] / sorted(p.name for p in catalog_files[1].iterdir())[0], (SIZE, SIZE))
    assert Predictor.load(run.path).predict_scores(image[None])["subcategory"].shape[0] == 1
    caches = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert any(name.startswith(f"activations_resnet50_{SIZE}x{SIZE}_{CUT}_") for name in caches)


def test_the_fine_tune_is_kept_only_when_it_beats_the_frozen_head_on_validation(catalog, weights_file, catalog_files,
                                                                                cache_dir, tmp_path):
    from fashion_hier.finetune.stage import finetune_stage
    from fashion_hier.models import build_head_model_from_config

    config = _recipe_config(catalog_files, weights_file, tmp_path, finetune_epochs=1)
    label_space = LabelSpace.from_frame(catalog.frame, **asdict(catalog.columns))
    labels = label_space.encode(catalog.frame)
    head = build_head_model_from_config(config, label_space, feature_dim=2048)
    split = lambda part: {k: v[part] for k, v in labels.items()}  # noqa: E731
    arguments = (load_activation_cache(cache_dir), label_space, head)
    paths = (catalog.paths[:10], split(slice(0, 10)), catalog.paths[10:], split(slice(10, None)))

    unbeatable = finetune_stage(config, *arguments, {"val_subcategory_accuracy": [1.01]}, *paths, verbose=0)
    assert not unbeatable.kept and unbeatable.frozen_score == 1.01
    without_frozen_score = finetune_stage(config, *arguments, {}, *paths, verbose=0)
    assert without_frozen_score.kept and without_frozen_score.frozen_score is None


def test_a_backbone_whose_features_read_below_the_cut_is_refused_in_one_line():
    from fashion_hier.finetune.partial import upper_backbone

    with pytest.raises(ValueError, match="'resnet50_multiscale_conv3'.s pooled features read layers below the cut"):
        upper_backbone("resnet50_multiscale_conv3", None, (SIZE, SIZE), CUT)


def test_crop_and_resize_crops_each_map_to_its_box_bilinearly():
    from fashion_hier.finetune.partial import crop_and_resize

    maps = np.random.default_rng(0).normal(size=(3, 5, 5, 2)).astype(np.float32)
    ramp = np.broadcast_to(np.arange(5, dtype=np.float32)[None, :, None, None], (1, 5, 5, 1))
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], np.float32)

    cropped = crop_and_resize(maps, boxes)

    np.testing.assert_allclose(cropped[0], maps[0], atol=1e-6)             # the whole map is the map
    np.testing.assert_allclose(cropped[1, ::2, ::2], maps[1, :3, :3], atol=1e-6)   # box corners on cells
    np.testing.assert_allclose(cropped[1, 1::2, 1::2], (maps[1, :2, :2] + maps[1, 1:3, :2] + maps[1, :2, 1:3]
                                                        + maps[1, 1:3, 1:3]) / 4, atol=1e-5)   # halfway: bilinear
    rows = crop_and_resize(ramp, boxes[2:])[0, :, 0, 0]                     # rows 1..3 of a 0..4 ramp
    np.testing.assert_allclose(rows, [1, 1.5, 2, 2.5, 3], atol=1e-6)


def test_cropped_views_are_seeded_crops_and_validation_is_never_cropped():
    activations = np.random.default_rng(1).normal(size=(6, 2, 5, 5, 2)).astype(np.float16)
    labels = {level: np.arange(6) for level in LEVELS}
    cropped = CachedViews(activations, np.arange(6), labels, 6, seed=2, crop=0.6)
    again = CachedViews(activations, np.arange(6), labels, 6, seed=2, crop=0.6)
    plain = CachedViews(activations, np.arange(6), labels, 6, seed=2)

    assert np.array_equal(cropped[0][0], again[0][0])
    assert cropped[0][0].shape == plain[0][0].shape == (6, 5, 5, 2)
    assert not np.allclose(cropped[0][0], plain[0][0])   # same views, now cropped
    with pytest.raises(ValueError, match="crop needs a seed"):
        CachedViews(activations, np.arange(6), labels, 6, crop=0.6)
    with pytest.raises(ValueError, match=r"crop=1.5: expected the smallest side fraction"):
        CachedViews(activations, np.arange(6), labels, 6, seed=2, crop=1.5)


def test_a_multiscale_backbone_shares_its_trunks_activation_cache(catalog, weights_file, cache_dir):
    from fashion_hier.finetune.partial import upper_backbone

    shared = extract_activations(catalog.paths, cache_dir=cache_dir, backbone="resnet50_multiscale",
                                 weights=weights_file, image_size=(SIZE, SIZE), cut_layer=CUT, dtype="float32")
    assert shared.cache_dir == cache_dir and shared.manifest["backbone"] == "resnet50"

    upper = upper_backbone("resnet50_multiscale", weights_file, (SIZE, SIZE), CUT)
    pooled = np.asarray(upper.predict_on_batch(np.asarray(shared.activations[:3, 0], np.float32)))
    network = keras.applications.ResNet50(include_top=False, weights=str(weights_file), input_shape=(SIZE, SIZE, 3))
    images = np.stack([load_image(p, (SIZE, SIZE)) for p in catalog.paths[:3]])
    outputs = keras.Model(network.input, [network.output, network.get_layer(CUT).output]).predict_on_batch(
        keras.applications.resnet50.preprocess_input(images))
    expected = np.concatenate([np.asarray(o).mean(axis=(1, 2)) for o in outputs], axis=1)
    np.testing.assert_allclose(pooled, expected, rtol=1e-3, atol=1e-3)


def test_features_extract_only_also_caches_the_fine_tunes_activations(catalog, catalog_files, weights_file, tmp_path,
                                                                      capsys):
    from fashion_hier.commands.features import main

    config_yaml = tmp_path / "recipe.yaml"
    _recipe_config(catalog_files, weights_file, tmp_path).to_yaml(config_yaml)

    assert main(["--config", str(config_yaml), "--extract-only"]) == 0

    printed = capsys.readouterr().out
    assert f"activations at {CUT} cached in" in printed
    activations = [p for p in (tmp_path / "features").iterdir() if p.name.startswith("activations_")]
    assert len(activations) == 1
    assert load_activation_cache(activations[0]).manifest["rows_done"] == len(catalog)
    assert not (tmp_path / "recipe").exists()        # extraction only: no run directory
