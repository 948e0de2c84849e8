"""One model file, every path: a run's ``model.keras``, loaded in a fresh process, gives the same names, scores and
thresholded attributes through ``predict_catalog``, ``Predictor``, ``evaluate`` and the SavedModel export, and
``evaluate`` reports the thresholds ``predict`` applies (issue 23)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fashion_hier.evaluate import evaluate_run  # noqa: E402
from fashion_hier.export import export_savedmodel  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from fashion_hier.task import HierarchicalClassifier, save_task_model  # noqa: E402
from tiny_run import train_tiny_run  # noqa: E402

pytestmark = pytest.mark.slow  # a run, an export and a fresh process
REPO = Path(__file__).resolve().parents[1]


def test_model_keras_answers_alike_through_every_path_and_evaluate_reports_its_thresholds(tmp_path):
    run = RunDir(train_tiny_run(tmp_path))
    paths = pd.read_csv(run.split("test"), dtype=str)["image_path"].tolist()
    task = keras.saving.load_model(run.model)
    assert isinstance(task, HierarchicalClassifier)
    # thresholds only the model file holds (no thresholds.json): every path must take them from there
    thresholds = np.linspace(0.2, 0.6, task.label_space.num_attributes)
    save_task_model(task, task.label_space, run.model, thresholds=thresholds)
    assert not run.thresholds.exists()

    script = textwrap.dedent(f"""
        import json, sys
        import keras, fashion_hier
        model = keras.saving.load_model({str(run.model)!r})
        paths = json.loads(sys.stdin.read())
        table = model.predict_catalog(paths, consistent=True, batch_size=8)
        scores = model.predict_scores(paths, batch_size=8)
        table.to_csv({str(tmp_path / "fresh.csv")!r}, index=False)
        json.dump({{"thresholds": model.thresholds.tolist(),
                   "scores": {{level: values.tolist() for level, values in scores.items()}}}},
                  open({str(tmp_path / "fresh.json")!r}, "w"))
    """)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(paths), capture_output=True, text=True,
                          cwd=REPO, env={**environment, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    fresh_table = pd.read_csv(tmp_path / "fresh.csv", dtype=str, keep_default_na=False)
    np.testing.assert_allclose(fresh["thresholds"], thresholds, rtol=0, atol=1e-7)

    predictor = Predictor.load(run.path)
    np.testing.assert_allclose(predictor.thresholds, thresholds, rtol=0, atol=1e-7)
    table = predictor.predict(paths, batch_size=8, consistent=True)
    predictor_scores = predictor.predict_scores(paths, batch_size=8)
    for column in ("image_path", "category", "subcategory", "attributes"):
        assert fresh_table[column].tolist() == table[column].fillna("").astype(str).tolist(), column
    for level, values in predictor_scores.items():
        np.testing.assert_allclose(np.asarray(fresh["scores"][level], np.float32), values, rtol=0, atol=1e-5)

    report = evaluate_run(run.path, split="test", out_dir=tmp_path / "report", progress=False)
    assert report["thresholds"]["source"].startswith(RunDir.MODEL)  # not "default 0.5": the model's own
    np.testing.assert_allclose(list(report["thresholds"]["attributes"].values()), thresholds, rtol=0, atol=1e-7)

    served = tf.saved_model.load(str(export_savedmodel(run.path, tmp_path / "served"))).signatures["serving_default"]
    answers = {name: value.numpy() for name, value in
               served(image_bytes=tf.constant([Path(path).read_bytes() for path in paths])).items()}
    # the photos are at the model's size, so both faces of the preprocessor give the same pixels
    np.testing.assert_allclose(answers["subcategory_scores"], predictor_scores["subcategory"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(answers["attribute_scores"], predictor_scores["attributes"], rtol=0, atol=1e-4)
    assert [name.decode() for name in answers["category"]] == table["category"].tolist()
    assert [name.decode() for name in answers["subcategory"]] == table["subcategory"].tolist()
    assert [value.decode() for value in answers["attributes"]] == table["attributes"].fillna("").tolist()
