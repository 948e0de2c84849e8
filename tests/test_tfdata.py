"""make_dataset: the FashionSequence contract in tf.data, batch for batch."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from fashion_hier.data import FashionSequence, load_image, make_dataset, make_synthetic_catalog  # noqa: E402
from fashion_hier.data.augment import training_preset  # noqa: E402
from fashion_hier.labels import LabelSpace  # noqa: E402

SIZE = (24, 20)
COUNT = 40


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Paths and encoded labels of a small synthetic catalogue, plus per-sample weights equal to the row index."""
    labels_csv = make_synthetic_catalog(tmp_path_factory.mktemp("tfdata"), n=COUNT, image_size=32, seed=5)
    frame = pd.read_csv(labels_csv, dtype=str)
    paths = [str(labels_csv.parent / "images" / f"{product_id}.jpg") for product_id in frame["id"]]
    labels = LabelSpace.from_frame(frame).encode(frame)
    weights = {"category": np.arange(COUNT, dtype=np.float32), "subcategory": np.ones(COUNT, np.float32)}
    return paths, labels, weights


def _numpy(batch):
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), batch)


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_batches_equal_the_sequence_batches_without_augmentation(catalog, resize):
    paths, labels, weights = catalog
    options = dict(sample_weights=weights, batch_size=16, image_size=SIZE, resize=resize)
    sequence = FashionSequence(paths, labels, **options)
    batches = [_numpy(batch) for batch in make_dataset(paths, labels, **options)]
    assert len(batches) == len(sequence) == 3 and len(batches[-1][0]) == 8
    for index, (images, batch_labels, batch_weights) in enumerate(batches):
        expected_images, expected_labels, expected_weights = sequence[index]
        np.testing.assert_array_equal(images, expected_images)
        assert images.dtype == np.float32
        for level in expected_labels:
            np.testing.assert_array_equal(batch_labels[level], expected_labels[level])
            assert batch_labels[level].dtype == expected_labels[level].dtype
        for level in expected_weights:
            np.testing.assert_array_equal(batch_weights[level], expected_weights[level])


def test_without_labels_the_dataset_yields_the_sequence_images(catalog):
    paths, _, _ = catalog
    dataset = make_dataset(paths, batch_size=32, image_size=SIZE)
    assert dataset.element_spec == tf.TensorSpec((None, *SIZE, 3), tf.float32)
    images = np.concatenate([batch.numpy() for batch in dataset])
    sequence = FashionSequence(paths, None, batch_size=32, image_size=SIZE)
    np.testing.assert_array_equal(images, np.concatenate([sequence[0], sequence[1]]))


def _epochs(dataset, count=2):
    """Per epoch: the sample order (read from weights equal to the row index) and the batches."""
    epochs = []
    for _ in range(count):
        batches = [_numpy(batch) for batch in dataset]
        epochs.append((np.concatenate([weights["category"] for _, _, weights in batches]).astype(int), batches))
    return epochs


def test_shuffle_gives_a_seeded_new_permutation_each_epoch_with_labels_and_images_aligned(catalog):
    paths, labels, weights = catalog
    options = dict(sample_weights=weights, batch_size=16, image_size=SIZE, shuffle=True, seed=3)
    first = _epochs(make_dataset(paths, labels, **options))
    again = _epochs(make_dataset(paths, labels, **options))
    other = _epochs(make_dataset(paths, labels, **{**options, "seed": 4}), count=1)
    orders = [order for order, _ in first]
    assert all(sorted(order) == list(range(COUNT)) for order in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], other[0][0])
    for (order, _), (repeat, _) in zip(first, again):
        np.testing.assert_array_equal(order, repeat)
    images, batch_labels, batch_weights = first[1][1][0]
    rows = batch_weights["category"].astype(int)
    np.testing.assert_array_equal(batch_labels["subcategory"], labels["subcategory"][rows])
    np.testing.assert_array_equal(batch_labels["attributes"], labels["attributes"][rows])
    np.testing.assert_array_equal(images, np.stack([load_image(paths[row], SIZE) for row in rows]))


def test_augmentation_keeps_shape_and_range_and_is_reproducible_from_the_seed(catalog):
    paths, labels, _ = catalog
    options = dict(batch_size=COUNT, image_size=SIZE, augment=training_preset(SIZE), seed=9)
    plain = _numpy(next(iter(make_dataset(paths, labels, batch_size=COUNT, image_size=SIZE))))[0]
    dataset = make_dataset(paths, labels, **options)
    epoch_one, epoch_two = (_numpy(next(iter(dataset)))[0] for _ in range(2))
    rebuilt = _numpy(next(iter(make_dataset(paths, labels, **options))))[0]
    assert epoch_one.shape == plain.shape and epoch_one.dtype == np.float32
    # still 0..255 pixels, not rescaled to 0..1 (brightness/contrast may legitimately darken an image to ~85)
    assert epoch_one.min() >= 0 and epoch_one.max() <= 255 and np.all(epoch_one.max(axis=(1, 2, 3)) > 2)
    assert (np.abs(epoch_one - plain).mean(axis=(1, 2, 3)) > 1).sum() >= COUNT // 2
    np.testing.assert_array_equal(epoch_one, rebuilt)
    assert not np.array_equal(epoch_one, epoch_two)


def test_keras_fit_consumes_the_dataset(catalog):
    import keras

    paths, labels, _ = catalog
    space_sizes = {level: int(values.max()) + 1 for level, values in labels.items() if values.ndim == 1}
    image = keras.Input((*SIZE, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(image))
    outputs = {level: keras.layers.Dense(size, activation="softmax", name=level)(features)
               for level, size in space_sizes.items()}
    outputs["attributes"] = keras.layers.Dense(labels["attributes"].shape[1], activation="sigmoid",
                                               name="attributes")(features)
    model = keras.Model(image, outputs)
    model.compile("sgd", loss={"category": "sparse_categorical_crossentropy",
                               "subcategory": "sparse_categorical_crossentropy", "attributes": "binary_crossentropy"})
    history = model.fit(make_dataset(paths, labels, batch_size=16, image_size=SIZE, shuffle=True), epochs=1,
                        shuffle=False, verbose=0)  # the dataset shuffles itself
    assert np.isfinite(history.history["loss"][0])


def test_an_unreadable_file_is_dropped_from_its_batch_with_its_labels(catalog, tmp_path):
    paths, labels, weights = catalog
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    four = [*paths[:3], str(broken)]
    dataset = make_dataset(four, {k: v[:4] for k, v in labels.items()},
                           sample_weights={k: v[:4] for k, v in weights.items()}, batch_size=2, image_size=SIZE)
    batches = [_numpy(batch) for batch in dataset]
    assert [len(images) for images, _, _ in batches] == [2, 1]
    _, last_labels, last_weights = batches[1]
    np.testing.assert_array_equal(last_labels["subcategory"], labels["subcategory"][2:3])
    np.testing.assert_array_equal(last_weights["category"], [2.0])  # weight = row index: row 2 kept, row 3 dropped
    assert [path for path, _ in dataset.unreadable] == [str(broken)]


@pytest.mark.parametrize(("change", "message"), [
    ({"batch_size": 0}, "batch_size"), ({"resize": "crop"}, "resize"), ({"image_size": (24,)}, "image_size"),
])
def test_bad_arguments_are_refused_like_the_sequence_does(catalog, change, message):
    paths, labels, _ = catalog
    arguments = {"batch_size": 4, "image_size": SIZE, **change}
    with pytest.raises(ValueError, match=message):
        make_dataset(paths, labels, **arguments)
    with pytest.raises(ValueError, match="has 39 rows but paths has 40"):
        make_dataset(paths, {level: values[:-1] for level, values in labels.items()}, batch_size=4)
