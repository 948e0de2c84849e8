"""Turn photos into names: a trained model, its label space and thresholds behind one object.

``Predictor.load(path)`` reads a run directory written by ``train`` (through ``RunDir``) or a single
``.keras`` file holding a ``HierarchicalClassifier``; ``predict`` returns a table of category,
subcategory and attributes with scores. Images stream through in batches, so scoring a catalogue
of any size keeps memory flat, and ``fashion-hier predict`` writes its CSV as batches finish.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd

from fashion_hier.data.catalog import IMAGE_EXTENSIONS
from fashion_hier.data.csvread import read_frame
from fashion_hier.errors import RunLockedError
from fashion_hier.labels import LEVELS, LabelSpace
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("image_path", "category", "category_score", "subcategory", "subcategory_score",
                      "attributes", "attribute_scores", "needs_review")
ERROR_COLUMN = "error"  # predict's CSV: why an image has no prediction (empty for every scored image)


class ScoredBatch(NamedTuple):
    """One batch of ``Predictor.iter_batches``: readable paths, their scores, and the skipped images."""

    paths: list[str]
    scores: dict[str, np.ndarray]
    unreadable: list  # fashion_hier.data.UnreadableImage(path, reason)


def unreadable_rows(unreadable: Sequence) -> pd.DataFrame:
    """Prediction rows for images that could not be read: the path and the reason, no names or scores."""
    rows = pd.DataFrame({column: [None] * len(unreadable) for column in PREDICTION_COLUMNS})
    rows["image_path"] = [image.path for image in unreadable]
    rows["error"] = [image.reason for image in unreadable]
    return rows


class Predictor:
    """A ``HierarchicalClassifier`` and the thresholds that pick attributes, scoring images in batches.

    ``model`` is the task, or a bare ``build_model`` network together with its ``label_space`` (it is
    then wrapped as the task). ``thresholds``, ``image_size`` and ``resize`` default to the task's own.
    """

    def __init__(self, model, label_space: LabelSpace | None = None, *,
                 thresholds: np.ndarray | float | None = None, image_size: tuple[int, int] | None = None,
                 resize: str | None = None) -> None:
        from fashion_hier.task import HierarchicalClassifier

        if not isinstance(model, HierarchicalClassifier):
            if label_space is None:
                raise ValueError("a bare Keras model needs its label_space; pass Predictor(model, label_space) "
                                 "or a HierarchicalClassifier")
            model = HierarchicalClassifier(model, label_space, image_size=image_size, resize=resize or "stretch")
        elif label_space is not None and label_space != model.label_space:
            raise ValueError("label_space differs from the one the HierarchicalClassifier carries; leave it out")
        if thresholds is not None:
            model = model.with_thresholds(thresholds)
        self.model = model
        self.label_space = model.label_space
        self.thresholds = model.thresholds
        self.image_size = tuple(image_size) if image_size is not None else model.image_size
        self.resize = resize or model.resize

    @classmethod
    def load(cls, path: str | os.PathLike, *, checkpoint: str = RunDir.MODEL) -> "Predictor":
        """A run directory written by ``train`` (its ``checkpoint`` model), or one ``.keras`` task file.

        A run's thresholds file, when present, overrides the thresholds stored in the model.
        """
        return cls(load_classifier(path, checkpoint=checkpoint))

    # ---- scores --------------------------------------------------------------------------------
    def iter_batches(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False
                     ) -> Iterator[ScoredBatch]:
        """Batch by batch: the readable paths, their scores, and the batch's unreadable images (skipped, never fatal).

        One batch is in memory at a time. Each unreadable image is logged once with its reason.
        """
        from fashion_hier.data import FashionSequence

        paths = [str(p) for p in paths]
        _check_batch_size(batch_size)
        if not paths:
            return
        sequence = FashionSequence(paths, None, batch_size=batch_size, image_size=self.image_size,
                                   resize=self.resize, shuffle=False)
        with _progress_bar(len(paths), progress) as bar:
            for index in range(len(sequence)):
                batch = sequence.load_batch(index)
                for image in batch.unreadable:
                    logger.warning("skipped unreadable image %s: %s", image.path, image.reason)
                scores = (self._score_batch(batch.images) if batch.paths
                          else {level: np.zeros((0, size), np.float32) for level, size in zip(LEVELS, self._sizes())})
                bar.update(len(batch.paths) + len(batch.unreadable))
                yield ScoredBatch(list(batch.paths), scores, list(batch.unreadable))

    def iter_scores(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False
                    ) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
        """Scores batch by batch: ``(readable paths of the batch, {level: probabilities})``; unreadable images skipped."""
        for batch in self.iter_batches(paths, batch_size=batch_size, progress=progress):
            if batch.paths:
                yield batch.paths, batch.scores

    def score_paths(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, list]:
        """Scores of the readable images among ``paths``, a mask saying which those are, and the unreadable ones.

        For callers that align scores with their own rows (evaluation): ``scores[level][i]`` belongs to
        ``np.asarray(paths)[kept][i]``.
        """
        paths = [str(p) for p in paths]
        chunks, unreadable = [], []
        for batch in self.iter_batches(paths, batch_size=batch_size, progress=progress):
            chunks.append(batch.scores)
            unreadable.extend(batch.unreadable)
        skipped = {image.path for image in unreadable}
        kept = np.array([path not in skipped for path in paths], dtype=bool)
        return self._concatenate(chunks), kept, unreadable

    def predict_scores(self, paths_or_images, *, batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
        """Probabilities per level: category (N, C), subcategory (N, S), attributes (N, A).

        For paths, N counts the readable images only (unreadable ones are logged and skipped); use
        ``score_paths`` to learn which rows those are.
        """
        return self._concatenate([scores for _, scores in self._chunks(paths_or_images, batch_size, progress)])

    def predict(self, paths_or_images, *, batch_size: int = 32, consistent: bool = False,
                progress: bool = False) -> pd.DataFrame:
        """One row per image: ``PREDICTION_COLUMNS`` (``image_path`` is empty for arrays)."""
        tables = [self.decode(scores, names, consistent=consistent)
                  for names, scores in self._chunks(paths_or_images, batch_size, progress)]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(PREDICTION_COLUMNS))

    def decode(self, scores: dict[str, np.ndarray], image_paths: Sequence[str | None] | None = None, *,
               consistent: bool = False, min_confidence: dict[str, float | None] | None = None) -> pd.DataFrame:
        """Scores to names: arg-max (or the joint best pair with ``consistent``) and thresholded attributes.

        ``min_confidence`` (default: the task's own, ``HierarchicalClassifier.min_confidence``): a level whose
        score is below its confidence is left empty for a person ("stop at the category"; no category, no
        subcategory), its score kept, and the row's ``needs_review`` is True.
        """
        category_probs, subcategory_probs = scores["category"], scores["subcategory"]
        if consistent:
            category, subcategory = consistent_decode(category_probs, subcategory_probs, self.label_space.parent_index)
        else:
            category, subcategory = category_probs.argmax(axis=1), subcategory_probs.argmax(axis=1)
        rows = np.arange(len(category))
        attributes, attribute_scores = _attribute_columns(scores["attributes"], self.thresholds, self.label_space.attributes)
        category_score, subcategory_score = category_probs[rows, category], subcategory_probs[rows, subcategory]
        needed = {**self.model.min_confidence, **(min_confidence or {})}
        category_sure = category_score >= (needed["category"] or 0.0)
        subcategory_sure = category_sure & (subcategory_score >= (needed["subcategory"] or 0.0))
        return pd.DataFrame({
            "image_path": list(image_paths) if image_paths is not None else [None] * len(rows),
            "category": _kept(self.label_space.decode_category(category), category_sure),
            "category_score": category_score,
            "subcategory": _kept(self.label_space.decode_subcategory(subcategory), subcategory_sure),
            "subcategory_score": subcategory_score,
            "attributes": attributes,
            "attribute_scores": attribute_scores,
            "needs_review": ~subcategory_sure,
        })

    # ---- internals -----------------------------------------------------------------------------
    def _chunks(self, paths_or_images, batch_size: int, progress: bool):
        """(names, scores) per batch for paths (streamed from disk) or an array of images."""
        if not (isinstance(paths_or_images, np.ndarray) and paths_or_images.dtype.kind in "fiu"):
            if isinstance(paths_or_images, (str, os.PathLike)):
                paths_or_images = [paths_or_images]
            yield from self.iter_scores(paths_or_images, batch_size=batch_size, progress=progress)
            return
        images = self._check_images(paths_or_images)
        _check_batch_size(batch_size)
        with _progress_bar(len(images), progress) as bar:
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size]
                bar.update(len(batch))
                yield [None] * len(batch), self._score_batch(batch)

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        """An (N, h, w, 3) array (or one (h, w, 3) image) of the model's size, as float32 0..255."""
        images = images[None] if images.ndim == 3 else images
        expected = (*self.image_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"images have shape {images.shape}; this model takes (N, {', '.join(map(str, expected))}) "
                             f"RGB 0..255 — pass image paths (resized on load) or resize the array to "
                             f"{self.image_size[0]}x{self.image_size[1]}")
        return images.astype(np.float32, copy=False)

    def _score_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model.predict_on_batch(images)
        if not isinstance(outputs, dict):
            outputs = dict(zip(self.model.output_names, outputs))
        return {level: np.asarray(outputs[level], dtype=np.float32) for level in LEVELS}

    def _concatenate(self, chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if not chunks:
            return {level: np.zeros((0, size), np.float32) for level, size in zip(LEVELS, self._sizes())}
        return {level: np.concatenate([chunk[level] for chunk in chunks]) for level in LEVELS}

    def _sizes(self) -> tuple[int, int, int]:
        space = self.label_space
        return space.num_categories, space.num_subcategories, space.num_attributes


def load_classifier(path: str | os.PathLike, *, checkpoint: str = RunDir.MODEL):
    """The ``HierarchicalClassifier`` of a run directory (``checkpoint`` in it) or of one ``.keras`` file.

    A run of version 0.1.0 (a bare functional model beside its labels and config files) is wrapped
    as the task; a run's thresholds file overrides the thresholds stored in the model.
    """
    from fashion_hier.checkpoints import load_model_file
    from fashion_hier.task import HierarchicalClassifier
    from fashion_hier.thresholds import load_thresholds

    path = Path(path)
    run = None if path.is_file() else RunDir(path)
    model_file = path if run is None else _run_model_file(run, checkpoint)
    model = load_model_file(model_file)
    if not isinstance(model, HierarchicalClassifier):
        if run is None:
            raise ValueError(f"{model_file} is a bare Keras model without its label space (a version 0.1.0 save); "
                             f"load the run directory that holds it and its {RunDir.LABELS}")
        model = _wrap_legacy_model(model, run)
    if run is not None and run.thresholds.is_file():
        model.set_thresholds(load_thresholds(run.thresholds, model.label_space.attributes))
    return model


def _run_model_file(run: RunDir, checkpoint: str) -> Path:
    """The model file of a finished run, or one line saying why there is none and what to do."""
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path} does not exist; pass a run directory written by 'fashion-hier train' "
                                f"(it holds {RunDir.MODEL}) or a .keras model file")
    model_file = run / checkpoint
    holder = run.training_holder()
    if holder is not None:
        raise RunLockedError(f"training in progress in {run.path} ({holder}); wait for it to finish (it writes "
                             f"{RunDir.FINISHED}), then run this command again")
    if run.is_interrupted or (model_file.is_file() and checkpoint == RunDir.MODEL and not run.is_finished):
        raise FileNotFoundError(f"run directory {run.path} did not finish (no {RunDir.FINISHED}); run the same "
                                "'fashion-hier train' command again to resume it")
    if not model_file.is_file():
        raise FileNotFoundError(f"run directory {run.path} has no {checkpoint}; a run written by 'fashion-hier train' "
                                f"holds {RunDir.MODEL} (and {RunDir.LABELS}, {RunDir.CONFIG})")
    return model_file


def _wrap_legacy_model(network, run: RunDir):
    """A bare functional model of a run (a 0.1.0 run's model, or a ``best.keras`` checkpoint) as the task."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.task import HierarchicalClassifier

    missing = [file.name for file in (run.labels, run.config) if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"{run.path}: its model has no label space inside and "
                                f"the run has no {', '.join(missing)}; retrain it with 'fashion-hier train'")
    data = TrainConfig.from_yaml(run.config).data
    logger.info("%s: a bare Keras model; wrapped as the task with the run's label space", run.path)
    return HierarchicalClassifier(network, LabelSpace.load(run.labels), image_size=data.image_size, resize=data.resize)


def consistent_decode(category_probs: np.ndarray, subcategory_probs: np.ndarray,
                      parent_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint best (category, subcategory) pair per row: argmax over s of p_cat[parent(s)] * p_sub[s].

    The chosen subcategory then always belongs to the chosen category.
    """
    category_probs, subcategory_probs = np.asarray(category_probs), np.asarray(subcategory_probs)
    parent_index = np.asarray(parent_index, dtype=int)
    if (category_probs.ndim != 2 or subcategory_probs.ndim != 2 or len(category_probs) != len(subcategory_probs)
            or parent_index.shape != (subcategory_probs.shape[1],)):
        raise ValueError(f"expected category (N, C), subcategory (N, S) and parent_index (S,); got "
                         f"{category_probs.shape}, {subcategory_probs.shape} and {parent_index.shape}")
    if parent_index.size and (parent_index.min() < 0 or parent_index.max() >= category_probs.shape[1]):
        raise ValueError(f"parent_index values must lie in [0, {category_probs.shape[1] - 1}]")
    joint = category_probs[:, parent_index] * subcategory_probs
    subcategory = joint.argmax(axis=1)
    return parent_index[subcategory], subcategory


def _kept(names: Sequence[str], sure: np.ndarray) -> list[str | None]:
    """The names where the model is sure enough, None (an empty cell, for a person) elsewhere."""
    return [name if ok else None for name, ok in zip(names, sure)]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", disable=not enabled, desc="predict")


def _attribute_columns(scores: np.ndarray, thresholds: np.ndarray, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Per row, the attributes at or above threshold ("|"-joined, best first) and their scores, same order."""
    joined_names, joined_scores = [], []
    for row in scores:
        chosen = [j for j in np.argsort(-row, kind="stable") if row[j] >= thresholds[j]]
        joined_names.append("|".join(names[j] for j in chosen))
        joined_scores.append("|".join(f"{row[j]:.4f}" for j in chosen))
    return joined_names, joined_scores


# ---- listing and sharding images ------------------------------------------------------------

def list_images(source: str | os.PathLike, *, path_column: str = "image_path") -> list[str]:
    """Sorted image paths of a folder (recursively) or of a CSV's ``path_column`` (relative to the CSV)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(str(p) for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not paths:
            raise ValueError(f"{source} holds no images ({', '.join(IMAGE_EXTENSIONS)}, searched recursively)")
        return paths
    if source.is_file() and source.suffix.lower() == ".csv":
        frame, _ = read_frame(source)  # the labels CSV's reader: encoding, delimiter, stray quotes by line
        if path_column not in frame.columns:
            raise ValueError(f"{source}: no {path_column!r} column (columns: {list(frame.columns)}); "
                             f"pass --path-column with the column of image paths")
        column = frame[path_column].dropna()
        if column.empty:
            raise ValueError(f"{source}: column {path_column!r} is empty; nothing to predict")
        return sorted(str((source.parent / p).resolve()) for p in column)
    raise FileNotFoundError(f"{source} is neither a folder of images nor a .csv file of image paths")


def shard(paths: Sequence[str], index: int, count: int) -> list[str]:
    """Every ``count``-th path starting at ``index``: shards 0..count-1 partition ``paths``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: expected i/n with 0 <= i < n (e.g. 0/4 ... 3/4)")
    return list(paths[index::count])


def _parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` for argparse; checked by ``shard``'s own rule."""
    try:
        index, count = (int(part) for part in text.split("/"))
        shard([], index, count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n with 0 <= i < n, e.g. 0/4 ... 3/4") from None
    return index, count


def write_predictions(predictor: Predictor, paths: Sequence[str], out: str | os.PathLike, *, batch_size: int = 32,
                      consistent: bool = False, progress: bool = False) -> tuple[int, int, int]:
    """Write one CSV row per image of ``paths`` (scored, or with its ``error``), atomically;
    (scored, unreadable, scored but marked ``needs_review``).

    Rows are written as batches finish into a temporary file renamed over ``out`` at the end, so an
    interrupted run never leaves a CSV that looks complete.
    """
    from fashion_hier.atomic import atomic_open

    columns = [*PREDICTION_COLUMNS, ERROR_COLUMN]
    scored = unreadable = review = 0
    with atomic_open(out, "w", newline="") as handle:
        pd.DataFrame(columns=columns).to_csv(handle, index=False)
        for batch in predictor.iter_batches(paths, batch_size=batch_size, progress=progress):
            table = predictor.decode(batch.scores, batch.paths, consistent=consistent).assign(**{ERROR_COLUMN: None})
            review += int(table["needs_review"].sum())
            if batch.unreadable:
                table = pd.concat([table, unreadable_rows(batch.unreadable)], ignore_index=True)
            table[columns].to_csv(handle, header=False, index=False)
            scored, unreadable = scored + len(batch.paths), unreadable + len(batch.unreadable)
    return scored, unreadable, review


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier predict --run DIR --images DIR_OR_CSV --out predictions.csv``."""
    from fashion_hier import cli_args

    parser = parser or argparse.ArgumentParser(prog="fashion-hier predict", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_or_model,
                        help="run directory written by fashion-hier train, or a single .keras model file")
    parser.add_argument("--images", required=True, type=cli_args.image_source,
                        help="folder of images, or a CSV with an image_path column")
    parser.add_argument("--out", required=True, type=cli_args.output_file,
                        help="CSV to write (one row per image, written as batches finish)")
    parser.add_argument("--path-column", default="image_path", help="column of image paths when --images is a CSV")
    parser.add_argument("--consistent", action="store_true",
                        help="pick the joint best (category, subcategory) pair, so the subcategory belongs to the category")
    parser.add_argument("--min-confidence", type=cli_args.probability, metavar="P",
                        help="answer the subcategory only where its score reaches P, else leave it to a person "
                             "(empty cell, needs_review true); default: the model's own (evaluate --target-accuracy)")
    parser.add_argument("--min-category-confidence", type=cli_args.probability, metavar="P",
                        help="the same for the category (no category: no subcategory either)")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1), metavar="i/n",
                        help="score every n-th image of the sorted list starting at i (split a catalogue over n machines)")
    parser.add_argument("--checkpoint", default=RunDir.MODEL, help=f"model file in the run (default: {RunDir.MODEL})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="spark: score with pyspark (fashion_hier.spark); --out ending .parquet writes Parquet")
    parser.add_argument("--spark-master", default="local[2]", help="Spark master for --engine spark")
    args = parser.parse_args(argv)
    min_confidence = {level: value for level, value in (("category", args.min_category_confidence),
                                                        ("subcategory", args.min_confidence)) if value is not None}
    try:
        _check_batch_size(args.batch_size)
        paths = shard(list_images(args.images, path_column=args.path_column), *args.shard)
        predictor = Predictor.load(args.run, checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError) as error:
        print(f"fashion-hier predict: {error}", file=sys.stderr)
        return 2
    if args.engine == "spark":
        from fashion_hier.spark import predict_with_spark

        # the run directory itself when possible: its thresholds file then applies on Spark too
        model = args.run if args.checkpoint == RunDir.MODEL else RunDir(args.run) / args.checkpoint
        count = predict_with_spark(paths, model, args.out, master=args.spark_master, batch_size=args.batch_size,
                                   consistent=args.consistent, min_confidence=min_confidence)
        print(f"wrote {count} rows to {args.out} (spark, {args.spark_master})")
        return 0
    if min_confidence:
        predictor = Predictor(predictor.model.with_min_confidence(min_confidence))
    scored, unreadable, review = write_predictions(predictor, paths, args.out, batch_size=args.batch_size,
                                                   consistent=args.consistent, progress=not args.no_progress)
    print(f"wrote {scored + unreadable} rows to {args.out}: {scored} predictions"
          + (f", {review} of them left (in part) to a person (needs_review)" if review else "")
          + (f", {unreadable} unreadable images (see the {ERROR_COLUMN!r} column)" if unreadable else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
