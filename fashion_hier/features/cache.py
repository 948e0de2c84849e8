"""The feature cache: pooled backbone features of a catalogue, computed once, resumable, looked up by path.

On a CPU a ResNet-50 predicts about five times faster than it trains, and with the backbone
frozen its pooled features never change. Computing them once (a memory-mapped ``.npy``, resumable)
turns every head epoch into seconds. A cache may hold horizontally flipped views (``flip=True``):
a second cache of the same images, used as feature-level augmentation by the head trainer.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.cachefiles import (  # noqa: F401  (the shared pieces are part of this module's names too)
    ENGINE_SUBDIR,
    MANIFEST_FILE,
    PATHS_FILE,
    cache_remedy,
    check_identity,
    fill_rows,
    identity,
    open_cache_array,
    paths_identity,
    read_cache_paths,
    read_manifest,
    request_digest,
    row_index,
    start_cache,
    weights_identity,
    write_manifest,
)
from fashion_hier.config import TrainConfig
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
HEAD_FILE = RunDir.HEAD                    # in a run directory: the head alone, on a feature input
RUN_FEATURES_FILE = RunDir.FEATURES_RECORD  # in a run directory: which cache the head was trained on
_IDENTITY_KEYS = ("num_rows", "paths_sha256", "backbone", "weights", "image_size", "resize", "flip", "engine",
                  "source")
FLIPPED_SUBDIR = "flipped"           # in a cache: the cache of the same images, mirrored
IMAGES_SOURCE = "images"             # features computed from the images (not derived from an activation cache)
KERAS_F32 = "keras f32"              # EngineSpec.describe() of Keras: exactly what model.keras computes
# caches written before a key existed: unflipped views of the images, extracted by Keras in float32
_IDENTITY_DEFAULTS = {"flip": False, "engine": KERAS_F32, "source": IMAGES_SOURCE}


class FeatureCacheMismatch(ValueError):
    """The cache on disk was computed for other images, another backbone or another image size."""


@dataclass(frozen=True)
class FeatureCache:
    """A complete cache: ``features[i]`` are the pooled features of ``paths[i]``."""

    cache_dir: Path
    paths: np.ndarray          # (N,) str
    features: np.ndarray       # (N, feature_dim) float32, memory-mapped read-only
    manifest: dict

    @property
    def unreadable(self) -> dict[str, str]:
        """Images that could not be read at extraction (path -> reason): placeholder rows, never trained on."""
        return dict(self.manifest.get("unreadable", {}))

    def rows(self, paths: Sequence[str], *, source: str = "paths") -> np.ndarray:
        """Row index of each path (compared as real paths); a clear error names paths the cache lacks."""
        return row_index(self.paths, paths, rows_done=int(self.manifest["rows_done"]), error=FeatureCacheMismatch,
                         what=f"feature cache {self.cache_dir}", source=source,
                         remedy="extract features for this catalogue, e.g. "
                                "'fashion-hier features --config CFG --cache NEW_DIR'")


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
                     max_batches: int | None = None, progress: bool = True, flip: bool = False,
                     engine=None, calibration_paths: Sequence[str] | None = None,
                     engine_cache: str | os.PathLike | None = None) -> np.memmap:
    """Pooled backbone features of ``paths`` (in order) in ``cache_dir/features.npy``, resumable.

    Rows are written batch by batch into a memory-mapped ``.npy``; ``manifest.json`` counts the
    rows done after each flushed batch, so a rerun continues where the last one stopped. A cache made
    for other paths, backbone, weights, size or resize policy is refused unless ``overwrite=True``.
    ``max_batches`` stops after that many batches (a time-boxed run; rerun to continue).
    ``flip=True`` caches the horizontally mirrored images instead (feature-level augmentation).
    ``engine``: what runs the backbone (``fashion_hier.engine.EngineSpec``; None: Keras), part of the identity;
    at int8 it is calibrated on a seeded sample of ``calibration_paths`` (the training split's photos, which the
    identity names too). ``engine_cache``: where the converted OpenVINO model is kept, so both views convert once.

    Returns:
        the (N, feature_dim) float32 array, memory-mapped read-only (complete unless ``max_batches`` stopped it).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("extract_features: paths is empty; pass the image paths of a catalogue (Catalog.paths)")
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size={batch_size}; expected a positive integer")
    from fashion_hier.engine import engine_spec, extraction_identity

    cache_dir, spec = Path(cache_dir), engine_spec(engine)
    request = _request_identity(paths, backbone, weights, image_size, resize, flip,
                                extraction_identity(spec, calibration_paths))
    manifest = None if overwrite else read_manifest(cache_dir)
    if manifest is not None:
        _check_identity(cache_dir, manifest, request)
    else:
        manifest = _start_cache(cache_dir, paths, request)
    features_path = cache_dir / FEATURES_FILE
    if manifest["rows_done"] < len(paths):
        if manifest["rows_done"] > 0 and weights is None:
            raise FeatureCacheMismatch(
                f"{cache_dir} holds {manifest['rows_done']} rows from a randomly initialised backbone "
                f"(weights=None), which a new run cannot reproduce; pass overwrite=True")
        _fill_rows(features_path, cache_dir, manifest, paths, backbone=backbone, weights=weights,
                   image_size=image_size, resize=resize, batch_size=batch_size,
                   max_batches=max_batches, progress=progress, flip=flip, engine=spec,
                   calibration_paths=calibration_paths, engine_cache=engine_cache)
    return open_cache_array(features_path, _features_shape(manifest))


def load_feature_cache(cache_dir: str | os.PathLike) -> FeatureCache:
    """Open a complete cache read-only; an unfinished one is an error saying how to finish it."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    if manifest is None:
        raise FileNotFoundError(f"{cache_dir} is not a feature cache (no {MANIFEST_FILE}); "
                                f"create one with 'fashion-hier features --config CFG --cache {cache_dir}'")
    if manifest["rows_done"] < manifest["num_rows"]:
        raise FeatureCacheMismatch(
            f"feature cache {cache_dir} is unfinished ({manifest['rows_done']} of {manifest['num_rows']} rows); "
            f"rerun the same 'fashion-hier features' command to continue it")
    paths = read_cache_paths(cache_dir, manifest)
    features = open_cache_array(cache_dir / FEATURES_FILE, _features_shape(manifest))
    return FeatureCache(cache_dir, paths, features, manifest)


def _features_shape(manifest: dict) -> tuple[int, int]:
    return int(manifest["num_rows"]), int(manifest["feature_dim"])


def _identity(manifest: dict) -> dict:
    return identity(manifest, _IDENTITY_KEYS, _IDENTITY_DEFAULTS)


def _check_cache_serves(cache: FeatureCache, config: TrainConfig, *, flip: bool = False) -> None:
    """The cache must come from the backbone, weights, image size and resize policy of ``config``."""
    wanted = {"backbone": config.model.backbone, "weights": weights_identity(config.model.weights),
              "image_size": [int(s) for s in config.data.image_size], "resize": config.data.resize,
              "flip": flip}
    cached = _identity(cache.manifest)
    differences = [f"{key}: cache has {cached[key]!r}, config has {value!r}"
                   for key, value in wanted.items() if cached[key] != value]
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


def flipped_cache_dir(cache_dir: str | os.PathLike) -> Path:
    """Where the cache of horizontally flipped views of ``cache_dir``'s images lives: a subdirectory."""
    return Path(cache_dir) / FLIPPED_SUBDIR


def default_cache_dir(config: TrainConfig, paths: Sequence[str], *, catalog=None) -> Path:
    """``output_dir/features/<backbone>_<h>x<w>_<hash of the request>``: one cache per catalogue and backbone.
    ``catalog``: the config's catalogue when already read (int8 names its training photos)."""
    from fashion_hier.engine import extraction_calibration_paths

    return _default_cache_dir(config, paths, extraction_calibration_paths(config, catalog))


def _default_cache_dir(config: TrainConfig, paths: Sequence[str], calibration_paths: Sequence[str] | None) -> Path:
    from fashion_hier.engine import extraction_engine, extraction_identity

    engine = extraction_identity(extraction_engine(config), calibration_paths)
    request = _request_identity([str(p) for p in paths], config.model.backbone, config.model.weights,
                                config.data.image_size, config.data.resize, engine=engine)
    for key, value in _IDENTITY_DEFAULTS.items():  # Keras's caches keep the names they had before these keys existed
        if request[key] == value or key == "flip":
            del request[key]
    height, width = config.data.image_size
    return Path(config.output_dir) / "features" / f"{config.model.backbone}_{height}x{width}_{request_digest(request)}"


def ensure_feature_caches(config: TrainConfig, paths: Sequence[str], cache_dir: str | os.PathLike | None = None, *,
                          flip: bool = False, overwrite: bool = False, batch_size: int = 32,
                          progress: bool = False, catalog=None) -> Path:
    """The feature cache of ``paths`` for ``config`` (and its flipped views with ``data.flip_features`` or
    ``flip``): reused when it already holds every image, extracted (or resumed) otherwise. Returns its directory.
    ``catalog``: the config's catalogue when already read (int8 calibrates on its training split).
    """
    from fashion_hier.engine import extraction_calibration_paths, extraction_engine

    calibration_paths = extraction_calibration_paths(config, catalog)
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir(config, paths, calibration_paths)
    caches = [(cache_dir, False)]
    if config.data.flip_features or flip:
        caches.append((flipped_cache_dir(cache_dir), True))
    for directory, flipped in caches:
        if not overwrite and _cache_covers(directory, config, paths, flip=flipped):
            logger.info("using the feature cache %s: it holds every image of the catalogue", directory)
            continue
        extract_features(paths, backbone=config.model.backbone, weights=config.model.weights,
                         image_size=tuple(config.data.image_size), resize=config.data.resize, cache_dir=directory,
                         batch_size=batch_size, overwrite=overwrite, flip=flipped, progress=progress,
                         engine=extraction_engine(config), calibration_paths=calibration_paths,
                         engine_cache=cache_dir / ENGINE_SUBDIR)
        logger.info("features cached in %s", directory)
    return cache_dir


def _cache_covers(cache_dir: Path, config: TrainConfig, paths: Sequence[str], *, flip: bool = False) -> bool:
    """Whether ``cache_dir`` is a complete cache for ``config``'s backbone and size holding all of ``paths``.

    Lets one cache of a whole image folder serve every label mapping of that catalogue.
    """
    try:
        cache = load_feature_cache(cache_dir)
        _check_cache_serves(cache, config, flip=flip)
        cache.rows(paths)
    except (FileNotFoundError, FeatureCacheMismatch):
        return False
    return True


# --- cache internals ---------------------------------------------------------------------------

def _request_identity(paths, backbone, weights, image_size, resize, flip: bool = False,
                      engine: str = _IDENTITY_DEFAULTS["engine"], source: str = IMAGES_SOURCE) -> dict:
    return {**paths_identity(paths), "backbone": backbone,
            "weights": weights_identity(weights), "image_size": [int(s) for s in image_size],
            "resize": resize, "flip": bool(flip), "engine": engine, "source": source}


def _check_identity(cache_dir: Path, manifest: dict, request: dict) -> None:
    check_identity(cache_dir, manifest, request, keys=_IDENTITY_KEYS, defaults=_IDENTITY_DEFAULTS,
                   error=FeatureCacheMismatch, what="feature cache")


def _start_cache(cache_dir: Path, paths: list[str], request: dict) -> dict:
    from fashion_hier.models import backbone_spec

    feature_dim = int(backbone_spec(request["backbone"]).feature_dim)
    return start_cache(cache_dir, paths, request, array_file=FEATURES_FILE, array_shape=(len(paths), feature_dim),
                       array_dtype="float32", feature_dim=feature_dim, dtype="float32")


def _fill_rows(features_path: Path, cache_dir: Path, manifest: dict, paths: list[str], *, backbone,
               weights, image_size, resize, batch_size, max_batches, progress, flip=False, engine=None,
               calibration_paths=None, engine_cache=None) -> None:
    """Run the backbone (through ``engine``) over the rows not done yet (``cachefiles.fill_rows``).

    An unreadable image becomes a white placeholder row, recorded in the manifest and skipped by the head
    trainer, so one bad file never stops an extraction of thousands.
    """
    from fashion_hier.data import read_images
    from fashion_hier.engine import compile_engine, engine_spec, photo_inputs

    extractor = compile_engine(feature_extractor(backbone, weights, image_size), engine_spec(engine),
                               calibration_paths=calibration_paths, inputs=photo_inputs(image_size, resize),
                               cache_dir=engine_cache)

    def load(chunk: list[str]):
        read = read_images(chunk, tuple(image_size), resize=resize)
        images = np.full((len(chunk), *tuple(image_size), 3), 255.0, np.float32)
        images[read.kept] = read.images
        return (np.ascontiguousarray(images[:, :, ::-1]) if flip else images), list(read.failed)

    def record_unreadable(start: int, failed: list) -> None:
        for path, reason in failed:
            logger.warning("unreadable image %s (%s): its feature row is a placeholder, left out of training", path,
                           reason)
            manifest.setdefault("unreadable", {})[str(path)] = reason

    features = open_cache_array(features_path, _features_shape(manifest), mode="r+")
    fill_rows(cache_dir, manifest, features, paths, batch_size=batch_size, max_batches=max_batches, load=load,
              compute=lambda images: np.asarray(extractor.predict_on_batch(images), dtype=np.float32),
              record_unreadable=record_unreadable, progress=progress, description=f"{backbone} features")
    del features
