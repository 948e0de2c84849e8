"""The feature cache: pooled backbone features of a catalogue, computed once, resumable, looked up by path.

On a CPU a ResNet-50 predicts about five times faster than it trains, and with the backbone
frozen its pooled features never change. Computing them once (a memory-mapped ``.npy``, resumable)
turns every head epoch into seconds. A cache may hold horizontally flipped views (``flip=True``):
a second cache of the same images, used as feature-level augmentation by the head trainer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.atomic import atomic_write_text
from fashion_hier.config import TrainConfig
from fashion_hier.errors import DamagedFileError
from fashion_hier.jsonio import read_json
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
MANIFEST_FILE = "manifest.json"
PATHS_FILE = "paths.txt"
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
                     max_batches: int | None = None, progress: bool = True, flip: bool = False,
                     engine=None) -> np.memmap:
    """Pooled backbone features of ``paths`` (in order) in ``cache_dir/features.npy``, resumable.

    Rows are written batch by batch into a memory-mapped ``.npy``; ``manifest.json`` counts the
    rows done after each flushed batch, so a rerun continues where the last one stopped. A cache made
    for other paths, backbone, weights, size or resize policy is refused unless ``overwrite=True``.
    ``max_batches`` stops after that many batches (a time-boxed run; rerun to continue).
    ``flip=True`` caches the horizontally mirrored images instead (feature-level augmentation).
    ``engine``: what runs the backbone (``fashion_hier.engine.EngineSpec``; None: Keras), part of the identity.

    Returns:
        the (N, feature_dim) float32 array, memory-mapped read-only (complete unless ``max_batches`` stopped it).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("extract_features: paths is empty; pass the image paths of a catalogue (Catalog.paths)")
    if batch_size < 1:
        raise ValueError(f"extract_features: batch_size={batch_size}; expected a positive integer")
    from fashion_hier.engine import engine_spec

    cache_dir, spec = Path(cache_dir), engine_spec(engine)
    request = _request_identity(paths, backbone, weights, image_size, resize, flip, spec.describe())
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
                   max_batches=max_batches, progress=progress, flip=flip, engine=spec)
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
    return {key: manifest.get(key, _IDENTITY_DEFAULTS.get(key)) for key in _IDENTITY_KEYS}


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


def default_cache_dir(config: TrainConfig, paths: Sequence[str]) -> Path:
    """``output_dir/features/<backbone>_<h>x<w>_<hash of the request>``: one cache per catalogue and backbone."""
    from fashion_hier.engine import extraction_engine

    request = _request_identity([str(p) for p in paths], config.model.backbone, config.model.weights,
                                config.data.image_size, config.data.resize, engine=extraction_engine(config).describe())
    for key, value in _IDENTITY_DEFAULTS.items():  # Keras's caches keep the names they had before these keys existed
        if request[key] == value or key == "flip":
            del request[key]
    height, width = config.data.image_size
    return Path(config.output_dir) / "features" / f"{config.model.backbone}_{height}x{width}_{request_digest(request)}"


def request_digest(request: dict) -> str:
    """A short hash of a cache request (its identity keys): part of a default cache directory's name."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode("utf-8")).hexdigest()[:10]


def ensure_feature_caches(config: TrainConfig, paths: Sequence[str], cache_dir: str | os.PathLike | None = None, *,
                          flip: bool = False, overwrite: bool = False, batch_size: int = 32,
                          progress: bool = False) -> Path:
    """The feature cache of ``paths`` for ``config`` (and its flipped views with ``data.flip_features`` or
    ``flip``): reused when it already holds every image, extracted (or resumed) otherwise. Returns its directory.
    """
    from fashion_hier.engine import extraction_engine

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(config, paths)
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
                         engine=extraction_engine(config))
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
    digest = hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()
    return {"num_rows": len(paths), "paths_sha256": digest, "backbone": backbone,
            "weights": weights_identity(weights), "image_size": [int(s) for s in image_size],
            "resize": resize, "flip": bool(flip), "engine": engine, "source": source}


def read_manifest(cache_dir: Path) -> dict | None:
    """A cache's ``manifest.json`` (what it was made for and how far it got), or None when there is none.

    Shared by the feature and activation caches; a damaged one is a ``DamagedFileError``.
    """
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    return read_json(path, remedy=cache_remedy(cache_dir), keys=("num_rows", "rows_done"))


def cache_remedy(cache_dir: str | os.PathLike) -> str:
    """What to do about a damaged cache file: the cache is derived data, so recompute it."""
    return f"delete the cache directory {cache_dir} and run the same command again to recompute it"


def read_cache_paths(cache_dir: Path, manifest: dict) -> np.ndarray:
    """A cache's ``paths.txt``: one image path per row, as many as its manifest records."""
    path = Path(cache_dir) / PATHS_FILE
    if not path.is_file():
        raise DamagedFileError(path, "the file is missing", cache_remedy(cache_dir))
    paths = np.asarray(path.read_text(encoding="utf-8").splitlines(), dtype=str)
    if len(paths) != int(manifest["num_rows"]):
        raise DamagedFileError(path, f"{len(paths)} paths, {MANIFEST_FILE} records {manifest['num_rows']} rows",
                               cache_remedy(cache_dir))
    return paths


def open_cache_array(path: Path, shape: Sequence[int], *, mode: str = "r") -> np.memmap:
    """Memory-map a cache's ``.npy`` after checking it holds, in full, the array of ``shape`` its manifest records.

    Shared by the feature and activation caches. A truncated file would otherwise fail inside NumPy
    ("mmap length is greater than file size") without naming the file.
    """
    path = Path(path)
    shape = tuple(int(size) for size in shape)
    remedy = cache_remedy(path.parent)
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            stored_shape, _, dtype = read_header(handle)
            data_offset = handle.tell()
    except FileNotFoundError:
        raise DamagedFileError(path, "the file is missing", remedy) from None
    except ValueError as error:
        raise DamagedFileError(path, f"not a NumPy array file: {error}", remedy) from None
    if tuple(stored_shape) != shape:
        raise DamagedFileError(path, f"it holds a {stored_shape} array, {MANIFEST_FILE} records {shape}", remedy)
    needed, size = data_offset + math.prod(shape) * dtype.itemsize, path.stat().st_size
    if size < needed:
        raise DamagedFileError(path, f"{size:,} bytes, shorter than the {needed:,} bytes of the {shape[0]} rows "
                                     f"{MANIFEST_FILE} records", remedy)
    return np.lib.format.open_memmap(path, mode=mode)


def write_manifest(cache_dir: Path, manifest: dict) -> None:
    """Atomic replace, so an interrupted extraction never leaves a half-written manifest."""
    atomic_write_text(Path(cache_dir) / MANIFEST_FILE, json.dumps(manifest, indent=2))


def _check_identity(cache_dir: Path, manifest: dict, request: dict) -> None:
    cached = _identity(manifest)
    differences = [f"{key}: cache has {cached[key]!r}, request has {request[key]!r}"
                   for key in _IDENTITY_KEYS if cached[key] != request[key]]
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
    atomic_write_text(cache_dir / PATHS_FILE, "\n".join(paths) + "\n")
    manifest = {**request, "feature_dim": feature_dim, "dtype": "float32", "rows_done": 0, "seconds": 0.0}
    write_manifest(cache_dir, manifest)
    return manifest


def _fill_rows(features_path: Path, cache_dir: Path, manifest: dict, paths: list[str], *, backbone,
               weights, image_size, resize, batch_size, max_batches, progress, flip=False, engine=None) -> None:
    """Run the backbone over the rows not done yet, flushing and counting after every batch.

    The next batch is decoded in a background thread while the backbone runs on the current one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from fashion_hier.data import read_images

    from fashion_hier.engine import compile_engine

    extractor = compile_engine(feature_extractor(backbone, weights, image_size), engine)
    features = open_cache_array(features_path, _features_shape(manifest), mode="r+")
    done = manifest["rows_done"]
    starts = list(range(done, len(paths), batch_size))[:max_batches]

    def load(start: int) -> np.ndarray:
        """The batch's images; an unreadable one becomes a white image, recorded in the manifest and skipped
        by the head trainer, so one bad file never stops an extraction of thousands."""
        chunk = paths[start:start + batch_size]
        read = read_images(chunk, tuple(image_size), resize=resize)
        images = np.full((len(chunk), *tuple(image_size), 3), 255.0, np.float32)
        images[read.kept] = read.images
        for path, reason in read.failed:
            logger.warning("unreadable image %s (%s): its feature row is a placeholder, left out of training", path,
                           reason)
            manifest.setdefault("unreadable", {})[str(path)] = reason
        return np.ascontiguousarray(images[:, :, ::-1]) if flip else images

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
            write_manifest(cache_dir, manifest)
            bar.update(len(pooled))
    del features
