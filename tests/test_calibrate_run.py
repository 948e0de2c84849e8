"""Calibration and the confidence for a target accuracy, fitted on a run's validation split and used by
evaluate, predict and Spark alike (issue 22), checked against the metrics computed independently."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("keras")

from fashion_hier import metrics  # noqa: E402
from fashion_hier.calibrate import calibrate_run, choose_min_confidence  # noqa: E402
from fashion_hier.cli import main as cli_main  # noqa: E402
from fashion_hier.evaluation_data import prepare, read_split  # noqa: E402
from fashion_hier.labels import LEVELS  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from tests.tiny_run import train_tiny_run  # noqa: E402

pytestmark = pytest.mark.slow  # a Spark session (or several runs) per module: CI runs them with -m slow

ACTIVATION = {"category": "softmax", "subcategory": "softmax", "attributes": "sigmoid"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("calibrate"), n=90)


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run for one test to calibrate (the model file changes)."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(RunDir.LOCK, RunDir.LOCK_HOLDER))
    return RunDir(copy)


def _validation(run: RunDir, predictor: Predictor):
    data = prepare(read_split(run.path, "validation"), predictor.label_space, "validation")
    scores, kept, _ = predictor.score_paths(data.frame["image_path"].tolist())
    return {level: values[kept] for level, values in data.targets.items()}, scores


@pytest.mark.slow
def test_calibrate_run_stores_the_temperatures_that_fit_the_validation_scores(run):
    raw = Predictor.load(run.path)
    targets, scores = _validation(run, raw)
    expected = {level: metrics.fit_temperature(scores[level], targets[level], activation=ACTIVATION[level])
                for level in LEVELS}
    result = calibrate_run(run.path)
    assert result.temperatures == pytest.approx(expected, rel=1e-4)
    calibrated = Predictor.load(run.path)
    assert calibrated.model.temperatures == pytest.approx(expected, rel=1e-4)
    for level in LEVELS:  # maximum likelihood over T, with T = 1 among the candidates: log loss never rises
        assert result.after[level]["log_loss"] <= result.before[level]["log_loss"] + 1e-9
    record = json.loads(run.calibration.read_text())
    assert record["split"] == "validation" and record["temperatures"] == pytest.approx(expected, rel=1e-4)
    _, calibrated_scores = _validation(run, calibrated)
    for level in LEVELS:
        np.testing.assert_allclose(calibrated_scores[level], metrics.apply_temperature(
            scores[level], result.temperatures[level], activation=ACTIVATION[level]), atol=1e-5)


def test_the_chosen_confidence_is_the_one_that_reaches_the_target_on_validation(run):
    targets, scores = _validation(run, Predictor.load(run.path))
    target = 0.5
    promise = choose_min_confidence(run.path, target)
    for level in ("category", "subcategory"):
        expected, _ = metrics.confidence_for_accuracy(targets[level], scores[level], target)
        assert promise["min_confidence"][level] == pytest.approx(expected)
    assert Predictor.load(run.path).model.min_confidence == pytest.approx(promise["min_confidence"])
    accepted = ((scores["category"].max(axis=1) >= promise["min_confidence"]["category"])
                & (scores["subcategory"].max(axis=1) >= promise["min_confidence"]["subcategory"]))
    assert promise["coverage"] == pytest.approx(accepted.mean())


@pytest.mark.slow
def test_evaluate_calibrate_and_target_accuracy_then_predict_leaves_unsure_rows_to_a_person(run, tmp_path, capsys):
    assert cli_main(["evaluate", "--run", str(run.path), "--calibrate", "--target-accuracy", "0.5",
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ECE" in printed and "coverage at 98% accuracy" in printed
    result = json.loads(run.metrics_json.read_text())
    model = Predictor.load(run.path).model
    assert result["calibration"]["subcategory"]["temperature"] == pytest.approx(model.temperatures["subcategory"])
    saved = np.load(run.predictions)
    for level in ("category", "subcategory"):
        assert result["calibration"][level]["ece"] == pytest.approx(
            metrics.expected_calibration_error(saved[f"{level}_true"], saved[f"{level}_score"]), abs=1e-6)
    # hF of the answers as given: rows below the category's confidence left out, a subcategory below its own
    # confidence counted as "stopped at the category" (-1)
    category_ok = saved["category_score"].max(axis=1) >= model.min_confidence["category"]
    subcategory_ok = category_ok & (saved["subcategory_score"].max(axis=1) >= model.min_confidence["subcategory"])
    subcategory = np.where(subcategory_ok, saved["subcategory_score"].argmax(axis=1), -1)
    hierarchical = metrics.hierarchical_prf(
        saved["category_true"][category_ok], saved["subcategory_true"][category_ok],
        saved["category_score"].argmax(axis=1)[category_ok], subcategory[category_ok], saved["parents"])
    assert result["hierarchical"]["micro"]["hF"] == pytest.approx(hierarchical[2])
    assert result["selective"]["answered_in_full"]["coverage"] == pytest.approx(subcategory_ok.mean())

    out = tmp_path / "predictions.csv"
    images = read_split(run.path, "test")["image_path"].tolist()
    pd.DataFrame({"image_path": images}).to_csv(tmp_path / "images.csv", index=False)
    assert cli_main(["predict", "--run", str(run.path), "--images", str(tmp_path / "images.csv"), "--out", str(out),
                     "--min-confidence", "0.9", "--no-progress"]) == 0
    table = pd.read_csv(out)
    unsure = (table["subcategory_score"] < 0.9) | (table["category_score"] < model.min_confidence["category"])
    assert table["needs_review"].tolist() == unsure.tolist()
    assert table.loc[unsure, "subcategory"].isna().all() and table.loc[~unsure, "subcategory"].notna().all()
    assert "left (in part) to a person" in capsys.readouterr().out or not unsure.any()


@pytest.mark.slow
def test_training_calibrate_leaves_a_calibrated_model(tmp_path):
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    labels_csv = make_synthetic_catalog(tmp_path / "data", n=60, image_size=32, seed=1)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={tmp_path / 'data' / 'images'}", "data.image_size=[32, 32]",
        "data.augment=false", "model.backbone=small_cnn", "model.weights=null", "model.units=8", "training.epochs=1",
        "training.batch_size=16", "training.jit_compile=false", "training.mixed_precision=off",
        "training.calibrate=true", f"output_dir={tmp_path}", "name=calibrated"])
    run = RunDir(train(config, verbose=0))
    record = json.loads(run.calibration.read_text())
    assert run.is_finished and Predictor.load(run.path).model.temperatures == pytest.approx(record["temperatures"])
    assert any(value != 1.0 for value in record["temperatures"].values())
