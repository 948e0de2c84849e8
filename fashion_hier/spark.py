"""Score a catalogue on Apache Spark: a DataFrame of image paths (or bytes) in, one prediction row out.

``score_catalog`` is built on ``mapInPandas``: every Python worker loads the model once (a per-process
cache keyed by the model path) and scores its partitions in batches with ``Predictor``, so the rows
equal ``Predictor.predict`` on the same images. Works on ``local[n]``, spark-submit and Databricks
alike (see docs/scale_out.md). Needs the ``spark`` extra: ``pip install "fashion-hier[spark]"``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from fashion_hier.decoding import SCORE_SUFFIX
from fashion_hier.engine import EngineSpec, engine_spec, limit_keras_threads
from fashion_hier.labels import IMAGE_PATH
from fashion_hier.predict import ERROR_COLUMN, Predictor, prediction_columns

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ("category_score", "subcategory_score")
COLUMN_TYPES = {**{name: "double" for name in SCORE_COLUMNS}, "needs_review": "boolean"}  # the others are strings


def score_columns(label_space=None) -> tuple[str, ...]:
    """The double columns of the rows: ``SCORE_COLUMNS`` and each ``single`` group's score.

    A ``multi`` group's score column is a string ("|"-joined, as its values), like ``attribute_scores``.
    """
    groups = label_space.groups if label_space is not None and label_space.grouped else ()
    return (*SCORE_COLUMNS, *(group.name + SCORE_SUFFIX for group in groups if group.kind == "single"))


def output_schema(id_column: str | None = None, label_space=None) -> str:
    """The DDL schema of ``score_catalog``'s rows: ``prediction_columns(label_space)`` (+ the id column)
    + ``error``; without ``label_space``, the flat tag set's ``PREDICTION_COLUMNS``."""
    types = {**COLUMN_TYPES, **{name: "double" for name in score_columns(label_space)}}
    columns = [f"{_quoted(id_column)} string"] if id_column else []
    columns += [f"{_quoted(name)} {types.get(name, 'string')}" for name in prediction_columns(label_space)]
    return ", ".join(columns + [f"{ERROR_COLUMN} string"])


def _quoted(name: str) -> str:
    """A column name for DDL: attribute groups are named by shops (spaces, dots, accents)."""
    return "`" + name.replace("`", "``") + "`"


def score_catalog(df, model_path: str | os.PathLike, *, path_column: str = IMAGE_PATH,
                  content_column: str | None = None, id_column: str | None = None, batch_size: int = 64,
                  consistent: bool = True, min_confidence: dict[str, float | None] | None = None,
                  engine: EngineSpec | str | None = None):
    """Predictions for every row of the Spark DataFrame ``df``; a lazy DataFrame of ``output_schema``.

    Args:
        df: one row per image, with ``path_column`` (a path every worker can read) and, for
            ``spark.read.format("binaryFile")`` input, ``content_column="content"`` holding the bytes.
        model_path: run directory or ``.keras`` file, as ``Predictor.load`` takes; every worker must
            be able to read it (shared storage, or the same path on every host).
        id_column: a column copied to the output (e.g. a product id); ``image_path`` is always kept.
        consistent: the joint best (category, subcategory) pair, as ``predict --consistent``.
        min_confidence: ``{level: P}`` over the model's own, as ``predict --min-confidence``.
        engine: what runs the forward pass in each worker (``fashion_hier.engine.EngineSpec``; default Keras).
            Give it ``threads`` (the cores of an executor over its task slots) so that concurrent workers do
            not fight over cores. With OpenVINO a run directory is converted once, here on the driver, and the
            workers read the converted model from ``RUN/openvino/``.
    Unreadable images give a row with empty predictions and the reason in ``error``.
    """
    missing = [c for c in (path_column, content_column, id_column) if c and c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame has no column {missing[0]!r} (columns: {df.columns}); pass path_column=, "
                         f"content_column= or id_column= naming existing columns")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model_path = str(Path(model_path).resolve())
    # fail on the driver, with one clear message, before any task starts; the label space gives the columns
    engine = engine_spec(engine)
    label_space = Predictor.load(model_path, engine=engine).label_space
    wanted = [c for c in dict.fromkeys((path_column, content_column, id_column)) if c]

    def score_partitions(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        predictor = _cached_predictor(model_path, engine)
        for frame in frames:
            for start in range(0, len(frame), batch_size):
                yield score_rows(predictor, frame.iloc[start:start + batch_size], path_column=path_column,
                                 content_column=content_column, id_column=id_column, consistent=consistent,
                                 min_confidence=min_confidence)

    return df.select(*wanted).mapInPandas(score_partitions, schema=output_schema(id_column, label_space))


def score_rows(predictor: Predictor, rows: pd.DataFrame, *, path_column: str = IMAGE_PATH,
               content_column: str | None = None, id_column: str | None = None,
               consistent: bool = True, min_confidence: dict[str, float | None] | None = None) -> pd.DataFrame:
    """One batch of rows to prediction rows (what each Spark task runs; plain pandas, testable alone)."""
    from fashion_hier.data.images import ImageReadError, load_image

    paths = [str(p) for p in rows[path_column]]
    images, errors = np.zeros((len(rows), *predictor.image_size, 3), np.float32), [None] * len(rows)
    with tempfile.TemporaryDirectory(prefix="fashion_hier_spark_") as scratch:
        for row, path in enumerate(paths):
            # bytes go through a scratch file so that decoding is exactly load_image's (OpenCV, EXIF, alpha)
            source = _scratch_file(scratch, row, path, rows[content_column].iloc[row]) if content_column else _local(path)
            try:
                images[row] = load_image(source, predictor.image_size, resize=predictor.resize)
            except ImageReadError as error:
                errors[row] = error.reason
    readable = np.array([error is None for error in errors])
    columns = list(prediction_columns(predictor.label_space))
    table = pd.DataFrame({name: [None] * len(rows) for name in columns})
    if readable.any():
        scores = predictor.predict_scores(images[readable], batch_size=max(1, int(readable.sum())))
        decoded = predictor.decode(scores, [p for p, ok in zip(paths, readable) if ok], consistent=consistent,
                                   min_confidence=min_confidence)
        table.loc[readable, columns] = decoded[columns].to_numpy(dtype=object)
    table[IMAGE_PATH] = paths
    doubles = list(score_columns(predictor.label_space))
    table[doubles] = table[doubles].astype(float)
    table["needs_review"] = table["needs_review"].astype("boolean")  # unreadable rows: null, like their names
    table[ERROR_COLUMN] = errors
    if id_column:
        table.insert(0, id_column, [None if pd.isna(v) else str(v) for v in rows[id_column]])
    return table


@functools.lru_cache(maxsize=2)
def _cached_predictor(model_path: str, engine: EngineSpec) -> Predictor:
    """The model once per Python worker process (Spark reuses workers across tasks)."""
    logger.info("loading %s (%s) in worker process %d", model_path, engine.describe(), os.getpid())
    limit_keras_threads(engine)  # before the model starts TensorFlow in this worker
    return Predictor.load(model_path, engine=engine)


def _local(path: str) -> str:
    """A ``file:`` URI (as binaryFile gives) as a local path; other paths unchanged."""
    if path.startswith("file://"):
        return path[len("file://"):]
    return path[len("file:"):] if path.startswith("file:") else path


def _scratch_file(folder: str, row: int, path: str, content) -> str:
    target = os.path.join(folder, f"{row}{Path(_local(path)).suffix.lower()}")
    with open(target, "wb") as handle:
        handle.write(bytes(content) if content is not None else b"")
    return target


# ---- the `predict --spark` command --------------------------------------------------------

def spark_session(master: str = "local[2]", app_name: str = "fashion-hier"):
    """A SparkSession on ``master`` (``local[n]`` here; on a cluster spark-submit sets the master).

    On this machine (``local[...]``, ``local-cluster[...]``) the Python workers run this very interpreter, so a
    virtualenv that is not activated (``venv/bin/python -m ...``) is the workers' too: Spark would otherwise start
    ``python3`` from PATH, which may not have ``fashion_hier`` installed. ``PYSPARK_PYTHON``, when set, wins.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise ImportError('the Spark engine needs pyspark: pip install "fashion-hier[spark]"') from error
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        builder = builder.config("spark.pyspark.python", sys.executable)
    return builder.getOrCreate()


def threads_per_worker(spark) -> int:
    """This machine's cores over the session's concurrent tasks: each local Python worker's share, so that n
    workers do not each start a pool of every core and fight over them."""
    return max(1, (os.cpu_count() or 1) // spark.sparkContext.defaultParallelism)


def predict_with_spark(paths: list[str], model_path: str | os.PathLike, out: str | os.PathLike, *,
                       master: str = "local[2]", batch_size: int = 64, consistent: bool = False,
                       min_confidence: dict[str, float | None] | None = None, partitions: int | None = None,
                       engine: EngineSpec | str | None = None) -> int:
    """Score ``paths`` on Spark and write ``out`` (.parquet: Parquet, else CSV, same columns as ``predict``).

    Returns the number of rows written. On a ``local[n]`` master an engine without its own ``threads`` gets
    this machine's cores over n, one share per concurrent worker. The result is collected on the driver and written atomically,
    which fits catalogues whose predictions fit in memory; for bigger ones call ``score_catalog`` and
    write the DataFrame with Spark's own writers.
    """
    from fashion_hier.atomic import atomic_path

    spark = spark_session(master)
    engine = engine_spec(engine)
    if engine.threads is None and master.startswith("local"):
        engine = dataclasses.replace(engine, threads=threads_per_worker(spark))
    frame = spark.createDataFrame(pd.DataFrame({IMAGE_PATH: paths}))
    frame = frame.repartition(partitions or spark.sparkContext.defaultParallelism)
    scored = score_catalog(frame, model_path, batch_size=batch_size, consistent=consistent,
                           min_confidence=min_confidence, engine=engine).toPandas()
    failed = scored[scored[ERROR_COLUMN].notna()]
    for path, reason in zip(failed[IMAGE_PATH], failed[ERROR_COLUMN]):
        logger.warning("skipped unreadable image %s: %s", path, reason)
    table = scored  # prediction_columns + error, as local predict writes; unreadable images keep their row
    order = {path: position for position, path in enumerate(paths)}  # the local command's row order
    table = table.sort_values(IMAGE_PATH, key=lambda column: column.map(order), kind="stable")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as target:
        if out.suffix.lower() == ".parquet":
            table.to_parquet(target, index=False)
        else:
            table.to_csv(target, index=False)
    return len(table)
