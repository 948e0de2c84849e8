"""Score catalogues with a trained task: load a run, stream images through it, write prediction files.

``Predictor.load(path)`` reads a run directory written by ``train`` (through ``RunDir``) or a single
``.keras`` file holding a ``HierarchicalClassifier``; ``predict`` returns a table of category,
subcategory and attributes with scores. The task owns what turns scores into names (its ``decode``:
thresholds, confidences) and the scoring loop is ``fashion_hier.streaming``; the ``Predictor`` adds run
loading, shards and files. Images stream through in batches, so scoring a catalogue of any size keeps
memory flat, and ``fashion-hier predict`` (``fashion_hier.commands.predict``) writes its CSV as batches finish.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from fashion_hier.data.catalog import IMAGE_EXTENSIONS
from fashion_hier.data.csvread import read_frame
from fashion_hier.engine import EngineSpec, compile_engine, engine_spec, photo_inputs
from fashion_hier.errors import RunLockedError
from fashion_hier import streaming
from fashion_hier.decoding import PREDICTION_COLUMNS, consistent_decode, prediction_columns  # noqa: F401  (part of predict's API)
from fashion_hier.labels import IMAGE_PATH, LabelSpace
from fashion_hier.rundir import RunDir
from fashion_hier.streaming import ScoredBatch

logger = logging.getLogger(__name__)

ERROR_COLUMN = "error"  # predict's CSV: why an image has no prediction (empty for every scored image)


def unreadable_rows(unreadable: Sequence, label_space: LabelSpace | None = None) -> pd.DataFrame:
    """Prediction rows for images that could not be read: the path and the reason, no names or scores."""
    rows = pd.DataFrame({column: [None] * len(unreadable) for column in prediction_columns(label_space)})
    rows[IMAGE_PATH] = [image.path for image in unreadable]
    rows["error"] = [image.reason for image in unreadable]
    return rows


class Predictor:
    """A ``HierarchicalClassifier`` and the thresholds that pick attributes, scoring images in batches.

    ``model`` is the task, or a bare ``build_model`` network together with its ``label_space`` (it is
    then wrapped as the task). ``thresholds``, ``image_size`` and ``resize`` default to the task's own.
    ``engine``/``precision``: what runs the task's forward pass (``fashion_hier.engine``: ``"keras"``, the
    default, or ``"openvino"`` at ``"f32"``, ``"bf16"`` or ``"int8"``); the names always come from the task's
    ``decode``. ``engine_cache``: where a converted model is kept (``Predictor.load`` uses the run's
    ``openvino/`` folder); ``calibration_paths``: the photos int8 calibrates on.
    """

    def __init__(self, model, label_space: LabelSpace | None = None, *,
                 thresholds: np.ndarray | float | None = None, image_size: tuple[int, int] | None = None,
                 resize: str | None = None, engine: EngineSpec | str | None = None, precision: str | None = None,
                 engine_cache: str | os.PathLike | None = None,
                 calibration_paths: Sequence[str | os.PathLike] | None = None) -> None:
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
        self.engine = engine_spec(engine, precision)
        self.engine_cache = None if engine_cache is None else Path(engine_cache)
        self.calibration_paths = None if calibration_paths is None else [str(p) for p in calibration_paths]
        self.forward = self.compile(model)

    def compile(self, model):
        """``model`` (images in, like the task) on this predictor's engine, cache and calibration photos: what
        runs the task here, and what the search ``Embedder`` runs its embedding model on."""
        return compile_engine(model, self.engine, calibration_paths=self.calibration_paths,
                              inputs=photo_inputs(self.image_size, self.resize), cache_dir=self.engine_cache)

    @classmethod
    def load(cls, path: str | os.PathLike, *, checkpoint: str = RunDir.MODEL, engine: EngineSpec | str | None = None,
             precision: str | None = None, calibration_paths: Sequence[str | os.PathLike] | None = None
             ) -> "Predictor":
        """A run directory written by ``train`` (its ``checkpoint`` model), or one ``.keras`` task file.

        A run's thresholds file, when present, overrides the thresholds stored in the model. With the
        OpenVINO engine, a run keeps its converted models in ``RUN/openvino/`` and int8 calibrates on a sample
        of the run's training photos (pass ``calibration_paths`` for a single ``.keras`` file).
        """
        path = Path(path)
        run = None if path.is_file() else RunDir(path)
        spec = engine_spec(engine, precision)
        model = load_classifier(path, checkpoint=checkpoint)
        if run is not None and spec.precision == "int8" and calibration_paths is None:
            calibration_paths = training_paths(run)
        return cls(model, engine=spec, engine_cache=None if run is None else run / RunDir.OPENVINO,
                   calibration_paths=calibration_paths)

    def with_thresholds(self, thresholds: np.ndarray | float) -> "Predictor":
        """This predictor (its engine already compiled) picking attributes at ``thresholds``."""
        other = copy.copy(self)
        other.model = self.model.with_thresholds(thresholds)  # decoding only: the forward pass is the same
        other.thresholds = other.model.thresholds
        return other

    def with_min_confidence(self, min_confidence: dict[str, float | None]) -> "Predictor":
        """This predictor (its engine already compiled) answering a level only at or above its confidence."""
        other = copy.copy(self)
        other.model = self.model.with_min_confidence(min_confidence)  # decoding only: the forward pass is the same
        return other

    # ---- scores (fashion_hier.streaming) and names (the task's decode) -----------------------------
    def iter_batches(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False
                     ) -> Iterator[ScoredBatch]:
        """Batch by batch: the readable paths, their scores, and the batch's unreadable images (skipped, never fatal).

        One batch is in memory at a time. Each unreadable image is logged once with its reason.
        """
        return streaming.iter_batches(self.model, paths, batch_size=batch_size, progress=progress,
                                      image_size=self.image_size, resize=self.resize, forward=self.forward)

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
        return streaming.concatenate(chunks, self.label_space), kept, unreadable

    def predict_scores(self, paths_or_images, *, batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
        """Probabilities per level: category (N, C), subcategory (N, S), attributes (N, A).

        For paths, N counts the readable images only (unreadable ones are logged and skipped); use
        ``score_paths`` to learn which rows those are.
        """
        return streaming.concatenate([scores for _, scores in self._chunks(paths_or_images, batch_size, progress)],
                                     self.label_space)

    def predict(self, paths_or_images, *, batch_size: int = 32, consistent: bool = False,
                progress: bool = False) -> pd.DataFrame:
        """One row per image: ``prediction_columns(label_space)`` (``image_path`` is empty for arrays)."""
        tables = [self.decode(scores, names, consistent=consistent)
                  for names, scores in self._chunks(paths_or_images, batch_size, progress)]
        return (pd.concat(tables, ignore_index=True) if tables
                else pd.DataFrame(columns=list(prediction_columns(self.label_space))))

    def decode(self, scores: dict[str, np.ndarray], image_paths: Sequence[str | None] | None = None, *,
               consistent: bool = False, min_confidence: dict[str, float | None] | None = None) -> pd.DataFrame:
        """Scores to names: ``HierarchicalClassifier.decode`` (arg-max or the joint best pair, thresholded
        attributes, a level below its ``min_confidence`` left for a person)."""
        return self.model.decode(scores, image_paths, consistent=consistent, min_confidence=min_confidence)

    def _chunks(self, paths_or_images, batch_size: int, progress: bool):
        return streaming.iter_chunks(self.model, paths_or_images, batch_size=batch_size, progress=progress,
                                     image_size=self.image_size, resize=self.resize, forward=self.forward)


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


def training_paths(run: RunDir) -> list[str]:
    """The image paths of a run's training split (what int8 quantization calibrates on)."""
    from fashion_hier.evaluation_data import read_split  # the one reader of a run's split files (imports keras)

    return read_split(run.path, "train")[IMAGE_PATH].dropna().astype(str).tolist()


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


# ---- listing and sharding images ------------------------------------------------------------

def list_images(source: str | os.PathLike, *, path_column: str = IMAGE_PATH) -> list[str]:
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


def write_predictions(predictor: Predictor, paths: Sequence[str], out: str | os.PathLike, *, batch_size: int = 32,
                      consistent: bool = False, progress: bool = False) -> tuple[int, int, int]:
    """Write one CSV row per image of ``paths`` (scored, or with its ``error``), atomically;
    (scored, unreadable, scored but marked ``needs_review``).

    Rows are written as batches finish into a temporary file renamed over ``out`` at the end, so an
    interrupted run never leaves a CSV that looks complete.
    """
    from fashion_hier.atomic import atomic_open

    columns = [*prediction_columns(predictor.label_space), ERROR_COLUMN]
    scored = unreadable = review = 0
    with atomic_open(out, "w", newline="") as handle:
        pd.DataFrame(columns=columns).to_csv(handle, index=False)
        for batch in predictor.iter_batches(paths, batch_size=batch_size, progress=progress):
            table = predictor.decode(batch.scores, batch.paths, consistent=consistent).assign(**{ERROR_COLUMN: None})
            review += int(table["needs_review"].sum())
            if batch.unreadable:
                table = pd.concat([table, unreadable_rows(batch.unreadable, predictor.label_space)], ignore_index=True)
            table[columns].to_csv(handle, header=False, index=False)
            scored, unreadable = scored + len(batch.paths), unreadable + len(batch.unreadable)
    return scored, unreadable, review
