"""Spark scoring (real pyspark, local mode): rows equal local Predictor.predict on the same images."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install 'fashion-hier[spark]'")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java and `java` is not on PATH (Debian: apt-get install openjdk-17-jre-headless)",
                allow_module_level=True)

from fashion_hier.commands.predict import main  # noqa: E402
from fashion_hier.predict import PREDICTION_COLUMNS, Predictor  # noqa: E402
from fashion_hier.spark import ERROR_COLUMN, score_catalog, spark_session  # noqa: E402
from tiny_run import train_tiny_run  # noqa: E402

pytestmark = pytest.mark.slow  # a Spark session (or several runs) per module: CI runs them with -m slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("spark_run"))


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", app_name="fashion-hier-tests")
    yield session
    session.stop()


def _images(run_dir: Path) -> list[str]:
    return sorted(pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].astype(str))


def _assert_same_rows(scored: pd.DataFrame, expected: pd.DataFrame) -> None:
    scored = scored.sort_values("image_path").reset_index(drop=True)
    expected = expected.sort_values("image_path").reset_index(drop=True)
    for column in ("image_path", "category", "subcategory"):  # an empty name (left for a person): None or NaN
        assert scored[column].fillna("").tolist() == expected[column].fillna("").tolist(), column
    for column in ("category_score", "subcategory_score"):
        np.testing.assert_allclose(scored[column].astype(float), expected[column].astype(float), rtol=1e-5, atol=1e-6)
    for got, want in zip(scored["attribute_scores"].fillna(""), expected["attribute_scores"].fillna("")):
        got_values = [float(v) for v in got.split("|") if v]
        want_values = [float(v) for v in want.split("|") if v]
        np.testing.assert_allclose(got_values, want_values, atol=1.5e-4)  # 4-decimal strings may round apart


def test_spark_rows_equal_local_predict_on_paths(run_dir, spark):
    paths = _images(run_dir)
    frame = spark.createDataFrame(pd.DataFrame({"sku": [f"p{i}" for i in range(len(paths))], "image_path": paths}))
    scored = score_catalog(frame.repartition(3), run_dir, id_column="sku", batch_size=4).toPandas()

    expected = Predictor.load(run_dir).predict(paths, consistent=True)
    assert list(scored.columns) == ["sku", *PREDICTION_COLUMNS, ERROR_COLUMN]
    assert scored[ERROR_COLUMN].isna().all()
    assert dict(zip(scored["image_path"], scored["sku"])) == {p: f"p{i}" for i, p in enumerate(paths)}
    _assert_same_rows(scored, expected)


def test_spark_scores_binary_files_and_reports_unreadable_ones(run_dir, spark, tmp_path):
    paths = _images(run_dir)[:5]
    for path in paths:
        shutil.copy(path, tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(str(tmp_path))

    scored = score_catalog(files, run_dir, path_column="path", content_column="content").toPandas()

    broken = scored[scored["image_path"].str.endswith("broken.jpg")]
    assert len(broken) == 1 and "not a decodable image" in broken[ERROR_COLUMN].iloc[0]
    assert broken["category"].isna().all()
    good = scored.drop(broken.index).assign(image_path=lambda t: t["image_path"].str.replace("file:", "", regex=False))
    expected = Predictor.load(run_dir).predict(sorted(str(tmp_path / Path(p).name) for p in paths), consistent=True)
    _assert_same_rows(good, expected)


def test_predict_engine_spark_writes_the_local_csv_and_parquet(run_dir, spark, tmp_path):
    images = run_dir / "splits" / "test.csv"
    local, csv, parquet = tmp_path / "local.csv", tmp_path / "spark.csv", tmp_path / "spark.parquet"
    common = ["--run", str(run_dir), "--images", str(images), "--no-progress", "--consistent"]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(csv), "--spark", "--spark-master", "local[2]"]) == 0
    assert main([*common, "--out", str(parquet), "--engine", "spark"]) == 0  # 0.3 spelling of --spark
    expected = pd.read_csv(local)
    for table in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert list(table.columns) == [*PREDICTION_COLUMNS, ERROR_COLUMN]
        assert table["image_path"].tolist() == expected["image_path"].tolist()  # same order as local predict
        _assert_same_rows(table, expected)


def test_score_catalog_names_a_missing_column(run_dir, spark):
    frame = spark.createDataFrame(pd.DataFrame({"file": ["a.jpg"]}))
    with pytest.raises(ValueError, match="no column 'image_path'"):
        score_catalog(frame, run_dir)


def test_spark_answers_a_calibrated_models_scores_and_leaves_unsure_rows_to_a_person(run_dir, spark, tmp_path):
    from fashion_hier.checkpoints import save_model_file
    from fashion_hier.predict import load_classifier

    calibrated = load_classifier(run_dir).with_temperatures({"category": 0.5, "subcategory": 2.0, "attributes": 1.5})
    paths = _images(run_dir)
    median = float(np.median(Predictor(calibrated).predict(paths, consistent=True)["category_score"]))
    model_file = save_model_file(calibrated.with_min_confidence({"category": median}), tmp_path / "calibrated.keras")
    frame = spark.createDataFrame(pd.DataFrame({"image_path": paths}))
    scored = score_catalog(frame, model_file, batch_size=4).toPandas()
    expected = Predictor.load(model_file).predict(paths, consistent=True)
    _assert_same_rows(scored, expected)
    raw = Predictor.load(run_dir).predict(paths, consistent=True)
    assert not np.allclose(raw["subcategory_score"].astype(float), expected["subcategory_score"].astype(float))
    review = scored.sort_values("image_path")["needs_review"].tolist()
    assert review == expected.sort_values("image_path")["needs_review"].tolist()


def test_the_local_workers_run_the_drivers_python(spark):
    import os
    import sys

    # a virtualenv used without activating it (venv/bin/python -m pytest) must be the workers' Python too;
    # Spark's default, `python3` from PATH, may not have fashion_hier installed
    if "PYSPARK_PYTHON" not in os.environ:
        assert spark.sparkContext.getConf().get("spark.pyspark.python") == sys.executable
    workers = spark.createDataFrame(pd.DataFrame({"x": [1, 2]})).repartition(2).mapInPandas(
        lambda frames: (pd.DataFrame({"python": [sys.executable]}) for _ in frames), "python string").collect()
    # the same interpreter, whichever of its names (python, python3) started it
    assert {os.path.realpath(row["python"]) for row in workers} == {os.path.realpath(sys.executable)}
