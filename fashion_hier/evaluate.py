"""Evaluate a trained run: the paper's metrics table, per-class CSVs, plots and threshold tuning.

``fashion-hier evaluate --run RUN`` scores the run's test split (or any labelled CSV) and writes
``metrics.json``, ``metrics.md``, ``per_class_<level>.csv``, ``predictions.npz`` and ``plots/``
into the run (or ``--out``). Labels the model never saw are counted and reported, not fatal.
``--tune-thresholds`` first fits one attribute threshold per label on the validation split and
saves them as ``RUN/thresholds.json``, which the ``Predictor`` then uses too. A head-only run
(``fashion-hier features``) is scored from its feature cache when the cache holds every image.

``calibrate``/``target_accuracy`` first fit the run's temperatures and the confidence that reaches an
accuracy on the validation split (``fashion_hier.calibrate``); every report then holds the calibration
figures (ECE, Brier, log loss), hierarchical precision/recall/F1 and the accuracy-coverage table of the
evaluated rows. The command line is ``fashion_hier.commands.evaluate``.

Scoring, the report files and threshold tuning all work on one ``EvaluationData`` and one run directory;
the pieces with a job of their own live elsewhere (``evaluation_data``, ``metrics``, ``plots``, ``report``
for the HTML page, ``thresholds``, ``calibrate``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashion_hier import metrics, plots
from fashion_hier.atomic import atomic_path, atomic_write_text
from fashion_hier.calibrate import (
    SINGLE_LABEL_LEVELS,
    calibrate_run,
    calibrated_levels,
    calibration_figures,
    choose_min_confidence,
)
from fashion_hier.evaluation_data import (  # noqa: F401  (read_split, prepare: part of evaluate's API)
    EvaluationData,
    check_not_empty,
    prepare,
    read_labelled_csv,
    read_split,
    score_rows,
)
from fashion_hier.jsonio import to_json_data, write_json
from fashion_hier.decoding import category_scores
from fashion_hier.engine import EngineSpec, engine_spec
from fashion_hier.labels import IMAGE_PATH, LEVELS, LabelSpace
from fashion_hier.metrics.groups import group_report, masked_attribute_report
from fashion_hier.predict import Predictor
from fashion_hier.report import group_table_cells, threshold_hint, write_html_report
from fashion_hier.rundir import RunDir
from fashion_hier.thresholds import DEFAULT_CAP, DEFAULT_FLOOR, DEFAULT_THRESHOLD, save_thresholds

logger = logging.getLogger(__name__)

SAMPLE_IMAGES = 12
PR_TOP_LABELS = None  # a panel for every attribute
SAMPLE_IMAGE_SIZE = (128, 128)
TABLE_COLUMNS = ("accuracy", "OP", "OR", "OF1", "CF1", "P@k", "R@k", "F1@k", "AP")  # the paper's, plus accuracy and CF1
COVERAGE_TARGETS = (0.95, 0.98, 0.99)  # the accuracies a team may require of the answers it accepts unseen


# ---- thresholds -----------------------------------------------------------------------------
def attribute_thresholds(predictor: Predictor, run_dir: Path, checkpoint: str) -> tuple[np.ndarray, str]:
    """The thresholds ``predict`` applies (``predictor.thresholds``: the run's thresholds file when it has one,
    else those stored in the model file) and where they come from, so the report and the predictions agree."""
    thresholds = np.asarray(predictor.thresholds, dtype=float)
    path = RunDir(run_dir).thresholds
    if path.is_file():
        return thresholds, str(path)
    if np.all(thresholds == DEFAULT_THRESHOLD):
        return thresholds, f"default {DEFAULT_THRESHOLD}"
    return thresholds, f"{checkpoint} (stored in the model)"


def tune_run_thresholds(
    predictor: Predictor, run_dir: Path, *, floor: float = DEFAULT_FLOOR, cap: float = DEFAULT_CAP,
    batch_size: int = 32, progress: bool = True, checkpoint: str = RunDir.MODEL,
) -> np.ndarray:
    """Fit one threshold per attribute on the validation split and save them in the run."""
    data = prepare(read_split(run_dir, "validation"), predictor.label_space, str(RunDir(run_dir).split("validation")))
    check_not_empty(data)
    scores, _, data = score_rows(predictor, data, batch_size, progress, run_dir, checkpoint)
    thresholds = tune_attribute_thresholds(data.targets["attributes"], scores["attributes"], predictor.label_space,
                                           floor=floor, cap=cap)
    save_thresholds(RunDir(run_dir).thresholds, thresholds, predictor.label_space.attributes,
                    floor=floor, cap=cap, split="validation")
    _store_thresholds_in_model(RunDir(run_dir), checkpoint, thresholds)
    return np.asarray(thresholds, dtype=float)


def tune_attribute_thresholds(targets: np.ndarray, scores: np.ndarray, label_space: LabelSpace, *,
                              floor: float = DEFAULT_FLOOR, cap: float = DEFAULT_CAP) -> np.ndarray:
    """F1-optimal thresholds per attribute (``metrics.tune_thresholds``); with attribute columns, per value of
    each ``multi`` group on the rows where it is known (``single`` groups answer their arg-max: default kept)."""
    if not label_space.grouped:
        return metrics.tune_thresholds(targets, scores, floor=floor, cap=cap)
    thresholds = np.full(label_space.num_attributes, DEFAULT_THRESHOLD)
    for group in label_space.groups:
        known = targets[:, group.start] >= 0  # a multi group's row is known or unknown as a whole
        if group.kind == "multi" and known.any():
            thresholds[group.slice] = metrics.tune_thresholds(targets[known, group.slice], scores[known, group.slice],
                                                              floor=floor, cap=cap)
    return thresholds


def _store_thresholds_in_model(run: RunDir, checkpoint: str, thresholds: np.ndarray) -> None:
    """Save tuned thresholds into the run's model file too, so that file alone predicts what the run does."""
    from fashion_hier.checkpoints import load_model_file
    from fashion_hier.task import HierarchicalClassifier, save_task_model

    model = load_model_file(run / checkpoint)
    if isinstance(model, HierarchicalClassifier):  # a 0.1.0 run's bare network has no place for them
        save_task_model(model, model.label_space, run / checkpoint, thresholds=thresholds)


# ---- evaluation -----------------------------------------------------------------------------
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
    calibrate: bool = False,
    target_accuracy: float | None = None,
    engine: EngineSpec | str | None = None,
) -> dict[str, Any]:
    """Score a run on a split (or a labelled CSV), write the report files, and return ``metrics.json``'s content.

    The result is ``hierarchical_report``'s dict plus ``n_samples``, ``unseen_labels``,
    ``thresholds``, ``checkpoint``, ``data``, ``calibration`` (per level: ECE, adaptive ECE, Brier, log
    loss, and the temperature), ``hierarchical`` (hP/hR/hF, micro and macro, of the answers as given: a
    level below its confidence counts as not answered) and ``selective`` (per level: the coverage at 95%,
    98% and 99% accuracy; the stored confidences and what they give here). With ``calibrate`` the
    temperatures are first fitted on the validation split, with ``target_accuracy`` the confidence per
    level that reaches it there; both are stored in the run's model file.
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

    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy!r}")
    if calibrate:
        calibrate_run(run_dir, checkpoint=checkpoint, batch_size=batch_size, progress=progress)
    if target_accuracy is not None:
        choose_min_confidence(run_dir, target_accuracy, checkpoint=checkpoint, batch_size=batch_size,
                              progress=progress)
    engine = engine_spec(engine)
    predictor = Predictor.load(run_dir, checkpoint=checkpoint, engine=engine)
    label_space = predictor.label_space
    if tune_thresholds:  # saved in the run's files (what predict loads) and applied here without a second load
        predictor = predictor.with_thresholds(tune_run_thresholds(
            predictor, run_dir, floor=floor, cap=cap, batch_size=batch_size, progress=progress, checkpoint=checkpoint))
    thresholds, threshold_source = attribute_thresholds(predictor, run_dir, checkpoint)

    if labels_csv is not None:
        data = prepare(read_labelled_csv(run_dir, labels_csv, image_dir, label_space), label_space, str(labels_csv))
    else:
        data = prepare(read_split(run_dir, split), label_space, str(RunDir(run_dir).split(split)))
    check_not_empty(data)
    # another engine scores the photos themselves (a head-only run's feature cache holds Keras's numbers)
    scores, scored_from, data = score_rows(predictor, data, batch_size, progress,
                                           run_dir if engine.is_keras else None, checkpoint)
    check_not_empty(data)

    report = level_report(data.targets, scores, label_space, thresholds)
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
        "engine": predictor.engine.describe(),
        "data": {"source": data.source, "split": None if labels_csv is not None else split, "rows_read": data.rows_read,
                 "scored_from": scored_from},
    }
    result.update(trust_report(data.targets, scores, predictor))
    if threshold_source.startswith("default") and not label_space.grouped:  # None, or a line on tuned thresholds
        result["threshold_hint"] = threshold_hint(data.targets["attributes"], scores["attributes"], thresholds)
    write_report(out_dir, result, data, scores, thresholds, predictor)
    logger.info("wrote the evaluation report to %s", out_dir)
    return result


def level_report(targets: dict[str, np.ndarray], scores: dict[str, np.ndarray], label_space: LabelSpace,
                 thresholds: np.ndarray) -> dict[str, Any]:
    """The paper's table (``metrics.hierarchical_report``); with attribute columns, its attribute row over the
    known entries only (``masked_attribute_report``) and ``groups``: each column's own metrics, both on the
    scores ``predict`` answers from (limited to the predicted category's values, ``decoding.category_scores``)."""
    if not label_space.grouped:
        return metrics.hierarchical_report(targets, scores, parents=label_space.parent_index, threshold=thresholds)
    known_only = {**targets, "attributes": np.maximum(targets["attributes"], 0)}  # rows checked; replaced below
    report = metrics.hierarchical_report(known_only, scores, parents=label_space.parent_index, threshold=thresholds)
    answered = category_scores(scores["attributes"], scores["category"].argmax(axis=1), label_space)
    report["attributes"] = masked_attribute_report(targets["attributes"], answered, threshold=thresholds)
    report["groups"] = group_report(targets["attributes"], answered, label_space.groups, thresholds=thresholds)
    return report


def trust_report(targets: dict[str, np.ndarray], scores: dict[str, np.ndarray], predictor: Predictor
                 ) -> dict[str, Any]:
    """What a team needs to act on the scores: calibration, hierarchical P/R/F, and accuracy against coverage."""
    model = predictor.model
    calibration = calibration_figures(targets, scores, calibrated_levels(predictor.label_space))
    for level in calibration:
        calibration[level]["temperature"] = model.temperatures[level]
    decoded = predictor.decode(scores)
    category = np.where(decoded["category"].isna(), -1, scores["category"].argmax(axis=1))
    subcategory = np.where(decoded["subcategory"].isna(), -1, scores["subcategory"].argmax(axis=1))
    answered = category >= 0  # hP/hR/hF over the rows given at least a category
    parents = predictor.label_space.parent_index
    hierarchical = {average: dict(zip(("hP", "hR", "hF"), metrics.hierarchical_prf(
        targets["category"][answered], targets["subcategory"][answered], category[answered],
        subcategory[answered], parents, average=average))) if answered.any() else None
        for average in ("micro", "macro")}
    selective = {level: {"at_accuracy": {f"{target:g}": point for target, point in metrics.coverage_at_accuracies(
        targets[level], scores[level], COVERAGE_TARGETS).items()},  # keys as metrics.json writes them
                         "min_confidence": model.min_confidence[level]} for level in SINGLE_LABEL_LEVELS}
    accepted = ~decoded["needs_review"].to_numpy(dtype=bool)
    right = scores["subcategory"].argmax(axis=1) == targets["subcategory"]
    selective["answered_in_full"] = {"coverage": float(accepted.mean()),
                                     "subcategory_accuracy": float(right[accepted].mean()) if accepted.any() else None}
    return {"calibration": calibration, "hierarchical": hierarchical, "selective": selective}


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
    atomic_write_text(out.metrics_md, markdown_table(result) + "\n" + trust_markdown(result))
    tables = per_class_tables(data.targets, scores, label_space, thresholds)
    for level, table in tables.items():
        with atomic_path(out.per_class(level)) as temporary:
            table.to_csv(temporary)  # the index is the class name, column "class"
    with atomic_path(out.predictions) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(
            handle,
            image_path=data.frame[IMAGE_PATH].astype(str).to_numpy(dtype=str),
            thresholds=thresholds,
            parents=label_space.parent_index,
            **{f"{level}_true": data.targets[level] for level in LEVELS},
            **{f"{level}_score": scores[level] for level in LEVELS},
        )
    plot_paths = write_plots(out.plots, data, scores, tables["subcategory"], thresholds, predictor)
    write_html_report(out_dir, result, markdown_table(result), plot_paths, data.frame[IMAGE_PATH].astype(str).tolist(),
                      data.targets, scores, label_space, resize=predictor.resize)


def _percent(value: Any) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The paper's table: a row per level, OP/OR/OF1 (and CF1, per-class F1's mean) for all, accuracy for the two
    single-label levels, P@k/R@k/F1@k/AP for attributes (in %)."""
    header = ["level", *TABLE_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for level in LEVELS:
        row = dict(result[level])
        row["AP"] = row.get("mAP")
        lines.append("| " + " | ".join([level, *(_percent(row.get(column)) for column in TABLE_COLUMNS)]) + " |")
    hierarchy = result["hierarchy"]
    if result.get("groups"):
        header, rows = group_table_cells(result["groups"])
        lines += ["", "Attribute columns, each on the rows where its cell is known (in %):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(row) + " |" for row in rows)]
    lines += [
        "",
        f"Metrics in %, {result['n_samples']} samples from {result['data']['source']}; "
        f"attribute thresholds: {result['thresholds']['source']}; AP is the macro mean over labels.",
        f"Hierarchy: consistency {_percent(hierarchy['consistency'])}, "
        f"joint accuracy {_percent(hierarchy['joint_accuracy'])}.",
    ]
    return "\n".join(lines) + "\n"


def trust_markdown(result: dict[str, Any]) -> str:
    """Calibration per level, the rows each single-label level can answer at 95/98/99% accuracy, and hP/hR/hF."""
    lines = ["| level | ECE | adaptive ECE | Brier | log loss | temperature |", "|---|---|---|---|---|---|"]
    for level, figures in result["calibration"].items():
        lines.append(f"| {level} | {figures['ece']:.4f} | {figures['adaptive_ece']:.4f} | {figures['brier']:.4f} | "
                     f"{figures['log_loss']:.4f} | {figures['temperature']:.3f} |")
    lines += ["", "| level | " + " | ".join(f"coverage at {target:.0%} accuracy" for target in COVERAGE_TARGETS)
              + " | min confidence in the model |", "|---|" + "---|" * (len(COVERAGE_TARGETS) + 1)]
    for level in SINGLE_LABEL_LEVELS:
        selective = result["selective"][level]
        cells = [_coverage_cell(selective["at_accuracy"][f"{target:g}"]) for target in COVERAGE_TARGETS]
        stored = selective["min_confidence"]
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {'none' if stored is None else f'{stored:.3f}'} |")
    answered, micro = result["selective"]["answered_in_full"], result["hierarchical"]["micro"]
    lines += ["", f"Answered in full with the model's min confidence: {answered['coverage']:.1%} of rows"
              + ("" if answered["subcategory_accuracy"] is None
                 else f", subcategory accuracy {answered['subcategory_accuracy']:.1%}") + "."]
    if micro is not None:
        lines.append(f"Hierarchical (micro, over the rows given a category): hP {_percent(micro['hP'])}, "
                     f"hR {_percent(micro['hR'])}, hF {_percent(micro['hF'])}.")
    return "\n".join(lines) + "\n"


def _coverage_cell(point: dict[str, Any]) -> str:
    if point["min_confidence"] is None:
        return "unreachable"
    return f"{point['coverage']:.1%} (>= {point['min_confidence']:.3f})"


def unseen_summary(unseen: dict[str, Any]) -> str:
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
    """Per level, one row per class (index ``class``): precision, recall, f1, support (and AP for attributes).

    With attribute columns, one table per group instead of ``attributes``, on the rows where it is known.
    """
    names = {"category": label_space.categories, "subcategory": label_space.subcategories,
             "attributes": label_space.attributes}
    levels = SINGLE_LABEL_LEVELS if label_space.grouped else LEVELS
    tables = {
        level: metrics.per_class_report(targets[level], scores[level], names[level], multilabel=level == "attributes",
                                        threshold=thresholds)
        for level in levels
    }
    for group in label_space.groups if label_space.grouped else ():
        truth, score = targets["attributes"][:, group.slice], scores["attributes"][:, group.slice]
        known = truth[:, 0] >= 0
        if known.any():
            single = group.kind == "single"
            tables[group.name] = metrics.per_class_report(
                truth[known].argmax(axis=1) if single else truth[known], score[known], list(group.values),
                multilabel=not single, threshold=DEFAULT_THRESHOLD if single else thresholds[group.slice])
    return tables


def write_plots(
    plot_dir: Path, data: EvaluationData, scores: dict[str, np.ndarray], subcategory_table: pd.DataFrame,
    thresholds: np.ndarray, predictor: Predictor,
) -> list[Path]:
    """The evaluation figures as PNGs under ``plot_dir``: attribute PR curves, the category confusion matrix,
    subcategory F1, sample predictions, reliability diagrams and the accuracy-coverage curves."""
    targets, label_space = data.targets, predictor.label_space
    attribute_plots = (_group_plots(plot_dir, targets["attributes"], scores["attributes"], label_space)
                       if label_space.grouped else
                       [plots.plot_precision_recall(targets["attributes"], scores["attributes"], label_space.attributes,
                                                    plot_dir / "attributes_precision_recall.png", top=PR_TOP_LABELS)])
    return [
        *attribute_plots,
        plots.plot_confusion_matrix(targets["category"], scores["category"].argmax(axis=1), label_space.categories,
                                    plot_dir / "category_confusion_matrix.png"),
        plots.plot_per_class_f1(label_space.subcategories, subcategory_table["f1"].to_numpy(),
                                plot_dir / "subcategory_f1.png", support=subcategory_table["support"].to_numpy()),
        _sample_grid(plot_dir / "samples.png", data, scores, label_space, thresholds, predictor),
        *(plots.plot_reliability(targets[level], scores[level], plot_dir / f"{level}_reliability.png",
                                 title=f"{level}: reliability") for level in SINGLE_LABEL_LEVELS),
        plots.plot_accuracy_coverage({level: (targets[level], scores[level]) for level in SINGLE_LABEL_LEVELS},
                                     plot_dir / "accuracy_coverage.png", targets=COVERAGE_TARGETS),
    ]


def _group_plots(plot_dir: Path, targets: np.ndarray, scores: np.ndarray, label_space: LabelSpace) -> list[Path]:
    """Per attribute column, on its known rows: a confusion matrix (single) or precision-recall curves (multi)."""
    paths = []
    for group in label_space.groups:
        truth, score = targets[:, group.slice], scores[:, group.slice]
        known = truth[:, 0] >= 0
        if not known.any():
            continue
        path = plot_dir / f"group_{group.name}.png"
        if group.kind == "single":
            paths.append(plots.plot_confusion_matrix(
                truth[known].argmax(axis=1), score[known].argmax(axis=1), list(group.values), path,
                title=f"{group.name}: confusion matrix on {int(known.sum())} known rows\n"
                      "(each cell: share of the true value, and rows)"))
        else:
            paths.append(plots.plot_precision_recall(truth[known], score[known], list(group.values), path,
                                                     top=PR_TOP_LABELS))
    return paths


def _sample_grid(path: Path, data: EvaluationData, scores: dict[str, np.ndarray], label_space: LabelSpace,
                 thresholds: np.ndarray, predictor: Predictor) -> Path:
    """Up to ``SAMPLE_IMAGES`` evenly spaced rows (deterministic), captioned true vs predicted."""
    from fashion_hier.data import load_image

    chosen = np.unique(np.linspace(0, len(data.frame) - 1, num=min(SAMPLE_IMAGES, len(data.frame))).astype(int))
    paths = data.frame[IMAGE_PATH].astype(str).to_numpy()[chosen]
    images = [load_image(p, size=SAMPLE_IMAGE_SIZE, resize=predictor.resize) for p in paths]
    targets = {level: values[chosen] for level, values in data.targets.items()}
    predicted = {
        "category": scores["category"][chosen].argmax(axis=1),
        "subcategory": scores["subcategory"][chosen].argmax(axis=1),
        "attributes": predicted_attributes(scores["attributes"][chosen], thresholds, label_space),
    }
    return plots.plot_sample_grid(images, _captions(targets, label_space), _captions(predicted, label_space), path,
                                  correct=_caption_verdicts(targets, predicted, label_space))


def predicted_attributes(scores: np.ndarray, thresholds: np.ndarray, label_space: LabelSpace) -> np.ndarray:
    """The answered attributes as 0/1 (N, A): at or above threshold; with attribute columns, the arg-max of
    each ``single`` group."""
    chosen = (scores >= thresholds).astype(np.float32)
    for group in label_space.groups if label_space.grouped else ():
        if group.kind == "single":
            block = np.zeros_like(chosen[:, group.slice])
            block[np.arange(len(block)), scores[:, group.slice].argmax(axis=1)] = 1.0
            chosen[:, group.slice] = block
    return chosen


def _captions(labels: dict[str, np.ndarray], label_space: LabelSpace) -> list[str]:
    """'category / subcategory', then one line per attribute column ('season: Summer'; '?' where the catalogue
    leaves it empty, '-' where nothing is answered), or the flat attribute names on one line."""
    categories = label_space.decode_category(labels["category"])
    subcategories = label_space.decode_subcategory(labels["subcategory"])
    attributes = np.asarray(labels["attributes"])
    if not label_space.groups:
        names = label_space.decode_attributes(attributes, threshold=0.5)
        return [f"{c} / {s}\n{', '.join(a) or '-'}" for c, s, a in zip(categories, subcategories, names)]
    captions = []
    for row, (category, subcategory) in enumerate(zip(categories, subcategories)):
        lines = [f"{category} / {subcategory}"]
        for group in label_space.groups:
            cells = attributes[row, group.slice]
            values = ", ".join(group.values[j] for j in np.flatnonzero(cells > 0)) or "-"
            lines.append(f"{group.name}: {'?' if (cells < 0).any() else values}")
        captions.append("\n".join(lines))
    return captions


def _caption_verdicts(targets: dict[str, np.ndarray], predicted: dict[str, np.ndarray],
                      label_space: LabelSpace) -> np.ndarray:
    """Whether each caption line is right: the (category, subcategory) pair, then each attribute column (or the
    flat attribute set). A column the catalogue leaves empty is neither right nor wrong: counted right."""
    pair = (targets["category"] == predicted["category"]) & (targets["subcategory"] == predicted["subcategory"])
    agree = (targets["attributes"] == predicted["attributes"]) | (targets["attributes"] < 0)
    parts = [agree[:, group.slice].all(axis=1) for group in label_space.groups] or [agree.all(axis=1)]
    return np.stack([pair, *parts], axis=1)


# ---- command line ---------------------------------------------------------------------------
