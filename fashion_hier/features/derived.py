"""Pooled-feature caches derived from an activation cache: each photo goes through the backbone once per view.

The recipe needs, for every photo and its mirror image, both the backbone's maps at the fine-tune's cut
(``fashion_hier.finetune``) and the pooled features the head trains on. The pooled features of a
backbone whose pooling reads only layers at or above the cut (``resnet50``, ``resnet50_multiscale``: conv4
and conv5 pooled) are the layers above the cut applied to those maps, so they are computed from the cached
maps instead of from the photos again: about a fifth of a forward pass instead of a whole one. The result
is an ordinary feature cache (``FeatureCache``; the mirror images' in its ``flipped`` folder) kept inside
the activation cache it came from, its manifest naming that source, so it is recomputed only with it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.config import TrainConfig
from fashion_hier.features.cache import (
    ENGINE_SUBDIR,
    FEATURES_FILE,
    _check_identity,
    _features_shape,
    _request_identity,
    _start_cache,
    flipped_cache_dir,
    load_feature_cache,
    open_cache_array,
    read_manifest,
    write_manifest,
)

logger = logging.getLogger(__name__)

POOLED_SUBDIR = "pooled"  # in an activation cache: the pooled features derived from it
BATCH_SIZE = 64


def derived_cache_dir(activation_cache_dir: str | Path) -> Path:
    """Where the pooled features derived from an activation cache live: a folder inside it."""
    return Path(activation_cache_dir) / POOLED_SUBDIR


def derive_feature_caches(config: TrainConfig, activation_cache, *, engine=None,
                          calibration_paths: Sequence[str] | None = None, progress: bool = False) -> Path:
    """The pooled features of ``activation_cache``'s photos (view 0) and their mirror images (view 1), computed
    by ``config``'s backbone above its cut; reused when complete, resumed when not. Returns the cache directory.

    ``engine`` (``fashion_hier.engine.EngineSpec``; default the config's ``training.extraction_engine``) runs
    the layers above the cut; at int8 it is calibrated on the cached maps of a seeded sample of
    ``calibration_paths`` (default the config's, ``engine.extraction_calibration_paths``). Rows of images the activation cache could not read are placeholders, listed as
    unreadable, as the feature extractor lists them.
    """
    from fashion_hier.engine import compile_engine, engine_spec, extraction_calibration_paths, extraction_engine
    from fashion_hier.engine import extraction_identity
    from fashion_hier.finetune.partial import upper_backbone

    spec = engine_spec(engine) if engine is not None else extraction_engine(config)
    if spec.precision == "int8" and calibration_paths is None:
        calibration_paths = extraction_calibration_paths(config)
    cache_dir = derived_cache_dir(activation_cache.cache_dir)
    paths = [str(path) for path in activation_cache.paths]
    source = f"activations {activation_cache.manifest['paths_sha256'][:12]} at {activation_cache.manifest['cut_layer']}"
    source += f" ({activation_cache.manifest.get('engine', 'keras f32')})"
    upper = None
    for view, directory in enumerate((cache_dir, flipped_cache_dir(cache_dir))):
        request = _request_identity(paths, config.model.backbone, config.model.weights, config.data.image_size,
                                    config.data.resize, flip=view == 1, source=source,
                                    engine=extraction_identity(spec, calibration_paths))
        manifest = read_manifest(directory)
        if manifest is not None:
            _check_identity(directory, manifest, request)
        else:
            manifest = _start_cache(directory, paths, request)
        if manifest["rows_done"] >= len(paths):
            logger.info("using the derived feature cache %s", directory)
            continue
        if upper is None:
            upper = compile_engine(
                upper_backbone(config.model.backbone, config.model.weights, tuple(config.data.image_size),
                               activation_cache.manifest["cut_layer"]),
                spec, calibration_paths=calibration_paths,
                inputs=lambda sample: _original_maps(activation_cache, sample),
                cache_dir=cache_dir / ENGINE_SUBDIR)
        _fill_rows(upper, activation_cache, view, directory, manifest, progress=progress)
        logger.info("pooled features of the %s views derived from %s in %.0f s", ("original", "mirrored")[view],
                    activation_cache.cache_dir, manifest["seconds"])
    load_feature_cache(cache_dir)  # complete and whole
    return cache_dir


def _original_maps(activation_cache, paths: list[str]) -> np.ndarray:
    """The cached maps of ``paths``' photos (original view; unreadable photos left out), as float32."""
    rows = activation_cache.rows(paths, source="calibration photos")
    rows = np.sort(rows[activation_cache.readable[rows]])
    return np.asarray(activation_cache.activations[rows, 0], dtype=np.float32)


def _fill_rows(upper, activation_cache, view: int, directory: Path, manifest: dict, *, progress: bool) -> None:
    """Run ``upper`` over the cached maps of ``view`` for the rows not done yet; flush and count after each batch."""
    from tqdm.auto import tqdm

    features = open_cache_array(directory / FEATURES_FILE, _features_shape(manifest), mode="r+")
    total = len(activation_cache.paths)
    unreadable = {str(path) for path in activation_cache.paths[~activation_cache.readable]}
    with tqdm(total=total, initial=manifest["rows_done"], unit="img", disable=not progress,
              desc="pooled features from activations") as bar:
        for start in range(manifest["rows_done"], total, BATCH_SIZE):
            began = time.perf_counter()
            stop = min(start + BATCH_SIZE, total)
            maps = np.asarray(activation_cache.activations[start:stop, view], dtype=np.float32)
            features[start:stop] = np.asarray(upper.predict_on_batch(maps), dtype=np.float32)
            for path in activation_cache.paths[start:stop]:
                if str(path) in unreadable:
                    manifest.setdefault("unreadable", {})[str(path)] = "unreadable at activation extraction"
            features.flush()
            manifest["rows_done"] = stop
            manifest["seconds"] += time.perf_counter() - began
            write_manifest(directory, manifest)
            bar.update(stop - start)
    del features
