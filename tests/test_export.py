"""Export: the SavedModel answers encoded images with Predictor's names and scores; TFLite stays close."""
from __future__ import annotations

import re
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")

from fashion_hier.commands.export import main  # noqa: E402
from fashion_hier.export import export_savedmodel, export_tflite, tflite_scores  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from tiny_run import train_tiny_run  # noqa: E402

pytestmark = pytest.mark.slow  # SavedModel/TFLite conversions of a trained run: CI runs them with -m slow

LEVELS = ("category", "subcategory", "attributes")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("export_run"))


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export_savedmodel(run_dir, tmp_path_factory.mktemp("export") / "savedmodel")


def _test_images(run_dir) -> list[str]:
    return sorted(pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].astype(str))[:8]


def _serve(exported, paths):
    serving = tf.saved_model.load(str(exported)).signatures["serving_default"]
    data = tf.constant([open(path, "rb").read() for path in paths])
    return {name: value.numpy() for name, value in serving(image_bytes=data).items()}


def test_savedmodel_answers_jpeg_bytes_with_predictor_names_and_scores(run_dir, exported):
    paths = _test_images(run_dir)  # JPEGs at the model's size: no resize, so the scores must match closely
    predictor = Predictor.load(run_dir)
    expected_scores = predictor.predict_scores(paths)
    expected = predictor.predict(paths, consistent=True)

    served = _serve(exported, paths)

    np.testing.assert_allclose(served["category_scores"], expected_scores["category"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["subcategory_scores"], expected_scores["subcategory"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["attribute_scores"], expected_scores["attributes"], rtol=1e-5, atol=1e-5)
    assert [v.decode() for v in served["category"]] == expected["category"].tolist()
    assert [v.decode() for v in served["subcategory"]] == expected["subcategory"].tolist()
    np.testing.assert_allclose(served["subcategory_score"], expected["subcategory_score"], rtol=1e-5)
    assert [v.decode() for v in served["attributes"]] == expected["attributes"].fillna("").tolist()
    assert [v.decode() for v in served["attribute_names"][0]] == predictor.label_space.attributes


def test_savedmodel_resizes_and_composites_like_the_library(run_dir, exported, tmp_path):
    source = cv2.imread(_test_images(run_dir)[0])
    big = cv2.resize(source, (96, 64), interpolation=cv2.INTER_CUBIC)  # shrink 3x/2x: area; pad policy aside
    small = cv2.resize(source, (20, 24), interpolation=cv2.INTER_CUBIC)  # grows: bilinear
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    rgba = np.dstack([small, np.full(small.shape[:2], 128, np.uint8)])  # half transparent: composited on white
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    paths = [str(tmp_path / name) for name in ("big.jpg", "small.png", "alpha.png")]

    served = _serve(exported, paths)
    expected = Predictor.load(run_dir).predict_scores(paths)

    # resampling differs by at most a grey level here; scores of this tiny model move by far less than 1e-3
    for level, key in zip(LEVELS, ("category_scores", "subcategory_scores", "attribute_scores")):
        np.testing.assert_allclose(served[key], expected[level], atol=1e-3)


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_savedmodel_scores_png_bytes_as_predict_catalog_scores_the_files(run_dir, tmp_path, resize):
    from fashion_hier.task import HierarchicalClassifier

    trained = Predictor.load(run_dir).model
    task = HierarchicalClassifier(trained.network, trained.label_space, thresholds=trained.thresholds,
                                  image_size=trained.image_size, resize=resize)
    source = cv2.imread(_test_images(run_dir)[0])
    paths = []
    for height, width in ((37, 23), (23, 37)):  # non-square, one side shrinks and the other grows (32 px model)
        paths.append(str(tmp_path / f"{height}x{width}.png"))  # PNG: lossless, so only resampling can differ
        cv2.imwrite(paths[-1], cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA))
    exported_task = export_savedmodel(Predictor(task), tmp_path / f"savedmodel_{resize}")

    served = _serve(exported_task, paths)
    catalog = task.predict_catalog(paths, consistent=True)
    expected = task.predict_scores(paths)  # the same streaming loop and preprocessor as predict_catalog
    in_graph = task.predict_scores(task.preprocessor.decode_and_resize([open(p, "rb").read() for p in paths]).numpy())

    for level, key in zip(LEVELS, ("category_scores", "subcategory_scores", "attribute_scores")):
        # the serving graph is the preprocessor's in-graph face plus the network: equal to float32 rounding
        np.testing.assert_allclose(served[key], in_graph[level], rtol=1e-5, atol=1e-5)
        # its pixels differ from the OpenCV face's by <= 1 grey level (tests/test_preprocessing.py): for this
        # tiny network that moves the scores by well under 1e-3
        np.testing.assert_allclose(served[key], expected[level], atol=1e-3)
    assert [v.decode() for v in served["subcategory"]] == catalog["subcategory"].tolist()
    np.testing.assert_allclose(served["subcategory_score"], catalog["subcategory_score"], atol=1e-3)


def test_saved_model_cli_runs_the_serving_signature(run_dir, exported, tmp_path):
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli (installed with tensorflow) is not on PATH")
    path = _test_images(run_dir)[0]
    np.save(tmp_path / "image_bytes.npy", np.array([open(path, "rb").read()]))  # bytes ending in FFD9: no padding lost
    result = subprocess.run([cli, "run", "--dir", str(exported), "--tag_set", "serve", "--signature_def",
                             "serving_default", "--inputs", f"image_bytes={tmp_path / 'image_bytes.npy'}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Predictor.load(run_dir).predict([path], consistent=True)
    category = re.search(r"Result for output key category:\s*\[b'([^']*)'\]", result.stdout)
    assert category and category.group(1) == expected["category"][0]


@pytest.mark.parametrize("quantization, tolerance", [("none", 1e-5), ("float16", 1e-2), ("dynamic", 5e-2)])
def test_tflite_scores_stay_close_to_the_keras_model(run_dir, tmp_path, quantization, tolerance):
    predictor = Predictor.load(run_dir)
    from fashion_hier.data import load_images

    images = load_images(_test_images(run_dir), predictor.image_size)
    path = export_tflite(predictor, tmp_path / f"{quantization}.tflite", quantization=quantization)

    scores = tflite_scores(path, images)
    expected = predictor.predict_scores(images)
    for level in LEVELS:
        np.testing.assert_allclose(scores[level], expected[level], atol=tolerance)
    assert path.stat().st_size > 0


def test_export_command_writes_a_servable_directory_and_names_a_bad_run(run_dir, tmp_path, capsys):
    assert main(["--run", str(run_dir), "--format", "savedmodel", "--out", str(tmp_path / "served")]) == 0
    assert "serving_default" in tf.saved_model.load(str(tmp_path / "served")).signatures
    from fashion_hier.cli import main as cli_main

    assert cli_main(["export", "--run", str(tmp_path / "nowhere"), "--format", "tflite", "--out", str(tmp_path / "t")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_float32_copy_rebuilds_a_mixed_precision_model_with_the_same_weights():
    from fashion_hier.export import float32_copy

    keras = pytest.importorskip("keras")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, dtype="mixed_bfloat16", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32", name="out")(hidden))
    copy = float32_copy(model)

    assert copy is not model and all(layer.dtype_policy.compute_dtype == "float32" for layer in copy.layers)
    for kept, original in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(kept, original)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)  # bf16 rounding
    assert float32_copy(copy) is copy
