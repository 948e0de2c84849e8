"""FashionSequence: batch structure, label alignment with the right files, seeded reshuffle, errors."""
import os
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fashion_hier.data import FashionSequence  # noqa: E402
from fashion_hier.data.augment import training_preset  # noqa: E402

COUNT = 10
SIZE = (6, 5)


def _value(index):
    """Grey level that image ``index`` is filled with: its identity, readable back from any batch."""
    return 10 * index + 5


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """COUNT flat PNGs whose grey level encodes their index, with labels derived from the index."""
    root = tmp_path_factory.mktemp("indexed")
    paths = []
    for index in range(COUNT):
        path = root / f"{index:02d}.png"
        cv2.imwrite(str(path), np.full((9, 7), _value(index), np.uint8))
        paths.append(str(path))
    index = np.arange(COUNT)
    labels = {"category": index % 3, "subcategory": index, "attributes": np.eye(4, dtype=np.float32)[index % 4]}
    return paths, labels


def _indices(images):
    """Sample indices read back from the pixels of a batch."""
    return ((images[:, 0, 0, 0] - 5) / 10).astype(int)


def test_batches_have_the_documented_shapes_and_dtypes_and_keep_the_last_partial_batch(indexed):
    paths, labels = indexed
    sequence = FashionSequence(paths, labels, batch_size=4, image_size=SIZE)
    assert len(sequence) == 3
    sizes = []
    for images, batch_labels in sequence:
        assert images.dtype == np.float32 and images.shape[1:] == (*SIZE, 3)
        assert batch_labels["category"].dtype == np.int32 and batch_labels["subcategory"].dtype == np.int32
        assert batch_labels["attributes"].dtype == np.float32 and batch_labels["attributes"].shape[1] == 4
        sizes.append(len(images))
    assert sizes == [4, 4, 2]


def test_labels_stay_aligned_with_their_files_when_shuffled(indexed):
    paths, labels = indexed
    sequence = FashionSequence(paths, labels, batch_size=3, image_size=SIZE, shuffle=True, seed=7)
    seen = []
    for _ in range(2):
        for images, batch_labels in sequence:
            index = _indices(images)
            np.testing.assert_array_equal(batch_labels["subcategory"], index)
            np.testing.assert_array_equal(batch_labels["category"], index % 3)
            np.testing.assert_array_equal(batch_labels["attributes"].argmax(axis=1), index % 4)
            seen.extend(index)
        sequence.on_epoch_end()
    assert sorted(seen) == sorted(list(range(COUNT)) * 2)


def _epoch_orders(sequence, epochs=3):
    orders = []
    for _ in range(epochs):
        orders.append(np.concatenate([_indices(images) for images, _ in sequence]))
        sequence.on_epoch_end()
    return orders


def test_each_epoch_is_a_new_order_drawn_from_the_seed(indexed):
    paths, labels = indexed
    first = _epoch_orders(FashionSequence(paths, labels, batch_size=4, image_size=SIZE, shuffle=True, seed=1))
    again = _epoch_orders(FashionSequence(paths, labels, batch_size=4, image_size=SIZE, shuffle=True, seed=1))
    other = _epoch_orders(FashionSequence(paths, labels, batch_size=4, image_size=SIZE, shuffle=True, seed=2))
    for order, repeat in zip(first, again):
        np.testing.assert_array_equal(order, repeat)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    assert all(sorted(order) == list(range(COUNT)) for order in first)
    resumed = FashionSequence(paths, labels, batch_size=4, image_size=SIZE, shuffle=True, seed=1)
    resumed.epoch = 2  # resuming a run at epoch 2 gives the order an uninterrupted run had there
    np.testing.assert_array_equal(_epoch_orders(resumed, epochs=1)[0], first[2])


def test_without_shuffle_every_epoch_is_in_path_order(indexed):
    paths, labels = indexed
    for order in _epoch_orders(FashionSequence(paths, labels, batch_size=4, image_size=SIZE)):
        np.testing.assert_array_equal(order, np.arange(COUNT))


def test_sample_weights_come_back_as_a_dict_aligned_with_the_samples(indexed):
    paths, labels = indexed
    weights = {"category": np.arange(COUNT) / 10, "attributes": np.arange(COUNT) + 1}
    sequence = FashionSequence(paths, labels, sample_weights=weights, batch_size=4, image_size=SIZE,
                               shuffle=True, seed=3)
    images, _, batch_weights = sequence[1]
    index = _indices(images)
    assert set(batch_weights) == {"category", "attributes"}
    np.testing.assert_allclose(batch_weights["category"], index / 10)
    np.testing.assert_array_equal(batch_weights["attributes"], index + 1)
    assert batch_weights["attributes"].dtype == np.float32


def test_without_labels_batches_are_images_only(indexed):
    paths, _ = indexed
    batch = FashionSequence(paths, None, batch_size=8, image_size=SIZE)[1]
    assert isinstance(batch, np.ndarray) and batch.shape == (2, *SIZE, 3)
    np.testing.assert_array_equal(_indices(batch), [8, 9])


def test_batches_do_not_depend_on_which_thread_builds_them_or_when(indexed):
    paths, labels = indexed
    sequence = FashionSequence(paths, labels, batch_size=3, image_size=SIZE, augment=training_preset(SIZE),
                               shuffle=True, seed=4, workers=2)
    in_order = [sequence[index][0] for index in range(len(sequence))]
    with ThreadPoolExecutor(max_workers=3) as pool:
        reversed_threads = list(pool.map(lambda index: sequence[index][0], reversed(range(len(sequence)))))
    for expected, got in zip(in_order, reversed(reversed_threads)):
        np.testing.assert_array_equal(expected, got)
    sequence.on_epoch_end()
    assert not all(np.array_equal(a, sequence[i][0]) for i, a in enumerate(in_order))


def test_keras_fit_consumes_the_sequence_with_worker_threads(indexed):
    import keras

    paths, labels = indexed
    image = keras.Input((*SIZE, 3), name="image")
    features = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image))
    outputs = {"category": keras.layers.Dense(3, activation="softmax", name="category")(features),
               "subcategory": keras.layers.Dense(COUNT, activation="softmax", name="subcategory")(features),
               "attributes": keras.layers.Dense(4, activation="sigmoid", name="attributes")(features)}
    model = keras.Model(image, outputs)
    model.compile("sgd", loss={"category": "sparse_categorical_crossentropy",
                               "subcategory": "sparse_categorical_crossentropy",
                               "attributes": "binary_crossentropy"})
    sequence = FashionSequence(paths, labels, batch_size=4, image_size=SIZE, shuffle=True, seed=0, workers=2)
    history = model.fit(sequence, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    assert sequence.epoch >= 2  # Keras called on_epoch_end after each epoch (and once before the first)


def test_an_unreadable_file_at_batch_time_is_skipped_and_recorded(indexed, tmp_path):
    paths, labels = indexed
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    five = {k: v[:5] for k, v in labels.items()}
    sequence = FashionSequence([*paths[:4], str(broken)], five, batch_size=4, image_size=SIZE)
    assert len(sequence[0][0]) == 4  # construction and other batches do not read the broken file
    assert len(sequence.unreadable) == 0
    # the labelled batch holding only the broken file takes the next readable sample of the epoch (sample 0)
    images, batch_labels = sequence[1]
    np.testing.assert_array_equal(images, sequence[0][0][:1])
    assert {k: v.tolist() for k, v in batch_labels.items()} == {k: v[:1].tolist() for k, v in five.items()}
    assert [(path, "not a decodable image" in reason) for path, reason in sequence.unreadable] == [(str(broken), True)]
    # without labels (prediction) the batch is empty and says which path it skipped
    batch = FashionSequence([*paths[:4], str(broken)], None, batch_size=4, image_size=SIZE).load_batch(1)
    assert batch.images.shape == (0, *SIZE, 3) and batch.paths == []
    assert [path for path, _ in batch.unreadable] == [str(broken)]


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"labels": "short"}, ValueError, r"labels\['subcategory'\] has 9 rows but paths has 10"),
    ({"labels": "unknown_level"}, ValueError, "colour"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"image_size": (0, 4)}, ValueError, "image_size"),
    ({"resize": "crop"}, ValueError, "resize"),
    ({"seed": -1}, ValueError, "seed"),
    ({"augment": "flip"}, TypeError, "augment"),
    ({"sample_weights": {"category": np.ones(3)}}, ValueError, r"sample_weights\['category'\]"),
    ({"sample_weights": {"category": np.ones(10)}, "labels": None}, ValueError, "without labels"),
    ({"paths": "one/image.jpg"}, TypeError, "paths"),
])
def test_bad_arguments_are_refused_up_front_with_the_argument_named(indexed, change, error, message):
    paths, labels = indexed
    labels = {"short": {**labels, "subcategory": labels["subcategory"][:9]},
              "unknown_level": {**labels, "colour": np.zeros(COUNT)}}.get(change.get("labels"), labels)
    arguments = {"paths": paths, "labels": labels, "batch_size": 4, "image_size": SIZE,
                 **{k: v for k, v in change.items() if k != "labels"}}
    if "labels" in change and change["labels"] is None:
        arguments["labels"] = None
    with pytest.raises(error, match=message):
        FashionSequence(arguments.pop("paths"), arguments.pop("labels"), **arguments)


def test_out_of_range_batch_index_raises_index_error(indexed):
    paths, labels = indexed
    with pytest.raises(IndexError, match="3 batches"):
        FashionSequence(paths, labels, batch_size=4, image_size=SIZE)[3]
