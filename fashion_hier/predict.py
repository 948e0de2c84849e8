"""Turn photos into names: a trained run's model, label space and thresholds behind one object.

``Predictor.load(RUN)`` reads what ``train`` wrote; ``predict`` returns a table of category,
subcategory and attributes with scores. Images stream through in batches, so scoring a catalogue
of any size keeps memory flat, and ``fashion-hier predict`` writes its CSV as batches finish.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from fashion_hier.data.catalog import IMAGE_EXTENSIONS
from fashion_hier.labels import LEVELS, LabelSpace

DEFAULT_THRESHOLD = 0.75
PREDICTION_COLUMNS = ("image_path", "category", "category_score", "subcategory", "subcategory_score",
                      "attributes", "attribute_scores")
RUN_FILES = "model.keras, labels.json and config.yaml (thresholds.json optional)"


class Predictor:
    """A model with the label space that names its outputs and the thresholds that pick attributes."""

    def __init__(self, model, label_space: LabelSpace, *, thresholds: np.ndarray | float = DEFAULT_THRESHOLD,
                 image_size: tuple[int, int] | None = None, resize: str = "stretch") -> None:
        self.model = model
        self.label_space = label_space
        self.thresholds = np.broadcast_to(np.asarray(thresholds, dtype=float), (label_space.num_attributes,)).copy()
        self.image_size = tuple(image_size) if image_size is not None else tuple(model.input_shape[1:3])
        self.resize = resize
        _check_outputs(model, label_space)

    @classmethod
    def load(cls, run_dir: str | os.PathLike, *, checkpoint: str = "model.keras") -> "Predictor":
        """Model, label space, thresholds and image settings of a run directory written by ``train``."""
        run_dir = Path(run_dir)
        needed = [run_dir / checkpoint, run_dir / "labels.json", run_dir / "config.yaml"]
        missing = [path.name for path in needed if not path.is_file()]
        if not run_dir.is_dir() or missing:
            problem = "does not exist" if not run_dir.is_dir() else f"has no {', '.join(missing)}"
            raise FileNotFoundError(f"run directory {run_dir} {problem}; a run written by 'fashion-hier train' "
                                    f"holds {RUN_FILES}")
        import keras

        import fashion_hier.losses  # noqa: F401  (registers the custom losses and layers for loading)
        import fashion_hier.models  # noqa: F401
        from fashion_hier.config import TrainConfig
        from fashion_hier.thresholds import THRESHOLDS_FILE, load_thresholds

        label_space = LabelSpace.load(run_dir / "labels.json")
        thresholds_path = run_dir / THRESHOLDS_FILE
        thresholds = (load_thresholds(thresholds_path, label_space.attributes) if thresholds_path.is_file()
                      else DEFAULT_THRESHOLD)
        data = TrainConfig.from_yaml(run_dir / "config.yaml").data
        model = keras.saving.load_model(run_dir / checkpoint, compile=False)
        return cls(model, label_space, thresholds=thresholds, image_size=data.image_size, resize=data.resize)

    # ---- scores --------------------------------------------------------------------------------
    def iter_scores(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False
                    ) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
        """Scores batch by batch: ``(paths of the batch, {level: probabilities})``; one batch in memory at a time."""
        from fashion_hier.data import FashionSequence

        paths = [str(p) for p in paths]
        _check_batch_size(batch_size)
        if not paths:
            return
        images = FashionSequence(paths, None, batch_size=batch_size, image_size=self.image_size,
                                 resize=self.resize, shuffle=False)
        with _progress_bar(len(paths), progress) as bar:
            for index in range(len(images)):
                names = paths[index * batch_size:(index + 1) * batch_size]
                scores = self._score_batch(images[index])
                bar.update(len(names))
                yield names, scores

    def predict_scores(self, paths_or_images, *, batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
        """Probabilities per level: category (N, C), subcategory (N, S), attributes (N, A)."""
        chunks = [scores for _, scores in self._chunks(paths_or_images, batch_size, progress)]
        if not chunks:
            return {level: np.zeros((0, size), np.float32) for level, size in zip(LEVELS, self._sizes())}
        return {level: np.concatenate([chunk[level] for chunk in chunks]) for level in LEVELS}

    def predict(self, paths_or_images, *, batch_size: int = 32, consistent: bool = False,
                progress: bool = False) -> pd.DataFrame:
        """One row per image: ``PREDICTION_COLUMNS`` (``image_path`` is empty for arrays)."""
        tables = [self.decode(scores, names, consistent=consistent)
                  for names, scores in self._chunks(paths_or_images, batch_size, progress)]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(PREDICTION_COLUMNS))

    def decode(self, scores: dict[str, np.ndarray], image_paths: Sequence[str | None] | None = None, *,
               consistent: bool = False) -> pd.DataFrame:
        """Scores to names: arg-max (or the joint best pair with ``consistent``) and thresholded attributes."""
        category_probs, subcategory_probs = scores["category"], scores["subcategory"]
        if consistent:
            category, subcategory = consistent_decode(category_probs, subcategory_probs, self.label_space.parent_index)
        else:
            category, subcategory = category_probs.argmax(axis=1), subcategory_probs.argmax(axis=1)
        rows = np.arange(len(category))
        attributes, attribute_scores = _attribute_columns(scores["attributes"], self.thresholds, self.label_space.attributes)
        return pd.DataFrame({
            "image_path": list(image_paths) if image_paths is not None else [None] * len(rows),
            "category": self.label_space.decode_category(category),
            "category_score": category_probs[rows, category],
            "subcategory": self.label_space.decode_subcategory(subcategory),
            "subcategory_score": subcategory_probs[rows, subcategory],
            "attributes": attributes,
            "attribute_scores": attribute_scores,
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

    def _sizes(self) -> tuple[int, int, int]:
        space = self.label_space
        return space.num_categories, space.num_subcategories, space.num_attributes


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


def _check_outputs(model, label_space: LabelSpace) -> None:
    """The model's three outputs must match the label space's sizes."""
    widths = {name: shape[-1] for name, shape in zip(model.output_names, _output_shapes(model))}
    expected = dict(zip(LEVELS, (label_space.num_categories, label_space.num_subcategories, label_space.num_attributes)))
    if widths != expected:
        raise ValueError(f"model outputs {widths} do not match the label space {expected}; "
                         f"load the labels.json saved with this model")


def _output_shapes(model) -> list[tuple]:
    outputs = model.outputs
    return [tuple(output.shape) for output in (outputs.values() if isinstance(outputs, dict) else outputs)]


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
        frame = pd.read_csv(source, dtype=str)
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


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier predict --run DIR --images DIR_OR_CSV --out predictions.csv``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier predict", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="run directory written by fashion-hier train")
    parser.add_argument("--images", required=True, type=Path, help="folder of images, or a CSV with an image_path column")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write (one row per image, written as batches finish)")
    parser.add_argument("--path-column", default="image_path", help="column of image paths when --images is a CSV")
    parser.add_argument("--consistent", action="store_true",
                        help="pick the joint best (category, subcategory) pair, so the subcategory belongs to the category")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1), metavar="i/n",
                        help="score every n-th image of the sorted list starting at i (split a catalogue over n machines)")
    parser.add_argument("--checkpoint", default="model.keras", help="model file in the run (default: model.keras)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="spark: score with pyspark (fashion_hier.spark); --out ending .parquet writes Parquet")
    parser.add_argument("--spark-master", default="local[2]", help="Spark master for --engine spark")
    args = parser.parse_args(argv)
    try:
        _check_batch_size(args.batch_size)
        paths = shard(list_images(args.images, path_column=args.path_column), *args.shard)
        predictor = Predictor.load(args.run, checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError) as error:
        print(f"fashion-hier predict: {error}", file=sys.stderr)
        return 2
    if args.engine == "spark":
        from fashion_hier.spark import predict_with_spark

        count = predict_with_spark(paths, args.run, args.out, master=args.spark_master,
                                   batch_size=args.batch_size, consistent=args.consistent)
        print(f"wrote {count} predictions to {args.out} (spark, {args.spark_master})")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(columns=list(PREDICTION_COLUMNS)).to_csv(handle, index=False)
        for names, scores in predictor.iter_scores(paths, batch_size=args.batch_size, progress=not args.no_progress):
            predictor.decode(scores, names, consistent=args.consistent).to_csv(handle, header=False, index=False)
            handle.flush()
    print(f"wrote {len(paths)} predictions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
