"""Spark scoring with attribute columns (real pyspark, local mode): one column per group, typed as the
decoded table's, and the rows equal local predict's, the groups left empty where they do not apply."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install 'fashion-hier[spark]'")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java and `java` is not on PATH (Debian: apt-get install openjdk-17-jre-headless)",
                allow_module_level=True)

from fashion_hier.commands.predict import main  # noqa: E402
from fashion_hier.decoding import SCORE_SUFFIX, prediction_columns  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.spark import ERROR_COLUMN, output_schema, score_catalog, spark_session  # noqa: E402
from tiny_run import train_tiny_run, with_group_gaps  # noqa: E402

pytestmark = pytest.mark.slow  # a Spark session (or several runs) per module: CI runs them with -m slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("spark_groups_run"), groups=True)


@pytest.fixture(scope="module")
def paths(run_dir):
    return sorted(pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].astype(str))[:8]


@pytest.fixture(scope="module")
def model_file(run_dir, paths, tmp_path_factory):
    """The run's task with groups that apply to some of ``paths``' predicted categories only (workers load a path)."""
    from fashion_hier.checkpoints import save_model_file

    return save_model_file(with_group_gaps(run_dir, paths), tmp_path_factory.mktemp("spark_groups") / "gaps.keras")


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", app_name="fashion-hier-tests")
    yield session
    session.stop()


def _assert_same_group_rows(scored: pd.DataFrame, expected: pd.DataFrame, label_space) -> None:
    scored = scored.sort_values("image_path").reset_index(drop=True)
    expected = expected.sort_values("image_path").reset_index(drop=True)
    for column in ("image_path", "category", "subcategory"):
        assert scored[column].fillna("").tolist() == expected[column].fillna("").tolist(), column
    for group in label_space.groups:
        assert scored[group.name].fillna("").tolist() == expected[group.name].fillna("").tolist(), group.name
        got, want = scored[group.name + SCORE_SUFFIX], expected[group.name + SCORE_SUFFIX]
        if group.kind == "single":
            # NaN where the group does not apply, on both sides
            np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=1e-5, atol=1e-6)
        else:
            assert got.isna().tolist() == want.isna().tolist(), group.name
            for row_got, row_want in zip(got.dropna(), want.dropna()):
                np.testing.assert_allclose([float(v) for v in row_got.split("|") if v],
                                           [float(v) for v in row_want.split("|") if v], atol=1.5e-4)


def test_output_schema_has_a_column_per_group_typed_as_the_decoded_table(model_file):
    space = Predictor.load(model_file).label_space
    schema = output_schema("sku", space)
    assert schema.startswith("`sku` string, `image_path` string, ")
    assert "`base colour` string, `base colour_score` double, `tags` string, `tags_score` string" in schema
    assert "`attributes`" not in schema and schema.endswith("`needs_review` boolean, error string")
    assert output_schema() == output_schema(None, None)  # no label space: the flat tag set's columns


def test_spark_rows_equal_local_predict_with_attribute_columns(model_file, paths, spark, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    frame = spark.createDataFrame(pd.DataFrame({"sku": [f"p{i}" for i in range(len(paths) + 1)],
                                                "image_path": [*paths, str(tmp_path / "broken.jpg")]}))
    scored = score_catalog(frame.repartition(2), model_file, id_column="sku", batch_size=3)
    types = {field.name: field.dataType.simpleString() for field in scored.schema.fields}
    scored = scored.toPandas()

    predictor = Predictor.load(model_file)
    space = predictor.label_space
    assert list(scored.columns) == ["sku", *prediction_columns(space), ERROR_COLUMN]
    assert types["gender_score"] == "double" and types["tags_score"] == "string" and types["pattern"] == "string"
    broken = scored["image_path"].str.endswith("broken.jpg")
    assert "not a decodable image" in scored.loc[broken, ERROR_COLUMN].iloc[0]
    assert scored.loc[broken, [g.name for g in space.groups]].isna().all(axis=None)
    good = scored[~broken]
    assert good[ERROR_COLUMN].isna().all()
    assert good[[g.name + SCORE_SUFFIX for g in space.groups if g.kind == "single"]].isna().any(axis=None)
    _assert_same_group_rows(good, predictor.predict(paths, consistent=True), space)


def test_predict_engine_spark_writes_the_local_csv_with_attribute_columns(model_file, paths, spark, tmp_path):
    images = tmp_path / "images.csv"
    pd.DataFrame({"image_path": paths}).to_csv(images, index=False)
    local, csv = tmp_path / "local.csv", tmp_path / "spark.csv"
    common = ["--run", str(model_file), "--images", str(images), "--no-progress", "--consistent"]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(csv), "--spark", "--spark-master", "local[2]"]) == 0
    expected, table = pd.read_csv(local), pd.read_csv(csv)
    space = Predictor.load(model_file).label_space
    assert list(table.columns) == list(expected.columns) == [*prediction_columns(space), ERROR_COLUMN]
    assert table["image_path"].tolist() == expected["image_path"].tolist()
    _assert_same_group_rows(table, expected, space)


def test_spark_on_the_openvino_engine_gives_local_keras_rows(run_dir, paths, spark, tmp_path):
    pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install 'fashion-hier[openvino]'")
    from fashion_hier.engine import EngineSpec

    frame = spark.createDataFrame(pd.DataFrame({"image_path": paths}))
    # a run directory: the driver converts once into RUN/openvino/, each worker reads it with its share of threads
    scored = score_catalog(frame.repartition(2), run_dir, batch_size=3,
                           engine=EngineSpec("openvino", "f32", threads=1)).toPandas()
    assert len(list((run_dir / "openvino").iterdir())) >= 1
    predictor = Predictor.load(run_dir)
    _assert_same_group_rows(scored, predictor.predict(paths, consistent=True), predictor.label_space)
