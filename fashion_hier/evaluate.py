"""Evaluate a trained run: the paper's metrics table, per-class CSVs, plots and threshold tuning.

``fashion-hier evaluate --run RUN`` scores the run's test split (or any labelled CSV) and writes
``metrics.json``, ``metrics.md``, ``per_class_<level>.csv``, ``predictions.npz`` and ``plots/``
into the run (or ``--out``). Labels the model never saw are counted and reported, not fatal.
``--tune-thresholds`` first fits one attribute threshold per label on the validation split and
saves them as ``RUN/thresholds.json``, which the ``Predictor`` then uses too. A head-only run
(``fashion-hier features``) is scored from its feature cache when the cache holds every image.

Somewhat over 400 lines on purpose: scoring, the report files and threshold tuning all work on one
``EvaluationData`` and one run directory; the pieces with a job of their own live elsewhere
(``metrics``, ``plots``, ``report`` for the HTML page, ``thresholds``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_hier import metrics, plots
from fashion_hier.atomic import atomic_path, atomic_write_text
from fashion_hier.jsonio import to_json_data, write_json
from fashion_hier.labels import LEVELS, LabelSpace
from fashion_hier.predict import Predictor
from fashion_hier.report import threshold_hint, write_html_report
from fashion_hier.rundir import RunDir
from fashion_hier.thresholds import DEFAULT_THRESHOLD, load_thresholds, save_thresholds

logger = logging.getLogger(__name__)

DEFAULT_FLOOR = 0.05  # bounds of tuned thresholds: one lucky validation sample cannot push a label to 0 or 1
DEFAULT_CAP = 0.95
SPLITS = ("train", "validation", "test")
SAMPLE_IMAGES = 12
PR_TOP_LABELS = None  # a panel for every attribute
SAMPLE_IMAGE_SIZE = (128, 128)
TABLE_COLUMNS = ("OP", "OR", "OF1", "P@k", "R@k", "F1@k", "AP")
FEATURE_CHECKPOINTS = (RunDir.MODEL, RunDir.BEST)  # a head-only run saves its head in both (and RunDir.HEAD)


@dataclass
class EvaluationData:
    """The rows that can be scored, their targets, and what was left out because the model never saw it."""

    frame: pd.DataFrame                     # rows whose category and subcategory the model knows
    targets: dict[str, np.ndarray]          # label_space.encode of ``frame``
    unseen_labels: dict[str, dict[str, int]]  # level -> {label never seen in training: rows}
    rows_read: int
    source: str
    unreadable: list = field(default_factory=list)  # UnreadableImage(path, reason): skipped when scoring

    @property
    def rows_dropped(self) -> int:
        """Rows left out because of labels the model never saw (unreadable images are counted apart)."""
        return self.rows_read - len(self.frame) - len(self.unreadable)

    def without_unreadable(self, kept: np.ndarray, unreadable: list) -> "EvaluationData":
        """The rows whose images could be read (``kept``), with the skipped ones recorded."""
        if kept.all():
            return self
        return replace(self, frame=self.frame.loc[kept].reset_index(drop=True),
                       targets={level: values[kept] for level, values in self.targets.items()},
                       unreadable=[*self.unreadable, *unreadable])


# ---- data -----------------------------------------------------------------------------------
def read_split(run_dir: Path, split: str) -> pd.DataFrame:
    """The frame a run saved for ``split`` (``RUN/splits/<split>.csv``, with ``image_path``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = RunDir(run_dir).split(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the run has no saved {split} split. Train with fashion-hier train "
            "(it writes RUN/splits/), or evaluate a labelled CSV with --labels CSV --images DIR"
        )
    frame = pd.read_csv(path, dtype=str)  # as read_catalog does: labels are text, "NA"/empty are missing
    if "image_path" not in frame.columns:
        raise ValueError(f"{path}: no 'image_path' column (columns: {list(frame.columns)}); it was not written by train")
    return frame


def read_labelled_csv(run_dir: Path, labels_csv: str | Path, image_dir: str | Path, label_space: LabelSpace) -> pd.DataFrame:
    """A new labelled catalogue, read with the run's label columns and id column; its report is logged."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import read_catalog

    config_path = RunDir(run_dir).config
    id_column = TrainConfig.from_yaml(config_path).data.id_column if config_path.is_file() else "id"
    catalog = read_catalog(labels_csv, image_dir, columns=label_space.columns, id_column=id_column)
    logger.info("%s", catalog.report)
    return catalog.frame


def prepare(frame: pd.DataFrame, label_space: LabelSpace, source: str) -> EvaluationData:
    """Targets for the rows the model can be judged on; unseen labels counted instead of raising."""
    unseen = label_space.unknown_labels(frame)
    known = frame.loc[label_space.known_rows(frame)].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unseen labels are reported by us, with the counts
        targets = label_space.encode(known, unknown="drop")
    return EvaluationData(known, targets, unseen, rows_read=len(frame), source=source)


def _check_not_empty(data: EvaluationData) -> None:
    if len(data.frame) == 0 and data.unreadable:
        raise ValueError(f"{data.source}: none of its images could be read ({len(data.unreadable)} unreadable, "
                         f"e.g. {data.unreadable[0].path}: {data.unreadable[0].reason}); nothing to evaluate")
    if len(data.frame) == 0:
        raise ValueError(
            f"{data.source}: none of its {data.rows_read} rows has a category and subcategory the model "
            f"was trained on (unseen: {data.unseen_labels}); nothing to evaluate"
        )


# ---- thresholds -----------------------------------------------------------------------------
def attribute_thresholds(run_dir: Path, label_space: LabelSpace) -> tuple[np.ndarray, str]:
    """The run's tuned thresholds when its thresholds file exists, else the default for every label."""
    path = RunDir(run_dir).thresholds
    if path.is_file():
        return load_thresholds(path, label_space.attributes), str(path)
    return np.full(label_space.num_attributes, DEFAULT_THRESHOLD), f"default {DEFAULT_THRESHOLD}"


def tune_run_thresholds(
    predictor: Predictor, run_dir: Path, *, floor: float = DEFAULT_FLOOR, cap: float = DEFAULT_CAP,
    batch_size: int = 32, progress: bool = True, checkpoint: str = RunDir.MODEL,
) -> np.ndarray:
    """Fit one threshold per attribute on the validation split and save them in the run."""
    data = prepare(read_split(run_dir, "validation"), predictor.label_space, str(RunDir(run_dir).split("validation")))
    _check_not_empty(data)
    scores, _, data = _scores(predictor, data, batch_size, progress, run_dir, checkpoint)
    thresholds = metrics.tune_thresholds(data.targets["attributes"], scores["attributes"], floor=floor, cap=cap)
    save_thresholds(RunDir(run_dir).thresholds, thresholds, predictor.label_space.attributes,
                    floor=floor, cap=cap, split="validation")
    _store_thresholds_in_model(RunDir(run_dir), checkpoint, thresholds)
    return np.asarray(thresholds, dtype=float)


def _store_thresholds_in_model(run: RunDir, checkpoint: str, thresholds: np.ndarray) -> None:
    """Save tuned thresholds into the run's model file too, so that file alone predicts what the run does."""
    from fashion_hier.checkpoints import load_model_file
    from fashion_hier.task import HierarchicalClassifier, save_task_model

    model = load_model_file(run / checkpoint)
    if isinstance(model, HierarchicalClassifier):  # a 0.1.0 run's bare network has no place for them
        save_task_model(model, model.label_space, run / checkpoint, thresholds=thresholds)


# ---- evaluation -----------------------------------------------------------------------------
def _scores(predictor: Predictor, data: EvaluationData, batch_size: int, progress: bool,
            run_dir: Path | None = None, checkpoint: str = RunDir.MODEL
            ) -> tuple[dict[str, np.ndarray], str, EvaluationData]:
    """Scores per level, where they came from, and the rows they belong to (unreadable images left out).

    A head trained on cached features (``fashion-hier features``) is scored on those features: the same
    numbers as its full model on the images, without a second backbone pass (minutes on a CPU).
    """
    paths = data.frame["image_path"].astype(str).tolist()
    scores, source = None, "images"
    if run_dir is not None and checkpoint in FEATURE_CHECKPOINTS:
        scores, source = _cached_scores(RunDir(run_dir), paths)
    if scores is None:
        scores, kept, unreadable = predictor.score_paths(paths, batch_size=batch_size, progress=progress)
        data = data.without_unreadable(kept, unreadable)
    return {level: np.asarray(scores[level], dtype=np.float32) for level in LEVELS}, source, data


def _cached_scores(run: RunDir, paths: list[str]) -> tuple[dict[str, np.ndarray] | None, str]:
    """Scores from the feature cache a head-only run was trained on, or (None, "images") when it cannot serve.

    The one place evaluate reaches into the feature cache; imported here, on use, so that evaluating
    a full-model run never imports the feature module (its lookup, not its head trainer, is what is used).
    """
    if not run.features_record.is_file():
        return None, "images"
    from fashion_hier.features.scoring import scores_from_feature_cache

    scores = scores_from_feature_cache(run.path, paths)
    if scores is None:
        return None, "images"
    return scores, "feature cache " + json.loads(run.features_record.read_text(encoding="utf-8"))["cache_dir"]


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    labels_csv: str | Path | None = None,
    image_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    tune_thresholds: bool = False,
    floor: float = DEFAULT_FLOOR,
    cap: float = DEFAULT_CAP,
    checkpoint: str = RunDir.MODEL,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a run on a split (or a labelled CSV), write the report files, and return ``metrics.json``'s content.

    The result is ``hierarchical_report``'s dict plus ``n_samples``, ``unseen_labels``,
    ``thresholds``, ``checkpoint`` and ``data``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist; pass the folder that train wrote")
    if (labels_csv is None) != (image_dir is None):
        raise ValueError("pass labels_csv and image_dir together (a labelled CSV and its image folder), or neither")
    if tune_thresholds and not 0.0 <= floor <= cap <= 1.0:
        raise ValueError(f"threshold bounds must satisfy 0 <= floor <= cap <= 1, got floor={floor}, cap={cap}")
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    predictor = Predictor.load(run_dir, checkpoint=checkpoint)
    label_space = predictor.label_space
    if tune_thresholds:
        tune_run_thresholds(predictor, run_dir, floor=floor, cap=cap, batch_size=batch_size, progress=progress,
                            checkpoint=checkpoint)
    thresholds, threshold_source = attribute_thresholds(run_dir, label_space)

    if labels_csv is not None:
        data = prepare(read_labelled_csv(run_dir, labels_csv, image_dir, label_space), label_space, str(labels_csv))
    else:
        data = prepare(read_split(run_dir, split), label_space, str(RunDir(run_dir).split(split)))
    _check_not_empty(data)
    scores, scored_from, data = _scores(predictor, data, batch_size, progress, run_dir, checkpoint)
    _check_not_empty(data)

    report = metrics.hierarchical_report(data.targets, scores, parents=label_space.parent_index, threshold=thresholds)
    result = {
        **to_json_data(report),
        "n_samples": len(data.frame),
        "unseen_labels": {
            "rows_dropped": data.rows_dropped,
            "counts": {level: sum(values.values()) for level, values in data.unseen_labels.items()},
            "labels": data.unseen_labels,
        },
        "unreadable_images": {
            "count": len(data.unreadable),
            "examples": [image.path for image in data.unreadable[:5]],
        },
        "thresholds": {
            "source": threshold_source,
            "attributes": {name: float(t) for name, t in zip(label_space.attributes, thresholds)},
        },
        "checkpoint": str(run_dir / checkpoint),
        "data": {"source": data.source, "split": None if labels_csv is not None else split, "rows_read": data.rows_read,
                 "scored_from": scored_from},
    }
    if threshold_source.startswith("default"):  # None, or one line saying what tuned thresholds would give
        result["threshold_hint"] = threshold_hint(data.targets["attributes"], scores["attributes"], thresholds)
    write_report(out_dir, result, data, scores, thresholds, predictor)
    logger.info("wrote the evaluation report to %s", out_dir)
    return result


# ---- outputs --------------------------------------------------------------------------------
def write_report(
    out_dir: Path, result: dict[str, Any], data: EvaluationData, scores: dict[str, np.ndarray],
    thresholds: np.ndarray, predictor: Predictor,
) -> None:
    """Every evaluation file: metrics.json/.md, per-class CSVs, predictions.npz, plots/."""
    label_space, out = predictor.label_space, RunDir(out_dir)
    write_json(out.metrics_json, result)
    if data.unreadable:
        from fashion_hier.data import write_unreadable_report

        write_unreadable_report(data.unreadable, out.unreadable_images)
        logger.warning("%d unreadable images were skipped; listed in %s", len(data.unreadable), out.unreadable_images)
    atomic_write_text(out.metrics_md, markdown_table(result))
    tables = per_class_tables(data.targets, scores, label_space, thresholds)
    for level, table in tables.items():
        with atomic_path(out.per_class(level)) as temporary:
            table.to_csv(temporary)  # the index is the class name, column "class"
    with atomic_path(out.predictions) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(
            handle,
            image_path=data.frame["image_path"].astype(str).to_numpy(dtype=str),
            thresholds=thresholds,
            parents=label_space.parent_index,
            **{f"{level}_true": data.targets[level] for level in LEVELS},
            **{f"{level}_score": scores[level] for level in LEVELS},
        )
    plot_paths = write_plots(out.plots, data, scores, tables["subcategory"], thresholds, predictor)
    write_html_report(out_dir, result, markdown_table(result), plot_paths, data.frame["image_path"].astype(str).tolist(),
                      data.targets, scores, label_space, resize=predictor.resize)


def _percent(value: Any) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The paper's table: a row per level, OP/OR/OF1 for all, P@k/R@k/F1@k/AP for attributes (in %)."""
    header = ["level", *TABLE_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for level in LEVELS:
        row = dict(result[level])
        row["AP"] = row.get("mAP")
        lines.append("| " + " | ".join([level, *(_percent(row.get(column)) for column in TABLE_COLUMNS)]) + " |")
    hierarchy = result["hierarchy"]
    lines += [
        "",
        f"Metrics in %, {result['n_samples']} samples from {result['data']['source']}; "
        f"attribute thresholds: {result['thresholds']['source']}; AP is the macro mean over labels.",
        f"Hierarchy: consistency {_percent(hierarchy['consistency'])}, "
        f"joint accuracy {_percent(hierarchy['joint_accuracy'])}.",
    ]
    return "\n".join(lines) + "\n"


def _unseen_summary(unseen: dict[str, Any]) -> str:
    counts = unseen["counts"]
    if not any(counts.values()):
        return "unseen labels: none"
    listed = "; ".join(f"{level}: {values}" for level, values in unseen["labels"].items() if values)
    return (
        f"unseen labels (never seen in training): {counts['category']} category rows, "
        f"{counts['subcategory']} subcategory rows, {counts['attributes']} attribute values; "
        f"{unseen['rows_dropped']} rows left out — {listed}"
    )


def per_class_tables(
    targets: dict[str, np.ndarray], scores: dict[str, np.ndarray], label_space: LabelSpace, thresholds: np.ndarray,
) -> dict[str, pd.DataFrame]:
    """Per level, one row per class (index ``class``): precision, recall, f1, support (and AP for attributes)."""
    names = {"category": label_space.categories, "subcategory": label_space.subcategories,
             "attributes": label_space.attributes}
    return {
        level: metrics.per_class_report(targets[level], scores[level], names[level], multilabel=level == "attributes",
                                        threshold=thresholds)
        for level in LEVELS
    }


def write_plots(
    plot_dir: Path, data: EvaluationData, scores: dict[str, np.ndarray], subcategory_table: pd.DataFrame,
    thresholds: np.ndarray, predictor: Predictor,
) -> list[Path]:
    """The four evaluation figures as PNGs under ``plot_dir``."""
    targets, label_space = data.targets, predictor.label_space
    return [
        plots.plot_precision_recall(targets["attributes"], scores["attributes"], label_space.attributes,
                                    plot_dir / "attributes_precision_recall.png", top=PR_TOP_LABELS),
        plots.plot_confusion_matrix(targets["category"], scores["category"].argmax(axis=1), label_space.categories,
                                    plot_dir / "category_confusion_matrix.png"),
        plots.plot_per_class_f1(label_space.subcategories, subcategory_table["f1"].to_numpy(),
                                plot_dir / "subcategory_f1.png", support=subcategory_table["support"].to_numpy()),
        _sample_grid(plot_dir / "samples.png", data, scores, label_space, thresholds, predictor),
    ]


def _sample_grid(path: Path, data: EvaluationData, scores: dict[str, np.ndarray], label_space: LabelSpace,
                 thresholds: np.ndarray, predictor: Predictor) -> Path:
    """Up to ``SAMPLE_IMAGES`` evenly spaced rows (deterministic), captioned true vs predicted."""
    from fashion_hier.data import load_image

    chosen = np.unique(np.linspace(0, len(data.frame) - 1, num=min(SAMPLE_IMAGES, len(data.frame))).astype(int))
    paths = data.frame["image_path"].astype(str).to_numpy()[chosen]
    images = [load_image(p, size=SAMPLE_IMAGE_SIZE, resize=predictor.resize) for p in paths]
    targets = {level: values[chosen] for level, values in data.targets.items()}
    predicted = {
        "category": scores["category"][chosen].argmax(axis=1),
        "subcategory": scores["subcategory"][chosen].argmax(axis=1),
        "attributes": (scores["attributes"][chosen] >= thresholds).astype(np.float32),
    }
    return plots.plot_sample_grid(
        images,
        _captions(targets, label_space),
        _captions(predicted, label_space),
        path,
        correct=np.stack([(targets["category"] == predicted["category"]) & (targets["subcategory"] == predicted["subcategory"]),
                          (targets["attributes"] == predicted["attributes"]).all(axis=1)], axis=1),  # one per caption line
    )


def _captions(labels: dict[str, np.ndarray], label_space: LabelSpace) -> list[str]:
    """'category / subcategory' and the attribute names on a second line."""
    categories = label_space.decode_category(labels["category"])
    subcategories = label_space.decode_subcategory(labels["subcategory"])
    attributes = label_space.decode_attributes(labels["attributes"], threshold=0.5)
    return [f"{c} / {s}\n{', '.join(a) or '-'}" for c, s, a in zip(categories, subcategories, attributes)]


# ---- command line ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier evaluate`` / ``python -m fashion_hier.evaluate``."""
    from fashion_hier import cli_args

    parser = parser or argparse.ArgumentParser(prog="python -m fashion_hier.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_directory, help="run directory written by fashion-hier train")
    parser.add_argument("--split", choices=SPLITS, help="saved split to evaluate (default: test)")
    parser.add_argument("--labels", type=cli_args.existing_file("a labelled CSV file"),
                        help="a new labelled CSV to evaluate instead of a saved split")
    parser.add_argument("--images", type=cli_args.existing_directory("the folder of the images of --labels"),
                        help="image folder for --labels")
    parser.add_argument("--out", type=cli_args.output_directory, help="where to write the report (default: the run directory)")
    parser.add_argument("--checkpoint", default=RunDir.MODEL, help=f"model file in the run (default: {RunDir.MODEL})")
    parser.add_argument("--tune-thresholds", action="store_true",
                        help=f"fit per-attribute thresholds on the validation split first; saved as RUN/{RunDir.THRESHOLDS}")
    parser.add_argument("--floor", type=cli_args.probability,
                        help=f"lowest threshold tuning may choose (default {DEFAULT_FLOOR})")
    parser.add_argument("--cap", type=cli_args.probability, help=f"highest threshold tuning may choose (default {DEFAULT_CAP})")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while predicting")
    args = parser.parse_args(argv)
    if (args.labels is None) != (args.images is None):
        parser.error("--labels and --images go together: a labelled CSV and the folder of its images")
    if args.labels is not None and args.split is not None:
        parser.error("--split names a saved split of the run; with --labels the CSV is evaluated instead — pass one")
    if (args.floor is not None or args.cap is not None) and not args.tune_thresholds:
        parser.error("--floor and --cap bound threshold tuning; add --tune-thresholds")
    try:
        result = evaluate_run(
            args.run, split=args.split or "test", labels_csv=args.labels, image_dir=args.images, out_dir=args.out,
            tune_thresholds=args.tune_thresholds, checkpoint=args.checkpoint,
            floor=DEFAULT_FLOOR if args.floor is None else args.floor, cap=DEFAULT_CAP if args.cap is None else args.cap,
            batch_size=args.batch_size, progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:  # a missing run or CSV, a bad split: one line, as predict
        print(f"fashion-hier evaluate: {error}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(_unseen_summary(result["unseen_labels"]))
    if result.get("threshold_hint"):
        print(result["threshold_hint"])
    print(f"wrote {RunDir.METRICS_JSON}, {RunDir.METRICS_MD}, {RunDir.REPORT_HTML}, per_class_*.csv, {RunDir.PREDICTIONS} and "
          f"{RunDir.PLOTS}/ to {args.out or args.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
