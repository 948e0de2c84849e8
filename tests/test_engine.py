"""The OpenVINO engine (fashion_hier.engine): f32 answers as Keras does, converted once per run, int8 calibrated
on the run's training photos, exported as an IR that plain OpenVINO runs, and every command that scores photos
takes it. Real OpenVINO and NNCF on a tiny trained run; the real-photo agreement of bf16/int8 is in
tests/test_engine_real_photos.py (slow)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fashion_hier import engine as engine_module
from fashion_hier.engine import EngineSpec, check_available, engine_spec
from fashion_hier.predict import Predictor, list_images
from fashion_hier.rundir import RunDir
from tiny_run import train_tiny_run

openvino = pytest.importorskip("openvino", reason="the openvino extra is not installed: "
                                                  "pip install 'fashion-hier[openvino]'")

LEVELS = ("category", "subcategory", "attributes")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    return train_tiny_run(root, groups=True)


@pytest.fixture(scope="module")
def paths(run):
    return list_images(run.parent / "data" / "images")[:24]


# ---- the spec ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, message", [
    (dict(engine="onnx"), "engine must be one of"),
    (dict(precision="fp16"), "precision must be one of"),
    (dict(precision="int8"), "needs engine 'openvino'"),
    (dict(engine="openvino", threads=0), "threads must be a positive integer"),
    (dict(engine="openvino", calibration_size=True), "calibration_size must be a positive integer"),
])
def test_a_bad_engine_spec_is_one_clear_error(arguments, message):
    with pytest.raises(ValueError, match=message):
        EngineSpec(**arguments)


def test_engine_spec_takes_a_name_and_precision_or_a_spec():
    assert engine_spec() == EngineSpec("keras", "f32")
    assert engine_spec("openvino", "int8") == EngineSpec("openvino", "int8")
    spec = EngineSpec("openvino", "bf16", threads=1)
    assert engine_spec(spec) is spec
    with pytest.raises(ValueError, match="put it in the EngineSpec"):
        engine_spec(spec, "int8")


def test_a_missing_openvino_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match=r"pip install 'fashion-hier\[openvino\]'"):
        check_available(EngineSpec("openvino"))
    check_available(EngineSpec())  # Keras needs nothing more


# ---- f32 equals Keras ----------------------------------------------------------------------------------

def test_f32_engine_gives_keras_scores_and_exactly_its_names(run, paths):
    keras_predictor, openvino_predictor = Predictor.load(run), Predictor.load(run, engine="openvino")
    assert openvino_predictor.engine == EngineSpec("openvino", "f32")
    expected, got = keras_predictor.predict_scores(paths), openvino_predictor.predict_scores(paths)
    for level in LEVELS:
        np.testing.assert_allclose(got[level], expected[level], atol=1e-4)
        assert np.abs(got[level] - expected[level]).max() < 1e-4
    pd.testing.assert_frame_equal(openvino_predictor.predict(paths).drop(columns=_score_columns(paths, run)),
                                  keras_predictor.predict(paths).drop(columns=_score_columns(paths, run)))


def _score_columns(paths, run):
    return [c for c in Predictor.load(run).predict(paths[:1]).columns if c.endswith("_score")]


def test_a_run_converts_once_and_keeps_the_model_in_its_openvino_folder(run, paths, monkeypatch):
    Predictor.load(run, engine="openvino")
    folders = sorted((run / RunDir.OPENVINO).iterdir())
    assert [f.name.endswith("-f32") for f in folders] == [True]
    assert {p.name for p in folders[0].iterdir()} == {"model.xml", "model.bin"}
    monkeypatch.setattr(engine_module, "convert", lambda model: pytest.fail("converted a second time"))
    again = Predictor.load(run, engine="openvino", precision="bf16")  # bf16 is a compile hint on the same IR
    assert again.forward.compiled.get_property("INFERENCE_PRECISION_HINT") in (openvino.Type.bf16, openvino.Type.f32)
    assert again.predict_scores(paths[:4])["subcategory"].shape == (4, again.label_space.num_subcategories)


def test_the_cache_key_follows_the_weights(run):
    task = Predictor.load(run).model
    before = engine_module.model_digest(task)
    assert engine_module.model_digest(task) == before
    weight = task.network.weights[-1]
    weight.assign(np.asarray(weight) + 1.0)
    try:
        assert engine_module.model_digest(task) != before
    finally:
        weight.assign(np.asarray(weight) - 1.0)


def test_a_network_built_twice_in_one_process_has_one_digest():
    import keras

    def build(seed: int):  # an unnamed input: Keras numbers the second build's (input_layer_1) and its tensors
        keras.utils.set_random_seed(seed)
        image = keras.Input((4, 4, 3))
        return keras.Model(image, keras.layers.Conv2D(2, 3, name="conv")(image), name="features")

    first, again, other = (engine_module.model_digest(build(seed)) for seed in (5, 5, 6))
    assert first == again != other


# ---- int8 --------------------------------------------------------------------------------------------

def test_int8_calibrates_on_the_runs_training_photos_and_is_cached(run, paths, monkeypatch):
    seen = []
    quantize = engine_module.quantize
    monkeypatch.setattr(engine_module, "quantize", lambda ir, images: seen.append(images.shape) or quantize(ir, images))
    predictor = Predictor.load(run, engine=EngineSpec("openvino", "int8", calibration_size=16))
    train_rows = len(pd.read_csv(RunDir(run).split("train")))
    assert seen == [(min(16, train_rows), 32, 32, 3)]
    assert predictor.calibration_paths == pd.read_csv(RunDir(run).split("train"))["image_path"].tolist()
    scores = predictor.predict_scores(paths)
    for level in LEVELS:  # probabilities, computed through int8 convolutions
        assert scores[level].shape[0] == len(paths) and np.isfinite(scores[level]).all()
        assert (scores[level] >= 0).all() and (scores[level] <= 1 + 1e-6).all()
    Predictor.load(run, engine=EngineSpec("openvino", "int8", calibration_size=16))
    assert len(seen) == 1  # the second load read the cached int8 IR


def test_int8_of_a_single_model_file_without_photos_says_what_to_pass(run):
    with pytest.raises(ValueError, match="needs calibration photos"):
        Predictor.load(run / RunDir.MODEL, engine="openvino", precision="int8")


# ---- export and the commands -----------------------------------------------------------------------------

@pytest.mark.slow
def test_exported_ir_runs_in_plain_openvino_and_carries_its_label_space(run, paths, tmp_path):
    from fashion_hier.cli import main
    from fashion_hier.data.images import load_images
    from fashion_hier.labels import LabelSpace

    assert main(["export", "--run", str(run), "--format", "openvino", "--out", str(tmp_path / "ir")]) == 0
    task = json.loads((tmp_path / "ir" / "task.json").read_text())
    keras_predictor = Predictor.load(run)
    assert LabelSpace.from_dict(task["label_space"]) == keras_predictor.label_space
    assert task["input"]["image_size"] == list(keras_predictor.image_size) and task["precision"] == "f32"
    compiled = openvino.Core().compile_model(str(tmp_path / "ir" / "model.xml"), "CPU",
                                             {"INFERENCE_PRECISION_HINT": "f32"})
    images = load_images(paths[:8], keras_predictor.image_size, resize=task["input"]["resize"])
    result = compiled(images)
    expected = keras_predictor.predict_scores(images)
    for level in task["outputs"]:
        np.testing.assert_allclose(result[compiled.output(level)], expected[level], atol=1e-4)


@pytest.mark.slow
def test_predict_command_on_openvino_writes_the_keras_rows(run, tmp_path, capsys):
    from fashion_hier.cli import main

    images = run.parent / "data" / "images"
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "k.csv")]) == 0
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(tmp_path / "o.csv"),
                 "--engine", "openvino"]) == 0
    keras_rows, openvino_rows = pd.read_csv(tmp_path / "k.csv"), pd.read_csv(tmp_path / "o.csv")
    names = [c for c in keras_rows.columns if not c.endswith("_score")]
    pd.testing.assert_frame_equal(openvino_rows[names], keras_rows[names])
    scores = [c for c in keras_rows.columns if c.endswith("_score") and keras_rows[c].dtype.kind == "f"]
    np.testing.assert_allclose(openvino_rows[scores], keras_rows[scores], atol=1e-4)


def test_a_precision_without_openvino_engine_is_one_line_exit_2(run, tmp_path, capsys):
    from fashion_hier.cli import main

    code = main(["predict", "--run", str(run), "--images", str(run.parent / "data" / "images"),
                 "--out", str(tmp_path / "p.csv"), "--precision", "int8"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and "needs engine 'openvino'" in error
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_evaluate_on_openvino_records_the_engine_and_matches_keras(run, tmp_path):
    from fashion_hier.evaluate import evaluate_run

    keras_result = evaluate_run(run, out_dir=tmp_path / "k", progress=False)
    openvino_result = evaluate_run(run, out_dir=tmp_path / "o", progress=False, engine="openvino")
    assert (keras_result["engine"], openvino_result["engine"]) == ("keras f32", "openvino f32")
    for level in ("category", "subcategory"):
        assert openvino_result[level]["accuracy"] == pytest.approx(keras_result[level]["accuracy"], abs=1e-12)


@pytest.mark.slow
def test_index_records_its_engine_and_queries_embed_the_same_way(run, paths, tmp_path, capsys):
    from fashion_hier.search import build_index, load_index

    index, _ = build_index(run, paths, tmp_path / "index", engine="openvino")
    assert index.record["engine"] == {"engine": "openvino", "precision": "f32"}
    loaded = load_index(tmp_path / "index")
    assert loaded.embedder.predictor.engine == EngineSpec("openvino", "f32")
    keras_vectors, _, _ = build_index(run, paths)[0].embedder.embed_paths(paths[:6])
    openvino_vectors, _, _ = loaded.embedder.embed_paths(paths[:6])
    np.testing.assert_allclose(openvino_vectors, keras_vectors, atol=1e-4)
    # --extend embeds as the index was embedded: another engine is one line, not silently ignored
    from fashion_hier.cli import main as cli_main

    extend = ["index", "--run", str(run), "--images", str(Path(paths[0]).parent), "--out", str(tmp_path / "index"),
              "--extend"]
    capsys.readouterr()  # what the builds above logged
    assert cli_main([*extend, "--engine", "openvino", "--precision", "bf16"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "was embedded by openvino f32, not openvino bf16" in error, error
    assert cli_main(extend) == 0 and "added" in capsys.readouterr().out  # flags left out: the recorded engine


def test_the_extraction_engine_follows_the_config_and_auto_falls_back_to_keras_without_openvino(monkeypatch):
    from fashion_hier.config import ConfigError, TrainConfig
    from fashion_hier.engine import extraction_engine

    auto = TrainConfig().with_overrides(["training.extraction_engine=auto", "training.extraction_precision=bf16"])
    assert extraction_engine(TrainConfig()) == EngineSpec("keras", "f32")
    assert extraction_engine(auto) == EngineSpec("openvino", "bf16")
    int8 = auto.with_overrides(["training.extraction_precision=int8", "training.extraction_calibration_size=300"])
    assert extraction_engine(int8) == EngineSpec("openvino", "int8", calibration_size=300)
    with pytest.raises(ConfigError, match="training.extraction_calibration_size"):
        auto.with_overrides(["training.extraction_calibration_size=0"])
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an uninstalled package looks like to import
    assert extraction_engine(auto) == EngineSpec("keras", "f32")
    with pytest.raises(ConfigError, match="training.extraction_precision: bf16 needs training.extraction_engine: "
                                          "openvino or auto"):
        TrainConfig().with_overrides(["training.extraction_precision=bf16"])


def test_int8_extraction_calibrates_on_the_training_split_only_and_names_those_photos(tmp_path):
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import make_synthetic_catalog, read_catalog
    from fashion_hier.engine import calibration_sample, extraction_calibration_paths, extraction_identity, paths_key

    labels_csv = make_synthetic_catalog(tmp_path / "catalog", n=40, image_size=16, seed=2)
    base = TrainConfig().with_overrides([f"data.labels_csv={labels_csv}", f"data.image_dir={tmp_path / 'catalog/images'}",
                                         "training.extraction_engine=openvino"])
    assert extraction_calibration_paths(base) is None  # f32: nothing to calibrate, the catalogue is not read
    int8 = base.with_overrides(["training.extraction_precision=int8"])
    chosen = extraction_calibration_paths(int8)
    # the split train() makes (data.split, split_by, seed): validation and test photos never set a range
    splits = read_catalog(labels_csv, tmp_path / "catalog/images").split((0.7, 0.15, 0.15), by="subcategory", seed=0)
    assert chosen == splits.train["image_path"].tolist()
    assert not set(chosen) & (set(splits.validation["image_path"]) | set(splits.test["image_path"]))
    spec = EngineSpec("openvino", "int8", calibration_size=8)
    sample = calibration_sample(chosen, 8)
    assert len(sample) == 8 and set(sample) <= set(chosen) and sample == calibration_sample(chosen, 8)  # seeded
    assert extraction_identity(spec, chosen) == f"openvino int8 calibrated on 8 photos {paths_key(sample)}"
    other_split = extraction_calibration_paths(int8.with_overrides(["data.seed=1"]))
    assert extraction_identity(spec, other_split) != extraction_identity(spec, chosen)
    assert extraction_identity(EngineSpec("openvino", "bf16"), chosen) == "openvino bf16"
    with pytest.raises(ValueError, match="int8 extraction needs calibration photos"):
        extraction_identity(spec, None)


def test_a_network_trained_in_mixed_bfloat16_converts_as_its_float32_copy():
    """OpenVINO has no rule for bfloat16 constants: the model of a run trained with mixed_precision auto on a bf16
    CPU converts as the same network with float32 policies (its weights are float32 under the mixed policy)."""
    pytest.importorskip("openvino")
    import keras

    from fashion_hier.engine import compile_engine, float32_copy
    from fashion_hier.models import build_model

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        network = build_model(3, 4, 5, backbone="small_cnn", weights=None, input_shape=(32, 32, 3), units=8)
    finally:
        keras.config.set_dtype_policy("float32")
    copy = float32_copy(network)
    assert copy is not network and all(layer.dtype_policy.name == "float32" for layer in copy.layers)
    assert float32_copy(copy) is copy  # already float32: nothing rebuilt
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = copy.predict_on_batch(images)
    answered = compile_engine(network, EngineSpec("openvino", "f32")).predict_on_batch(images)
    for level, scores in expected.items():
        np.testing.assert_allclose(answered[level], scores, rtol=0, atol=1e-4)
