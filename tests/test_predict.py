"""Predictor: names from known model outputs, consistent decoding vs brute force, saved runs, shards, errors."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.predict import (  # noqa: E402
    ERROR_COLUMN,
    PREDICTION_COLUMNS,
    Predictor,
    consistent_decode,
    list_images,
    shard,
)
from fashion_hier.commands.predict import main  # noqa: E402

SIZE = 32


# ---- a model whose outputs are known in closed form --------------------------------------------

LABELS = LabelSpace(
    categories=["Bags", "Shoes"],
    subcategories=["Backpacks", "Heels", "Sneakers"],
    attributes=["Casual", "Summer", "Winter"],
    parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"},
)


CATEGORY_KERNEL = np.array([[4.0, -4.0], [-4.0, 4.0], [0.0, 0.0]])    # red -> Bags, green -> Shoes
SUBCATEGORY_KERNEL = np.array([[0.0, 0, 0], [3.0, 0, -3.0], [0, 2.0, 0]])  # green -> Backpacks, blue -> Heels


def _channel_mean_model(size: int = 4) -> keras.Model:
    """category/subcategory/attributes = softmax/softmax/sigmoid of W @ (channel means / 255)."""
    image = keras.Input((size, size, 3), name="image")
    means = keras.layers.Rescaling(1 / 255)(keras.layers.GlobalAveragePooling2D()(image))
    outputs = {
        "category": keras.layers.Dense(2, activation="softmax", name="category")(means),
        "subcategory": keras.layers.Dense(3, activation="softmax", name="subcategory")(means),
        "attributes": keras.layers.Dense(3, activation="sigmoid", name="attributes")(means),
    }
    model = keras.Model(image, outputs)
    model.get_layer("category").set_weights([CATEGORY_KERNEL, np.zeros(2)])
    model.get_layer("subcategory").set_weights([SUBCATEGORY_KERNEL, np.zeros(3)])
    model.get_layer("attributes").set_weights([np.eye(3) * 10.0, np.full(3, -5.0)])
    return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_predict_names_match_the_closed_form_outputs():
    model = _channel_mean_model()
    means = np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.2], [0.2, 0.5, 0.55]])  # channel means in 0..1
    images = np.broadcast_to(means[:, None, None, :] * 255, (3, 4, 4, 3)).astype(np.float32)
    predictor = Predictor(model, LABELS, thresholds=np.array([0.75, 0.75, 0.5]))

    table = predictor.predict(images, batch_size=2)

    category = _softmax(means @ CATEGORY_KERNEL)
    subcategory = _softmax(means @ SUBCATEGORY_KERNEL)
    attributes = 1 / (1 + np.exp(-(means * 10 - 5)))
    assert list(table.columns) == list(PREDICTION_COLUMNS)
    assert table["category"].tolist() == ["Bags", "Shoes", "Shoes"]
    assert table["subcategory"].tolist() == ["Heels", "Backpacks", "Backpacks"]
    np.testing.assert_allclose(table["category_score"], category.max(axis=1), rtol=1e-5)
    np.testing.assert_allclose(table["subcategory_score"], subcategory.max(axis=1), rtol=1e-5)
    # attributes: Casual needs 0.75, Winter 0.5; best first
    assert table["attributes"].tolist() == ["Casual|Winter", "Summer", "Winter"]
    assert table["attribute_scores"][0] == f"{attributes[0, 0]:.4f}|{attributes[0, 2]:.4f}"
    np.testing.assert_allclose(predictor.predict_scores(images)["attributes"], attributes, rtol=1e-5)


def test_consistent_option_keeps_the_subcategory_under_the_category():
    # green: arg-max gives Shoes but Backpacks (a Bags child); the joint best pair is (Shoes, Heels)
    model = _channel_mean_model()
    images = np.full((1, 4, 4, 3), 255.0, dtype=np.float32) * np.array([0.0, 1.0, 0.2], dtype=np.float32)
    predictor = Predictor(model, LABELS)
    plain = predictor.predict(images)
    joint = predictor.predict(images, consistent=True)
    assert (plain["category"][0], plain["subcategory"][0]) == ("Shoes", "Backpacks")
    scores = predictor.predict_scores(images)
    expected_cat, expected_sub = _brute_force_pair(scores["category"][0], scores["subcategory"][0], LABELS.parent_index)
    assert (joint["category"][0], joint["subcategory"][0]) == (LABELS.categories[expected_cat],
                                                                LABELS.subcategories[expected_sub]) == ("Shoes", "Heels")
    assert LABELS.parents[joint["subcategory"][0]] == joint["category"][0]


def _brute_force_pair(category_probs, subcategory_probs, parent_index):
    pairs = [(c, s) for c, s in itertools.product(range(len(category_probs)), range(len(subcategory_probs)))
             if parent_index[s] == c]
    return max(pairs, key=lambda pair: category_probs[pair[0]] * subcategory_probs[pair[1]])


def test_consistent_decode_equals_brute_force_on_random_trees():
    rng = np.random.default_rng(0)
    for _ in range(20):
        num_categories, num_subcategories = rng.integers(1, 5), rng.integers(1, 9)
        parent_index = rng.integers(0, num_categories, size=num_subcategories)
        category = rng.dirichlet(np.ones(num_categories), size=30)
        subcategory = rng.dirichlet(np.ones(num_subcategories), size=30)
        got_cat, got_sub = consistent_decode(category, subcategory, parent_index)
        expected = [_brute_force_pair(c, s, parent_index) for c, s in zip(category, subcategory)]
        assert list(zip(got_cat.tolist(), got_sub.tolist())) == expected


def test_consistent_decode_rejects_a_parent_index_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"parent_index \(S,\)"):
        consistent_decode(np.ones((2, 2)), np.ones((2, 3)), np.array([0, 1]))


def test_wrong_image_shape_is_a_clear_error():
    predictor = Predictor(_channel_mean_model(), LABELS)
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5, 3\); this model takes \(N, 4, 4, 3\)"):
        predictor.predict(np.zeros((2, 5, 5, 3), np.float32))


def test_label_space_that_does_not_fit_the_model_is_refused():
    wider = LabelSpace(["Bags", "Shoes", "Watches"], LABELS.subcategories, LABELS.attributes,
                       {**LABELS.parents})
    with pytest.raises(ValueError, match="do not match the label space"):
        Predictor(_channel_mean_model(), wider)


def test_missing_run_directory_says_what_a_run_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist; pass a run directory .*model\.keras"):
        Predictor.load(tmp_path / "no_such_run")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "labels.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"has no model\.keras; a run .* holds model\.keras"):
        Predictor.load(tmp_path / "half")


def test_shards_partition_the_sorted_list():
    paths = [f"img_{i:02d}.jpg" for i in range(11)]
    for count in (1, 2, 3, 4, 11, 13):
        parts = [shard(paths, index, count) for index in range(count)]
        assert sorted(itertools.chain.from_iterable(parts)) == paths
        assert sum(map(len, parts)) == len(paths)
    assert shard(paths, 1, 4) == ["img_01.jpg", "img_05.jpg", "img_09.jpg"]
    with pytest.raises(ValueError, match="0 <= i < n"):
        shard(paths, 4, 4)


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="holds no images"):
        list_images(tmp_path)


# ---- a real saved run --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    root = tmp_path_factory.mktemp("predict_run")
    labels_csv = make_synthetic_catalog(root / "data", n=60, image_size=SIZE, seed=1)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={root / 'data' / 'images'}",
        f"data.image_size=[{SIZE}, {SIZE}]", "data.augment=false", "model.backbone=mobilenetv2",
        "model.weights=null", "model.units=8", "training.epochs=1", "training.batch_size=16",
        "training.jit_compile=false", "training.run_eagerly=true", f"output_dir={root}", "name=tiny",
    ])
    return train(config, verbose=0)


def test_loaded_run_predicts_what_the_trained_model_predicts(run_dir):
    predictor = Predictor.load(run_dir)
    paths = pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].tolist()
    from fashion_hier.data import FashionSequence

    images = np.concatenate([batch for batch in FashionSequence(paths, None, batch_size=8, image_size=(SIZE, SIZE))])
    reloaded = keras.saving.load_model(run_dir / "model.keras")
    direct = reloaded.predict(images, verbose=0)
    streamed = predictor.predict_scores(paths, batch_size=3)
    for level in ("category", "subcategory", "attributes"):
        # oneDNN (AVX-512 CPUs) reorders float32 sums by batch size (3 here, 32 in predict): a 1.7e-5
        # relative difference was seen there, so 1e-4 relative; exact agreement is not a property of float32
        np.testing.assert_allclose(streamed[level], np.asarray(direct[level]), rtol=1e-4, atol=1e-6)
    assert predictor.image_size == (SIZE, SIZE)
    np.testing.assert_array_equal(predictor.thresholds, np.full(predictor.label_space.num_attributes, 0.75))


def test_cli_writes_one_consistent_row_per_image(run_dir, tmp_path):
    # sharding over the CLI is covered by tests/test_predict_shards.py
    images = run_dir / "splits" / "test.csv"
    out = tmp_path / "predictions.csv"
    assert main(["--run", str(run_dir), "--images", str(images), "--out", str(out),
                 "--batch-size", "4", "--consistent", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == [*PREDICTION_COLUMNS, ERROR_COLUMN]
    assert table["image_path"].tolist() == list_images(images)
    assert table[ERROR_COLUMN].isna().all()
    labels = LabelSpace.load(run_dir / "labels.json")
    assert all(labels.parents[s] == c for c, s in zip(table["category"], table["subcategory"]))


@pytest.mark.slow
def test_cli_writes_a_row_with_the_reason_for_each_unreadable_image(run_dir, tmp_path):
    good = list_images(run_dir / "splits" / "test.csv")[:5]
    folder = tmp_path / "images"
    folder.mkdir()
    for path in good:
        shutil.copy(path, folder / Path(path).name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    out = tmp_path / "predictions.csv"
    assert main(["--run", str(run_dir), "--images", str(folder), "--out", str(out), "--batch-size", "3",
                 "--no-progress"]) == 0
    table = pd.read_csv(out).set_index("image_path")
    assert len(table) == 7  # every image has its row: nothing is lost
    broken = [str(folder / "empty.jpg"), str(folder / "text.jpg")]
    assert table.loc[broken, ERROR_COLUMN].notna().all()
    assert table.loc[broken, "category"].isna().all()
    scored = table.drop(index=broken)
    assert scored[ERROR_COLUMN].isna().all() and scored["category"].notna().all()
    expected = Predictor.load(run_dir).predict(sorted(str(folder / Path(p).name) for p in good))
    np.testing.assert_allclose(scored.loc[expected["image_path"], "subcategory_score"],
                               expected["subcategory_score"], rtol=1e-4, atol=1e-6)


def test_cli_reports_a_missing_run(tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"")
    from fashion_hier.cli import main as cli_main

    assert cli_main(["predict", "--run", str(tmp_path / "nope"), "--images", str(tmp_path),
                     "--out", str(tmp_path / "p.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
