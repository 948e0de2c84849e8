"""Frozen-backbone feature cache: pooled backbone features computed once, heads trained on them.

On a CPU a ResNet-50 predicts about five times faster than it trains, and with the backbone
frozen its pooled features never change. Computing them once (a memory-mapped ``.npy``, resumable)
turns every head epoch into seconds; the trained head is then copied into a full model, so the
run directory serves ``Predictor`` and ``evaluate`` like any other run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.config import TrainConfig, add_override_argument, training_seed
from fashion_hier.labels import LEVELS, LabelSpace

FEATURES_FILE = "features.npy"
MANIFEST_FILE = "manifest.json"
PATHS_FILE = "paths.txt"
HEAD_FILE = "head.keras"              # in a run directory: the head alone, on a feature input
RUN_FEATURES_FILE = "features.json"   # in a run directory: which cache the head was trained on
_IDENTITY_KEYS = ("num_rows", "paths_sha256", "backbone", "weights", "image_size", "resize")


class FeatureCacheMismatch(ValueError):
    """The cache on disk was computed for other images, another backbone or another image size."""


@dataclass(frozen=True)
class FeatureCache:
    """A complete cache: ``features[i]`` are the pooled features of ``paths[i]``."""

    cache_dir: Path
    paths: np.ndarray          # (N,) str
    features: np.ndarray       # (N, feature_dim) float32, memory-mapped read-only
    manifest: dict

    def rows(self, paths: Sequence[str], *, source: str = "paths") -> np.ndarray:
        """Row index of each path (compared as real paths); a clear error names paths the cache lacks."""
        import pandas as pd

        index = pd.Index(_real_paths(self.paths)).get_indexer(_real_paths(paths))
        missing = [str(p) for p, i in zip(paths, index) if i < 0]
        if missing:
            raise FeatureCacheMismatch(
                f"{len(missing)} of {len(index)} {source} are not in the feature cache {self.cache_dir} "
                f"(e.g. {missing[:3]}); extract features for this catalogue, e.g. "
                f"'fashion-hier features --config CFG --cache NEW_DIR'")
        return index


def _real_paths(paths: Sequence[str]) -> list[str]:
    """Symlinks and relative parts resolved, so one file has one name in lookups."""
    return [os.path.realpath(str(p)) for p in paths]


def weights_identity(weights: str | os.PathLike | None) -> dict:
    """What identifies the backbone's weights: a name, or a file's path, size and first-megabyte hash."""
    if weights is None or str(weights) == "imagenet":
        return {"name": None if weights is None else "imagenet"}
    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist; pass weights='imagenet', None or "
                                f"the path of a local weights file (see ../shared/tools/get_resnet50_imagenet.sh)")
    with path.open("rb") as handle:
        head_hash = hashlib.sha256(handle.read(1 << 20)).hexdigest()
    return {"path": str(path), "size": path.stat().st_size, "sha256_first_mb": head_hash}


def feature_extractor(backbone: str = "resnet50", weights: str | os.PathLike | None = "imagenet",
                      image_size: tuple[int, int] = (224, 224)):
    """Raw RGB 0..255 in, pooled features out: the ``preprocess`` layer and ``backbone`` of ``build_model``."""
    import keras

    from fashion_hier.models import Preprocess, backbone_spec, build_backbone

    input_shape = (*image_size, 3)
    image = keras.Input(shape=input_shape, name="image")
    pixels = Preprocess(backbone_spec(backbone).preprocess_mode, name="preprocess")(image)
    pooled = build_backbone(backbone, weights, input_shape)(pixels)
    return keras.Model(image, pooled, name=f"{backbone}_features")


def extract_features(paths: Sequence[str | os.PathLike], *, backbone: str = "resnet50",
                     weights: str | os.PathLike | None = "imagenet",
                     image_size: tuple[int, int] = (224, 224), resize: str = "stretch",
                     cache_dir: str | os.PathLike, batch_size: int = 32, overwrite: bool = False,
                     max_batches: int | None = None, progress: bool = True) -> np.memmap:
    """Pooled backbone features of ``paths`` (in order) in ``cache_dir/features.npy``, resumable.

    Rows are written batch by batch into a memory-mapped ``.npy``; ``manifest.json`` counts the
    rows done after each flushed batch, so a rerun continues where the last one stopped. A cache made
    for other paths, backbone, weights, size or resize policy is refused unless ``overwrite=True``.
    ``max_batches`` stops after that many batches (a time-boxed run; rerun to continue).

    Returns:
        the (N, feature_dim) float32 array, memory-mapped read-only (complete unless ``max_batches`` stopped it).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("extract_features: paths is empty; pass the image paths of a catalogue (Catalog.paths)")
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size={batch_size}; expected a positive integer")
    cache_dir = Path(cache_dir)
    request = _request_identity(paths, backbone, weights, image_size, resize)
    manifest = _read_manifest(cache_dir)
    if manifest is not None and not overwrite:
        _check_identity(cache_dir, manifest, request)
    if manifest is None or overwrite:
        manifest = _start_cache(cache_dir, paths, request)
    features_path = cache_dir / FEATURES_FILE
    if manifest["rows_done"] < len(paths):
        if manifest["rows_done"] > 0 and weights is None:
            raise FeatureCacheMismatch(
                f"{cache_dir} holds {manifest['rows_done']} rows from a randomly initialised backbone "
                f"(weights=None), which a new run cannot reproduce; pass overwrite=True")
        _fill_rows(features_path, cache_dir, manifest, paths, backbone=backbone, weights=weights,
                   image_size=image_size, resize=resize, batch_size=batch_size,
                   max_batches=max_batches, progress=progress)
    return np.lib.format.open_memmap(features_path, mode="r")


def load_feature_cache(cache_dir: str | os.PathLike) -> FeatureCache:
    """Open a complete cache read-only; an unfinished one is an error saying how to finish it."""
    cache_dir = Path(cache_dir)
    manifest = _read_manifest(cache_dir)
    if manifest is None:
        raise FileNotFoundError(f"{cache_dir} is not a feature cache (no {MANIFEST_FILE}); "
                                f"create one with 'fashion-hier features --config CFG --cache {cache_dir}'")
    if manifest["rows_done"] < manifest["num_rows"]:
        raise FeatureCacheMismatch(
            f"feature cache {cache_dir} is unfinished ({manifest['rows_done']} of {manifest['num_rows']} rows); "
            f"rerun the same 'fashion-hier features' command to continue it")
    paths = np.asarray((cache_dir / PATHS_FILE).read_text(encoding="utf-8").splitlines(), dtype=str)
    features = np.lib.format.open_memmap(cache_dir / FEATURES_FILE, mode="r")
    return FeatureCache(cache_dir, paths, features, manifest)


# --- heads trained on cached features -----------------------------------------------------------

def train_head_on_features(config: TrainConfig, cache_dir: str | os.PathLike, *, overwrite: bool = False,
                           verbose: int | str = "auto") -> Path:
    """Train ``config``'s head on cached features; save a run directory that ``Predictor``/``evaluate`` read.

    Same split, label space, weighted losses, metrics and optimiser as ``fashion_hier.train``; the
    backbone is frozen by construction. Early stopping on validation loss restores the best epoch
    (patience ``training.early_stopping_patience``, or the whole budget when that is null). The
    head is then copied into a full ``build_model`` with the cache's backbone weights and saved as
    ``model.keras`` (``best.keras`` is the same file), beside ``head.keras`` and ``features.json``.
    """
    import keras

    from fashion_hier import train as training
    from fashion_hier.models import build_head_model
    from fashion_hier.runtime import resolve_runtime

    cache = load_feature_cache(cache_dir)
    config = training.resolved_config(config)
    _check_cache_serves(cache, config)
    prepared = training.prepare_run(config, overwrite=overwrite, resume=False)
    run_dir, label_space, train_labels = prepared.run_dir, prepared.label_space, prepared.train_labels
    train_frame, validation_frame, validation_labels = (prepared.train_frame, prepared.validation_frame,
                                                        prepared.validation_labels)
    train_features = _features_of(cache, _image_paths(train_frame), "train split")
    validation_data = None
    if len(validation_frame):
        validation_data = (_features_of(cache, _image_paths(validation_frame), "validation split"),
                           validation_labels)
    print(f"features: train {train_features.shape}, validation {len(validation_frame)} rows; {label_space}")

    keras.utils.set_random_seed(training_seed(config))
    head = build_head_model(
        label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
        feature_dim=cache.features.shape[1], head=config.model.head, units=config.model.units,
        l2=config.model.l2, dropout=config.model.dropout, top_down=config.model.top_down,
        bottom_up=config.model.bottom_up)
    losses = training.weighted_losses(config, label_space, train_labels)
    # float32 head: the cached features are float32 and the head is too small for mixed precision to pay
    jit_compile, _ = resolve_runtime(config.training.jit_compile, "off")
    training.compile_model(head, config, losses, label_space, config.optimizer.learning_rate, jit_compile)
    timer = _epoch_timer()
    head.fit(train_features, train_labels, validation_data=validation_data, batch_size=config.training.batch_size,
             epochs=config.training.epochs, shuffle=True, verbose=verbose,
             callbacks=[timer, *_head_callbacks(config, run_dir, has_validation=validation_data is not None)])

    head.save(run_dir / HEAD_FILE)
    _save_full_model(head, config, label_space, run_dir)
    (run_dir / RUN_FEATURES_FILE).write_text(json.dumps({"cache_dir": str(Path(cache_dir).resolve()),
                                                         **_identity(cache.manifest)}, indent=2), encoding="utf-8")
    print(_timing_summary(timer, len(train_features), cache.manifest))
    print(f"run saved in {run_dir}")
    return run_dir


def _epoch_timer():
    """A Keras callback collecting the wall time of each epoch (for the head-vs-backbone comparison)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochTimer()


def predict_from_features(model, features: np.ndarray, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Probabilities per level from pooled features, with a head model or a head run's directory.

    ``model`` is a head model (``build_head_model``) or a run directory written by
    ``train_head_on_features`` (its ``head.keras``). Equals the run's full model on the images.
    """
    if isinstance(model, (str, os.PathLike)):
        model = _load_head(Path(model))
    outputs = model.predict(np.asarray(features, dtype=np.float32), batch_size=batch_size, verbose=0)
    if not isinstance(outputs, dict):
        outputs = dict(zip(model.output_names, outputs))
    return {level: np.asarray(outputs[level], dtype=np.float32) for level in LEVELS}


def scores_from_feature_cache(run_dir: str | os.PathLike, paths: Sequence[str], *,
                              batch_size: int = 256) -> dict[str, np.ndarray] | None:
    """The run's scores for ``paths`` from its feature cache, or None when that cannot be done exactly.

    None when the run was not trained on cached features, its cache is gone or unfinished, or the
    cache lacks one of ``paths``: the caller then runs the full model on the images (same numbers,
    slower). This is how ``evaluate`` can score a head-only run without a second backbone pass.
    """
    record_path = Path(run_dir) / RUN_FEATURES_FILE
    if not record_path.is_file() or not (Path(run_dir) / HEAD_FILE).is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    try:
        cache = load_feature_cache(record["cache_dir"])
    except (FileNotFoundError, FeatureCacheMismatch):
        return None
    if _identity(cache.manifest) != _identity(record):
        return None
    try:
        features = _features_of(cache, paths, "evaluated")
    except FeatureCacheMismatch:
        return None
    return predict_from_features(run_dir, features, batch_size=batch_size)


def _identity(manifest: dict) -> dict:
    return {key: manifest.get(key) for key in _IDENTITY_KEYS}


def _check_cache_serves(cache: FeatureCache, config: TrainConfig) -> None:
    """The cache must come from the backbone, weights, image size and resize policy of ``config``."""
    wanted = {"backbone": config.model.backbone, "weights": weights_identity(config.model.weights),
              "image_size": [int(s) for s in config.data.image_size], "resize": config.data.resize}
    differences = [f"{key}: cache has {cache.manifest[key]!r}, config has {value!r}"
                   for key, value in wanted.items() if cache.manifest[key] != value]
    if differences:
        raise FeatureCacheMismatch(
            f"feature cache {cache.cache_dir} does not match the config (" + "; ".join(differences)
            + "); extract features for this config ('fashion-hier features --config CFG')")


def _features_of(cache: FeatureCache, paths: Sequence[str], source: str) -> np.ndarray:
    """The cached features of ``paths``, in their order, as an in-memory array."""
    rows = cache.rows(paths, source=f"{source} images")
    order = np.argsort(rows)  # read the memmap in file order, then put rows back in the caller's order
    features = np.empty((len(rows), cache.features.shape[1]), dtype=np.float32)
    features[order] = cache.features[rows[order]]
    return features


def _image_paths(frame) -> list[str]:
    return frame["image_path"].astype(str).tolist()


def _head_callbacks(config: TrainConfig, run_dir: Path, *, has_validation: bool) -> list:
    """History CSV and early stopping that always restores the best epoch (by val_loss when there is one)."""
    import keras

    from fashion_hier.train import HISTORY_FILE

    patience = config.training.early_stopping_patience
    return [keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE)),
            keras.callbacks.EarlyStopping(monitor="val_loss" if has_validation else "loss", restore_best_weights=True,
                                          patience=config.training.epochs if patience is None else patience)]


def _save_full_model(head, config: TrainConfig, label_space: LabelSpace, run_dir: Path) -> None:
    """The head's weights in a full image model (the cache's backbone), as model.keras and best.keras."""
    from fashion_hier.models import build_model, copy_head_weights
    from fashion_hier.train import BEST_FILE, MODEL_FILE

    model = build_model(
        label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
        backbone=config.model.backbone, weights=config.model.weights,
        input_shape=(*config.data.image_size, 3), head=config.model.head, units=config.model.units,
        l2=config.model.l2, dropout=config.model.dropout, trainable_backbone=config.model.trainable_backbone,
        top_down=config.model.top_down, bottom_up=config.model.bottom_up)
    copy_head_weights(head, model)
    model.save(run_dir / MODEL_FILE)
    best = run_dir / BEST_FILE
    best.unlink(missing_ok=True)
    try:
        os.link(run_dir / MODEL_FILE, best)  # the best epoch is the final one: one file, two names
    except OSError:
        import shutil

        shutil.copyfile(run_dir / MODEL_FILE, best)


def _load_head(run_dir: Path):
    import keras

    import fashion_hier.models  # noqa: F401  registers the head's custom layers for loading

    path = run_dir / HEAD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} was not trained on cached features; "
                                f"use Predictor.load({str(run_dir)!r}) to score images with its full model")
    return keras.saving.load_model(path, compile=False)


def _timing_summary(timer, train_rows: int, manifest: dict) -> str:
    """One head epoch on features against one backbone forward pass over the same images."""
    if not timer.seconds:
        return "head training ran no epoch"
    epoch = float(np.median(timer.seconds))
    images_per_second = manifest["rows_done"] / manifest["seconds"] if manifest["seconds"] > 0 else float("nan")
    forward = train_rows / images_per_second
    return (f"timing: one head epoch on {train_rows} cached feature rows took {epoch:.2f} s (median of "
            f"{len(timer.seconds)}); one {manifest['backbone']} forward pass over the same images takes "
            f"{forward:.1f} s at the extraction rate of {images_per_second:.1f} images/s "
            f"({forward / epoch:.0f}x; a full-model training epoch costs about 3x that forward pass)")


# --- command line -------------------------------------------------------------------------------

def default_cache_dir(config: TrainConfig, paths: Sequence[str]) -> Path:
    """``output_dir/features/<backbone>_<h>x<w>_<hash of the request>``: one cache per catalogue and backbone."""
    request = _request_identity([str(p) for p in paths], config.model.backbone, config.model.weights,
                                config.data.image_size, config.data.resize)
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode("utf-8")).hexdigest()[:10]
    height, width = config.data.image_size
    return Path(config.output_dir) / "features" / f"{config.model.backbone}_{height}x{width}_{digest}"


def _cache_covers(cache_dir: Path, config: TrainConfig, paths: Sequence[str]) -> bool:
    """Whether ``cache_dir`` is a complete cache for ``config``'s backbone and size holding all of ``paths``.

    Lets one cache of a whole image folder serve every label mapping of that catalogue.
    """
    try:
        cache = load_feature_cache(cache_dir)
        _check_cache_serves(cache, config)
        cache.rows(paths)
    except (FileNotFoundError, FeatureCacheMismatch):
        return False
    return True


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier features --config cfg.yaml | --run DIR [--set k=v] [--cache DIR] [--overwrite]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier features",
                                               description="cache frozen-backbone features and train the head on them")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML file of a TrainConfig")
    source.add_argument("--run", help="an existing run directory: use its config.yaml")
    add_override_argument(parser)
    parser.add_argument("--cache", help="feature cache directory (default: OUTPUT_DIR/features/<backbone>_<size>_<hash>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    parser.add_argument("--overwrite-cache", action="store_true",
                        help="recompute a cache that was made for other images, backbone, weights or size")
    parser.add_argument("--extract-only", action="store_true", help="compute the feature cache and stop")
    parser.add_argument("--batch-size", type=int, default=32, help="images per backbone batch during extraction")
    args = parser.parse_args(argv)
    from fashion_hier.train import RunDirectoryError, read_config_catalog, resolved_config

    try:
        config_path = Path(args.run) / "config.yaml" if args.run else Path(args.config)
        config = TrainConfig.from_yaml(config_path).with_overrides(args.overrides)
        config = resolved_config(config)
        catalog = read_config_catalog(config)
        print(catalog.report)
        cache_dir = Path(args.cache) if args.cache else default_cache_dir(config, catalog.paths)
        if not args.overwrite_cache and _cache_covers(cache_dir, config, catalog.paths):
            print(f"using the feature cache {cache_dir}: it holds every image of the catalogue")
        else:
            extract_features(catalog.paths, backbone=config.model.backbone, weights=config.model.weights,
                             image_size=tuple(config.data.image_size), resize=config.data.resize,
                             cache_dir=cache_dir, batch_size=args.batch_size, overwrite=args.overwrite_cache)
            print(f"features cached in {cache_dir}")
        if not args.extract_only:
            run_dir = train_head_on_features(config, cache_dir, overwrite=args.overwrite)
            print(f"run: {run_dir}")
    except (ValueError, FileNotFoundError, RunDirectoryError) as error:
        print(f"fashion-hier features: {error}", file=sys.stderr)
        return 2
    return 0


# --- cache internals ---------------------------------------------------------------------------

def _request_identity(paths, backbone, weights, image_size, resize) -> dict:
    digest = hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()
    return {"num_rows": len(paths), "paths_sha256": digest, "backbone": backbone,
            "weights": weights_identity(weights), "image_size": [int(s) for s in image_size],
            "resize": resize}


def _read_manifest(cache_dir: Path) -> dict | None:
    path = cache_dir / MANIFEST_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_manifest(cache_dir: Path, manifest: dict) -> None:
    """Atomic replace, so an interrupted run never leaves a half-written manifest."""
    tmp = cache_dir / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, cache_dir / MANIFEST_FILE)


def _check_identity(cache_dir: Path, manifest: dict, request: dict) -> None:
    differences = [f"{key}: cache has {manifest.get(key)!r}, request has {request[key]!r}"
                   for key in _IDENTITY_KEYS if manifest.get(key) != request[key]]
    if differences:
        raise FeatureCacheMismatch(
            f"feature cache {cache_dir} was made for a different request ("
            + "; ".join(differences)
            + "); pass another cache directory, or overwrite=True (--overwrite) to recompute it")


def _start_cache(cache_dir: Path, paths: list[str], request: dict) -> dict:
    from fashion_hier.models import backbone_spec

    feature_dim = int(backbone_spec(request["backbone"]).feature_dim)
    cache_dir.mkdir(parents=True, exist_ok=True)
    features = np.lib.format.open_memmap(cache_dir / FEATURES_FILE, mode="w+", dtype=np.float32,
                                         shape=(len(paths), feature_dim))
    del features
    (cache_dir / PATHS_FILE).write_text("\n".join(paths) + "\n", encoding="utf-8")
    manifest = {**request, "feature_dim": feature_dim, "dtype": "float32", "rows_done": 0, "seconds": 0.0}
    _write_manifest(cache_dir, manifest)
    return manifest


def _fill_rows(features_path: Path, cache_dir: Path, manifest: dict, paths: list[str], *, backbone,
               weights, image_size, resize, batch_size, max_batches, progress) -> None:
    """Run the backbone over the rows not done yet, flushing and counting after every batch.

    The next batch is decoded in a background thread while the backbone runs on the current one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from fashion_hier.data import load_images

    extractor = feature_extractor(backbone, weights, image_size)
    features = np.lib.format.open_memmap(features_path, mode="r+")
    done = manifest["rows_done"]
    starts = list(range(done, len(paths), batch_size))[:max_batches]

    def load(start: int) -> np.ndarray:
        return load_images(paths[start:start + batch_size], tuple(image_size), resize=resize)

    with ThreadPoolExecutor(max_workers=1) as decoder, \
            tqdm(total=len(paths), initial=done, unit="img", disable=not progress, desc=f"{backbone} features") as bar:
        pending = decoder.submit(load, starts[0]) if starts else None
        for position, start in enumerate(starts):
            started = time.perf_counter()
            images = pending.result()
            if position + 1 < len(starts):
                pending = decoder.submit(load, starts[position + 1])
            pooled = np.asarray(extractor.predict_on_batch(images), dtype=np.float32)
            features[start:start + len(pooled)] = pooled
            features.flush()
            manifest["rows_done"] = start + len(pooled)
            manifest["seconds"] += time.perf_counter() - started
            _write_manifest(cache_dir, manifest)
            bar.update(len(pooled))
    del features


if __name__ == "__main__":
    sys.exit(main())
