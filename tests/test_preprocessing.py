"""ImagePreprocessor: its OpenCV face (files) and its in-graph face (the export) give the same pixels.

Measured bound between the faces (8-bit images): decoding is identical (0 grey levels: PNG is lossless,
JPEG is libjpeg's accurate integer IDCT in both); area shrinking is 0 on exact integer scales and otherwise
differs by 1 grey level on at most ~2 % of pixels (float accumulation order at rounding ties); bilinear
enlarging differs by 1 grey level on ~12 % of pixels (OpenCV's 11-bit fixed-point weights vs TensorFlow's
float weights). So the tests below require 0 where the geometry alone decides and <= 1 grey level elsewhere.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fashion_hier.data.images import PAD_VALUE, PYTHON_OPS, ShapeOps, resized_shape  # noqa: E402
from fashion_hier.preprocessing import ImagePreprocessor  # noqa: E402

SIZE = 16
GREY_LEVEL = 1.0  # the faces' measured bound wherever resampling rounds differently (module docstring)


def _photo(path, height: int, width: int, seed: int = 0):
    """A smooth gradient with noise, dark enough that white padding is told apart from content."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 200 / (width - 1), y * 200 / (height - 1), np.full_like(x, 60, dtype=float)], axis=-1)
    pixels = np.clip(rgb + rng.normal(0, 15, rgb.shape), 0, 220).astype(np.uint8)
    assert cv2.imwrite(str(path), pixels[:, :, ::-1])
    return str(path)


def _faces(preprocessor: ImagePreprocessor, path: str) -> tuple[np.ndarray, np.ndarray]:
    loaded = preprocessor.load([path])
    assert loaded.kept.tolist() == [0] and loaded.failed == []
    with open(path, "rb") as file:  # traced, as the export runs it
        in_graph = tf.function(preprocessor.decode_and_resize)(tf.constant(file.read())).numpy()
    return loaded.images[0], in_graph


@pytest.mark.parametrize("resize", ["stretch", "pad"])
@pytest.mark.parametrize("shape", [(37, 23), (23, 37)])
@pytest.mark.parametrize("size", [(SIZE, SIZE), (48, 40)])  # shrinking (area) and enlarging (bilinear)
def test_numpy_and_in_graph_faces_agree_on_png(tmp_path, shape, size, resize):
    path = _photo(tmp_path / "photo.png", *shape)
    loaded, in_graph = _faces(ImagePreprocessor(size, resize), path)

    assert loaded.shape == in_graph.shape == (*size, 3) and in_graph.dtype == np.float32
    assert np.abs(loaded - in_graph).max() <= GREY_LEVEL
    assert np.mean(loaded != in_graph) < 0.2  # a rounding difference, not a shifted or flipped image


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_numpy_and_in_graph_faces_agree_on_jpeg(tmp_path, resize):
    path = _photo(tmp_path / "photo.jpg", 37, 23)
    native, native_graph = _faces(ImagePreprocessor((37, 23), resize), path)
    np.testing.assert_array_equal(native, native_graph)  # no resampling: the two JPEG decoders agree exactly

    loaded, in_graph = _faces(ImagePreprocessor((SIZE, SIZE), resize), path)
    assert np.abs(loaded - in_graph).max() <= GREY_LEVEL


def test_large_jpeg_is_decoded_at_the_same_reduced_scale_in_both_faces(tmp_path):
    path = _photo(tmp_path / "big.jpg", 160, 128)  # >= 4x the 32x32 target on both sides: libjpeg's 1/4 scale
    loaded, in_graph = _faces(ImagePreprocessor((32, 32), "stretch"), path)
    np.testing.assert_array_equal(loaded, in_graph)  # 40x32 -> 32x32 area in both, after the same 1/4 decode


def test_exact_halving_is_equal_including_opencvs_round_half_up(tmp_path):
    path = _photo(tmp_path / "even.png", 64, 48)  # pad to 32x32: content 32x24, exactly half of each side
    loaded, in_graph = _faces(ImagePreprocessor((32, 32), "pad"), path)
    np.testing.assert_array_equal(loaded, in_graph)


@pytest.mark.parametrize("shape, box, offsets", [((37, 23), (16, 10), (0, 3)), ((23, 37), (10, 16), (3, 0))])
def test_pad_places_the_same_box_on_white_in_both_faces(tmp_path, shape, box, offsets):
    # hand-computed: scale = min(16/37, 16/23) = 0.4324; 23 * 0.4324 = 9.95 -> 10; (16 - 10) // 2 = 3
    path = _photo(tmp_path / "photo.png", *shape)
    for face in _faces(ImagePreprocessor((SIZE, SIZE), "pad"), path):
        white = np.ones((SIZE, SIZE), bool)
        white[offsets[0]:offsets[0] + box[0], offsets[1]:offsets[1] + box[1]] = False
        assert (face[white] == PAD_VALUE).all()
        assert (face[~white] < PAD_VALUE).all()  # the photo is darker than 220 everywhere


def test_resize_geometry_is_one_definition_on_numbers_and_tensors():
    sources = np.array([(h, w) for h in range(1, 61) for w in range(1, 61)], np.float64)
    tf_ops = ShapeOps(tf.minimum, tf.maximum, tf.round, tf.logical_and)
    for size in [(16, 16), (48, 40), (7, 30)]:
        graph = tf.function(lambda heights, widths: resized_shape((heights, widths), size, "pad", tf_ops))(
            tf.constant(sources[:, 0]), tf.constant(sources[:, 1]))
        python = [resized_shape((int(h), int(w)), size, "pad", PYTHON_OPS) for h, w in sources]
        np.testing.assert_array_equal(np.stack([side.numpy() for side in graph], axis=1), python)


def test_resize_images_fits_decoded_pixels_like_the_file_face(tmp_path):
    path = _photo(tmp_path / "photo.png", 37, 23)
    pixels = cv2.imread(path)[:, :, ::-1].copy()
    preprocessor = ImagePreprocessor((SIZE, SIZE), "pad")
    single = preprocessor.resize_images(pixels).numpy()
    batch = preprocessor.resize_images(np.stack([pixels, pixels])).numpy()

    np.testing.assert_array_equal(single, preprocessor.load([path]).images[0])
    np.testing.assert_array_equal(batch, np.stack([single, single]))


def test_in_graph_face_composites_transparency_on_white_like_opencv(tmp_path):
    rgba = np.dstack([np.full((5, 7, 3), 40, np.uint8), np.tile(np.array([0, 64, 128, 192, 255, 255, 0], np.uint8),
                                                                  (5, 1))])
    path = str(tmp_path / "alpha.png")
    cv2.imwrite(path, rgba)
    loaded, in_graph = _faces(ImagePreprocessor((5, 7), "stretch"), path)
    opacity = rgba[:, :, 3:] / 255.0
    expected = 40 * opacity + 255 * (1 - opacity)  # independent of either face
    np.testing.assert_allclose(loaded, np.broadcast_to(expected, loaded.shape), atol=1e-4)
    np.testing.assert_allclose(in_graph, loaded, atol=1e-4)


def test_batch_of_bytes_gives_one_image_per_row(tmp_path):
    paths = [_photo(tmp_path / "a.png", 37, 23, seed=1), _photo(tmp_path / "b.jpg", 23, 37, seed=2)]
    preprocessor = ImagePreprocessor((SIZE, SIZE), "pad")
    batch = preprocessor.decode_and_resize(tf.constant([open(p, "rb").read() for p in paths])).numpy()
    assert batch.shape == (2, SIZE, SIZE, 3)
    for row, path in enumerate(paths):
        np.testing.assert_array_equal(batch[row], _faces(preprocessor, path)[1])


def test_load_skips_unreadable_files_and_passes_arrays_of_the_model_size(tmp_path):
    good = _photo(tmp_path / "good.png", 8, 8)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    preprocessor = ImagePreprocessor((8, 8))
    loaded = preprocessor.load([str(tmp_path / "bad.png"), good])
    assert loaded.kept.tolist() == [1] and [path for path, _ in loaded.failed] == [str(tmp_path / "bad.png")]

    array = np.zeros((2, 8, 8, 3), np.uint8)
    assert preprocessor.load(array).images.dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5, 3\); this model takes \(N, 8, 8, 3\)"):
        preprocessor.load(np.zeros((2, 5, 5, 3)))


def test_config_round_trips_through_keras_serialization():
    preprocessor = ImagePreprocessor((24, 40), "pad", max_pixels=1000)
    assert ImagePreprocessor.from_config(json.loads(json.dumps(preprocessor.get_config()))) == preprocessor
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(preprocessor)))
    assert serialized["registered_name"] == "fashion_hier>ImagePreprocessor"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert restored == preprocessor and restored.get_config() == {"image_size": [24, 40], "resize": "pad",
                                                                  "max_pixels": 1000}
    assert preprocessor != preprocessor.replace(resize="stretch")


@pytest.mark.parametrize("arguments, message", [({"image_size": (0, 4)}, "image_size"),
                                                ({"image_size": 8, "resize": "crop"}, "resize"),
                                                ({"image_size": 8, "max_pixels": 0}, "max_pixels")])
def test_bad_arguments_are_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        ImagePreprocessor(**arguments)


def test_task_saved_and_loaded_has_an_equal_preprocessor_that_prediction_uses(tmp_path):
    from fashion_hier.labels import LabelSpace
    from fashion_hier.models import build_model
    from fashion_hier.task import HierarchicalClassifier

    labels = LabelSpace(categories=["Bags", "Shoes"], subcategories=["Backpacks", "Heels"],
                        attributes=["Casual"], parents={"Backpacks": "Bags", "Heels": "Shoes"})
    network = build_model(2, 2, 1, backbone="small_cnn", weights=None, input_shape=(SIZE, SIZE, 3), units=4)
    rng = np.random.default_rng(0)  # kernels moved off their initialisation, so that scores follow the pixels
    network.set_weights([w + rng.normal(0, 0.05, w.shape) if w.ndim > 1 else w for w in network.get_weights()])
    task = HierarchicalClassifier(network, labels, resize="pad")
    task.save(tmp_path / "task.keras")
    loaded = keras.saving.load_model(tmp_path / "task.keras")

    assert loaded.preprocessor == task.preprocessor == ImagePreprocessor((SIZE, SIZE), "pad")
    path = _photo(tmp_path / "photo.png", 37, 23)
    np.testing.assert_allclose(loaded.predict_scores([path])["attributes"],
                               loaded.predict_scores(loaded.preprocessor.load([path]).images)["attributes"], atol=1e-6)
    from fashion_hier import streaming

    stretch = ImagePreprocessor((SIZE, SIZE), "stretch")  # another preprocessor passed in: its pixels are used
    (batch,) = streaming.iter_batches(loaded, [path], preprocessor=stretch)
    for level, scores in loaded.predict_scores(stretch.load([path]).images).items():
        np.testing.assert_allclose(batch.scores[level], scores, atol=1e-6)
    assert not np.allclose(batch.scores["category"], loaded.predict_scores([path])["category"], atol=1e-4)
