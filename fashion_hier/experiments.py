"""Run several training configs (the paper's setup and its ablations) and compare them in one table.

``python -m experiments.run CONFIG... [--data DIR | --synthetic N] [--set k=v ...] [--out DIR]``
(or ``fashion-hier experiments ...``) trains each config with ``fashion_hier.train.train``,
evaluates it on its test split with ``fashion_hier.evaluate.evaluate_run``, records training time,
training images per second and parameter counts in ``<out>/<name>/run.json``, and writes
``<out>/comparison.csv`` and ``<out>/comparison.md`` across the runs. Each run directory gets a
``.gitignore`` that keeps only its small text results (models, plots and splits stay local).
A finished run (``run.json`` present) is reused, so an interrupted sweep continues where it stopped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_hier.atomic import atomic_path, atomic_write_text
from fashion_hier.config import ConfigError, TrainConfig
from fashion_hier.jsonio import write_json
from fashion_hier.metrics import ATTRIBUTE_KEYS, HIERARCHY_KEYS, SINGLE_LABEL_KEYS
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

RUN_RECORD_FILE = RunDir.RECORD
COMMITTED_FILES = (RunDir.CONFIG, RunDir.METRICS_JSON, RunDir.METRICS_MD, RunDir.HISTORY, RunDir.RECORD)
COMPARISON_NAME = "comparison"
SYNTHETIC_DIR = "catalog"  # under --out, with its own .gitignore: images are never committed
METRIC_COLUMNS = (
    *(f"category.{key}" for key in SINGLE_LABEL_KEYS),
    *(f"subcategory.{key}" for key in SINGLE_LABEL_KEYS),
    *(f"attributes.{key}" for key in ATTRIBUTE_KEYS),
    *(f"hierarchy.{key}" for key in HIERARCHY_KEYS),
)
GROUP_COLUMNS = {"single": ("accuracy", "macro_f1", "hmean_f1"), "multi": ("mAP", "OF1")}
COST_COLUMNS = ("epochs", "train_seconds", "images_per_second", "parameters", "trainable_parameters")


# ---- measuring a run --------------------------------------------------------------------------

def _throughput_meter():
    """A Keras callback timing the training batches of each epoch (validation excluded) and counting weights."""
    import keras

    class ThroughputMeter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_seconds: list[float] = []   # training part of each epoch
            self.first_of_fit: list[bool] = []     # the epoch that paid for tracing the graph
            self.parameters = 0
            self.trainable_parameters = 0
            self._new_fit = True
            self._started: float | None = None

        def on_train_begin(self, logs=None):
            self._new_fit = True

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_test_begin(self, logs=None):  # validation inside fit: stop the epoch's clock here
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

        def on_train_end(self, logs=None):
            self.parameters = int(self.model.count_params())
            self.trainable_parameters = int(sum(np.prod(weight.shape) for weight in self.model.trainable_weights))

        def _stop(self) -> None:
            if self._started is not None:
                self.epoch_seconds.append(time.perf_counter() - self._started)
                self.first_of_fit.append(self._new_fit)
                self._new_fit, self._started = False, None

    return ThroughputMeter()


def images_per_second(epoch_seconds: Sequence[float], first_of_fit: Sequence[bool], images_per_epoch: int) -> float:
    """Training throughput over the epochs that did not trace a graph (all epochs when each did)."""
    steady = [seconds for seconds, first in zip(epoch_seconds, first_of_fit) if not first] or list(epoch_seconds)
    if not steady or sum(steady) <= 0:
        return math.nan
    return images_per_epoch * len(steady) / sum(steady)


def _training_rows(run_dir: Path) -> int:
    """Rows the run trained on: its saved train split, less rows whose labels the label space lacks."""
    from fashion_hier.labels import LabelSpace

    run = RunDir(run_dir)
    label_space = LabelSpace.load(run.labels)
    train = pd.read_csv(run.split("train"), dtype=str)
    return int(label_space.known_rows(train).sum())


def run_experiment(config: TrainConfig, *, overwrite: bool = False, verbose: int | str = 2) -> dict[str, Any]:
    """Train and evaluate one config; write and return its record (metrics, time, throughput, parameters)."""
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.train import train

    meter = _throughput_meter()
    started = time.perf_counter()
    run_dir = train(config, overwrite=overwrite, callbacks=[meter], verbose=verbose)
    train_seconds = time.perf_counter() - started
    report = evaluate_run(run_dir, split="test", progress=False)
    record = {
        "name": config.name,
        "metrics": {level: report[level] for level in ("category", "subcategory", "attributes", "hierarchy", "groups")
                    if level in report},
        "n_test_samples": report["n_samples"],
        "epochs": len(meter.epoch_seconds),
        "train_seconds": train_seconds,
        "images_per_second": images_per_second(meter.epoch_seconds, meter.first_of_fit, _training_rows(run_dir)),
        "parameters": meter.parameters,
        "trainable_parameters": meter.trainable_parameters,
    }
    write_json(RunDir(run_dir).record, record)
    _keep_only_results(run_dir)
    return record


def _keep_only_results(run_dir: Path) -> None:
    """A ``.gitignore`` in the run directory that lets git see only the small text results."""
    lines = ["# written by fashion_hier.experiments: models, plots, splits and predictions stay local", "*",
             "!.gitignore", *(f"!{name}" for name in COMMITTED_FILES)]
    atomic_write_text(run_dir / ".gitignore", "\n".join(lines) + "\n")


def load_record(run_dir: Path) -> dict[str, Any] | None:
    """The record of a finished run (``run.json``), or None when the run has not finished."""
    path = RunDir(run_dir).record
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ---- configs --------------------------------------------------------------------------------

def experiment_configs(config_paths: Sequence[str | os.PathLike], *, out_dir: str | os.PathLike,
                       overrides: Sequence[str] = ()) -> list[TrainConfig]:
    """Each YAML config with ``overrides`` applied, writing to ``out_dir/<name>``; names must differ."""
    if not config_paths:
        raise ConfigError("no config given; pass one or more YAML files, e.g. experiments/configs/*.yaml")
    configs = [TrainConfig.from_yaml(path).with_overrides([*overrides, f"output_dir={out_dir}"]) for path in config_paths]
    names = [config.name for config in configs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        clashing = [str(path) for path, name in zip(config_paths, names) if name in repeated]
        raise ConfigError(f"configs {', '.join(clashing)} share the name {', '.join(map(repr, repeated))}: their runs "
                          "would overwrite each other in the same folder; give each config its own 'name'")
    return configs


def data_overrides(data_dir: str | os.PathLike) -> list[str]:
    """``--set`` values pointing a config at a catalogue folder holding ``styles.csv`` and ``images/``."""
    data_dir = Path(data_dir)
    labels_csv, image_dir = data_dir / "styles.csv", data_dir / "images"
    if not labels_csv.is_file() or not image_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: expected a catalogue folder with styles.csv and images/ "
                                "(the Kaggle Fashion Product Images layout); for another layout set "
                                "data.labels_csv and data.image_dir with --set")
    return [f"data.labels_csv={labels_csv}", f"data.image_dir={image_dir}"]


def synthetic_catalog(out_dir: str | os.PathLike, n: int, *, image_size: int, seed: int = 0) -> Path:
    """The synthetic catalogue under ``out_dir/catalog`` (made once, reused), kept out of git."""
    from fashion_hier.data import make_synthetic_catalog

    catalog_dir = Path(out_dir) / SYNTHETIC_DIR
    labels_csv = catalog_dir / "styles.csv"
    settings = {"n": n, "image_size": image_size, "seed": seed}
    settings_file = catalog_dir / "settings.json"
    if not labels_csv.is_file() or not settings_file.is_file() or json.loads(settings_file.read_text()) != settings:
        labels_csv = Path(make_synthetic_catalog(catalog_dir, n=n, image_size=image_size, seed=seed))
        atomic_write_text(settings_file, json.dumps(settings) + "\n")
        atomic_write_text(catalog_dir / ".gitignore", "*\n")
    return catalog_dir


# ---- the comparison table -------------------------------------------------------------------

def comparison_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run (index ``run``): every metric of the evaluation report, each attribute column's
    (``groups.<name>.<metric>``, runs with attribute columns), then cost columns."""
    rows, group_columns = [], {}
    for record in records:
        row = {column: record["metrics"][column.split(".")[0]].get(column.split(".", 1)[1]) for column in METRIC_COLUMNS}
        for group, figures in record["metrics"].get("groups", {}).items():
            for key in GROUP_COLUMNS[figures["kind"]]:
                group_columns[f"groups.{group}.{key}"] = row[f"groups.{group}.{key}"] = figures[key]
        row.update({column: record[column] for column in COST_COLUMNS})
        rows.append({"run": record["name"], **row})
    columns = ["run", *METRIC_COLUMNS, *group_columns, *COST_COLUMNS]
    return pd.DataFrame(rows, columns=columns).set_index("run").astype(float)


def comparison_markdown(frame: pd.DataFrame) -> str:
    """The comparison transposed for reading: a row per metric (in %), a column per run, then the costs."""
    header = "| metric | " + " | ".join(frame.index) + " |"
    lines = [header, "|---|" + "---:|" * len(frame.index)]
    formats = {"epochs": "{:.0f}", "train_seconds": "{:.0f}", "images_per_second": "{:.1f}",
               "parameters": "{:,.0f}", "trainable_parameters": "{:,.0f}"}
    for column in frame.columns:
        pattern = formats.get(column, "{:.1f}")
        scale = 1.0 if column in formats else 100.0
        cells = ["" if np.isnan(value) else pattern.format(scale * value) for value in frame[column]]
        lines.append(f"| {column} | " + " | ".join(cells) + " |")
    lines += ["", "Metrics in % on each run's test split (thresholded ones at each run's attribute thresholds); "
                  "train_seconds: wall time of training (data reading, model building and validation included); "
                  "images_per_second: training images per second over epochs that did not trace the graph."]
    return "\n".join(lines) + "\n"


def write_comparison(records: Sequence[dict[str, Any]], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``comparison.csv`` (full precision) and ``comparison.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    frame = comparison_frame(records)
    csv_path, md_path = out_dir / f"{COMPARISON_NAME}.csv", out_dir / f"{COMPARISON_NAME}.md"
    with atomic_path(csv_path) as temporary:
        frame.to_csv(temporary)
    atomic_write_text(md_path, comparison_markdown(frame))
    return csv_path, md_path


def run_experiments(configs: Sequence[TrainConfig], out_dir: str | os.PathLike, *, overwrite: bool = False,
                    verbose: int | str = 2) -> list[dict[str, Any]]:
    """Train and evaluate every config not finished yet, then write the comparison of all of them."""
    records = []
    for config in configs:
        record = None if overwrite else load_record(config.run_dir)
        if record is not None:
            logger.info("%s: finished earlier (%s), reused", config.name, RunDir(config.run_dir).record)
        else:
            logger.info("==== %s", config.name)
            record = run_experiment(config, overwrite=True, verbose=verbose)
        records.append(record)
    csv_path, md_path = write_comparison(records, out_dir)
    logger.info("wrote %s and %s", csv_path, md_path)
    return records
