"""Activation cache: a backbone's feature maps at a cut layer, for each image and its mirror image.

Partial fine-tuning trains only the layers above a cut (e.g. ResNet-50's last stage). The layers
below never change, so their output is computed once per image -- for the original and the
horizontally flipped view, the augmentation the fine-tune draws from -- and kept in a
memory-mapped ``.npy`` of shape ``(N, 2, height, width, channels)`` (float16 by default: half the
disk, and the stages above start from a BatchNorm that absorbs the rounding). A ``manifest.json``
records what the cache was made from and how many rows are done, so an interrupted extraction
continues where it stopped and a cache made for other images, weights, size or cut is refused.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.cachefiles import (  # the one cache implementation; the feature cache is its other use
    ENGINE_SUBDIR,
    MANIFEST_FILE,
    check_identity,
    fill_rows,
    open_cache_array,
    paths_identity,
    read_cache_paths,
    read_manifest,
    row_index,
    start_cache,
    weights_identity,
)
from fashion_hier.cachefiles import identity as cache_identity

logger = logging.getLogger(__name__)

ACTIVATIONS_FILE = "activations.npy"
UNREADABLE_FILE = "unreadable.txt"
DEFAULT_CUT = "conv4_block6_out"   # the input of ResNet-50's last stage (conv5)
VIEWS = ("original", "flipped")
_IDENTITY_KEYS = ("num_rows", "paths_sha256", "backbone", "weights", "image_size", "resize", "cut_layer",
                  "dtype", "engine")
KERAS_ENGINE = "keras f32"  # ``EngineSpec.describe()`` of Keras: caches written before the key existed
_IDENTITY_DEFAULTS = {"engine": KERAS_ENGINE}


class ActivationCacheMismatch(ValueError):
    """The cache on disk was made for other images, weights, image size, resize policy or cut layer."""


@dataclass(frozen=True)
class ActivationCache:
    """A complete cache: ``activations[i, v]`` is the cut-layer output of ``paths[i]`` in view ``v``.

    ``readable[i]`` is False for an image that could not be decoded (its rows are zeros: skip them).
    """

    cache_dir: Path
    paths: np.ndarray           # (N,) str
    activations: np.ndarray     # (N, 2, h, w, c), memory-mapped read-only
    readable: np.ndarray        # (N,) bool
    manifest: dict

    def rows(self, paths: Sequence[str], *, source: str = "paths") -> np.ndarray:
        """Row index of each path (compared as real paths); an error names paths the cache lacks."""
        return row_index(self.paths, paths, rows_done=int(self.manifest["rows_done"]), error=ActivationCacheMismatch,
                         what=f"activation cache {self.cache_dir}", source=source,
                         remedy="extract activations for this catalogue first")


def cut_extractor(backbone: str = "resnet50", weights: str | os.PathLike | None = "imagenet",
                  image_size: tuple[int, int] = (224, 224), cut_layer: str = DEFAULT_CUT):
    """Raw RGB 0..255 in, the backbone's ``cut_layer`` output out (``preprocess`` + backbone below the cut).

    Built from the same ``build_backbone`` and ``Preprocess`` as ``build_model``, so the cached
    activations are exactly what the full model computes at that layer.
    """
    import keras

    from fashion_hier.models import Preprocess, backbone_spec, build_backbone

    input_shape = (*image_size, 3)
    network = build_backbone(backbone, weights, input_shape)
    cut = _layer(network, cut_layer)
    below = keras.Model(network.inputs, cut.output, name=f"{backbone}_to_{cut_layer}")
    image = keras.Input(shape=input_shape, name="image")
    pixels = Preprocess(backbone_spec(backbone).preprocess_mode, name="preprocess")(image)
    return keras.Model(image, below(pixels), name=f"{backbone}_activations")


def _layer(network, name: str):
    try:
        return network.get_layer(name)
    except ValueError:
        raise ValueError(f"cut layer {name!r} is not a layer of {network.name!r}; pass a layer name such as "
                         f"{DEFAULT_CUT!r} (ResNet-50: convN_blockM_out)") from None


def extract_activations(paths: Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike,
                        backbone: str = "resnet50", weights: str | os.PathLike | None = "imagenet",
                        image_size: tuple[int, int] = (224, 224), resize: str = "stretch",
                        cut_layer: str = DEFAULT_CUT, dtype: str = "float16", batch_size: int = 32,
                        overwrite: bool = False, max_batches: int | None = None, engine=None,
                        calibration_paths: Sequence[str] | None = None) -> ActivationCache:
    """Cut-layer activations of ``paths`` (original and flipped view) in ``cache_dir``, resumable.

    ``backbone`` is recorded (and built) as its trunk (``backbone_trunk``: ``resnet50_multiscale`` ->
    ``resnet50``): the layers below a cut are the trunk's, so one cache serves both names.
    Rows are written batch by batch and ``manifest.json`` counts those done after each flushed
    batch. Unreadable images are skipped (zero rows, listed in ``unreadable.txt`` and logged).
    ``max_batches`` stops after that many batches (rerun to continue). ``engine``: what runs the backbone
    (``fashion_hier.engine.EngineSpec``; None: Keras); it is part of the cache's identity, so maps computed
    at bf16 never pass for float32 ones; at int8 it is calibrated on a seeded sample of ``calibration_paths`` (the
    training split's photos; also in the identity) and kept in ``cache_dir/openvino``. Returns the cache (complete unless ``max_batches`` stopped it; then
    ``load_activation_cache`` refuses it until finished).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("extract_activations: paths is empty; pass the image paths of a catalogue")
    if batch_size < 1:
        raise ValueError(f"extract_activations: batch_size={batch_size}; expected a positive integer")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"extract_activations: dtype={dtype!r}; expected 'float16' or 'float32'")
    from fashion_hier.engine import compile_engine, engine_spec, extraction_identity, photo_inputs
    from fashion_hier.models import backbone_trunk

    spec = engine_spec(engine)
    backbone = backbone_trunk(backbone)
    cache_dir = Path(cache_dir)
    request = _request_identity(paths, backbone, weights, image_size, resize, cut_layer, dtype,
                                extraction_identity(spec, calibration_paths))
    manifest = None if overwrite else read_manifest(cache_dir)
    if manifest is not None:
        _check_identity(cache_dir, manifest, request)
        if 0 < manifest["rows_done"] < len(paths) and weights is None:
            raise ActivationCacheMismatch(
                f"{cache_dir} holds {manifest['rows_done']} rows from a randomly initialised backbone "
                f"(weights=None), which a new run cannot reproduce; pass overwrite=True")
        if manifest["rows_done"] >= len(paths):
            return load_activation_cache(cache_dir)  # complete: nothing to build or extract
    extractor = cut_extractor(backbone, weights, tuple(image_size), cut_layer)
    if manifest is None:
        manifest = _start_cache(cache_dir, paths, request, tuple(extractor.output.shape[1:]))
    extractor = compile_engine(extractor, spec, calibration_paths=calibration_paths,
                               inputs=photo_inputs(image_size, resize), cache_dir=cache_dir / ENGINE_SUBDIR)
    if manifest["rows_done"] < len(paths):
        _fill_rows(extractor, cache_dir, manifest, paths, image_size=tuple(image_size), resize=resize,
                   batch_size=batch_size, max_batches=max_batches)
    if manifest["rows_done"] < len(paths):
        return _open(cache_dir, manifest)
    return load_activation_cache(cache_dir)


def load_activation_cache(cache_dir: str | os.PathLike, *, expect: dict | None = None,
                          allow_unfinished: bool = False) -> ActivationCache:
    """Open a complete cache read-only; an unfinished or mismatched one is refused with one clear line.

    ``expect``: identity keys (e.g. ``{"cut_layer": "conv4_block6_out", "image_size": [224, 224]}``)
    the cache must have. ``allow_unfinished``: open a cache still being filled; only its first
    ``manifest["rows_done"]`` rows are served (``rows`` treats the others as missing).
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    if manifest is None:
        raise FileNotFoundError(f"{cache_dir} is not an activation cache (no {MANIFEST_FILE}); "
                                f"create one with fashion_hier.finetune.extract_activations")
    if manifest["rows_done"] < manifest["num_rows"] and not allow_unfinished:
        raise ActivationCacheMismatch(
            f"activation cache {cache_dir} is unfinished ({manifest['rows_done']} of {manifest['num_rows']} "
            f"rows); rerun extract_activations with the same arguments to continue it")
    if expect:
        differences = [f"{key}: cache has {manifest.get(key)!r}, expected {value!r}"
                       for key, value in expect.items() if manifest.get(key) != value]
        if differences:
            raise ActivationCacheMismatch(f"activation cache {cache_dir} does not match ("
                                          + "; ".join(differences) + "); extract a new cache")
    return _open(cache_dir, manifest)


def identity(manifest: dict) -> dict:
    """The keys that identify what a cache was computed from."""
    return cache_identity(manifest, _IDENTITY_KEYS, _IDENTITY_DEFAULTS)


def _open(cache_dir: Path, manifest: dict) -> ActivationCache:
    paths = read_cache_paths(cache_dir, manifest)
    unreadable_file = cache_dir / UNREADABLE_FILE
    unreadable = set(unreadable_file.read_text(encoding="utf-8").splitlines()) if unreadable_file.exists() else set()
    readable = np.array([p not in unreadable for p in paths], dtype=bool)
    activations = open_cache_array(cache_dir / ACTIVATIONS_FILE, manifest["shape"])
    return ActivationCache(cache_dir, paths, activations, readable, manifest)


def _request_identity(paths, backbone, weights, image_size, resize, cut_layer, dtype,
                      engine: str = KERAS_ENGINE) -> dict:
    return {**paths_identity(paths), "backbone": backbone,
            "weights": weights_identity(weights), "image_size": [int(s) for s in image_size],
            "resize": resize, "cut_layer": cut_layer, "dtype": dtype, "engine": engine}


def _check_identity(cache_dir: Path, manifest: dict, request: dict) -> None:
    check_identity(cache_dir, manifest, request, keys=_IDENTITY_KEYS, defaults=_IDENTITY_DEFAULTS,
                   error=ActivationCacheMismatch, what="activation cache")


def _start_cache(cache_dir: Path, paths: list[str], request: dict, map_shape: tuple) -> dict:
    (cache_dir / UNREADABLE_FILE).unlink(missing_ok=True)
    shape = (len(paths), len(VIEWS), *[int(s) for s in map_shape])
    return start_cache(cache_dir, paths, request, array_file=ACTIVATIONS_FILE, array_shape=shape,
                       array_dtype=request["dtype"], shape=list(shape), views=list(VIEWS))


def _load_batch(paths: list[str], image_size, resize) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decoded pixels of ``paths`` (zeros for an unreadable one) and ``(path, reason)`` of the unreadable ones."""
    from fashion_hier.data.images import ImageReadError, load_image

    batch = np.zeros((len(paths), *image_size, 3), np.float32)
    unreadable = []
    for row, path in enumerate(paths):
        try:
            batch[row] = load_image(path, image_size, resize=resize)
        except ImageReadError as error:
            logger.warning("skipped: %s", error)
            unreadable.append((path, str(error)))
    return batch, unreadable


def _fill_rows(extractor, cache_dir: Path, manifest: dict, paths: list[str], *, image_size, resize,
               batch_size, max_batches, progress: bool = False) -> None:
    """Run the backbone below the cut over the rows not done yet (``cachefiles.fill_rows``): each batch as one
    array of originals followed by their mirror images; an unreadable image's rows are zeros, listed in
    ``unreadable.txt``."""
    activations = open_cache_array(cache_dir / ACTIVATIONS_FILE, manifest["shape"], mode="r+")

    def compute(images: np.ndarray) -> np.ndarray:
        maps = np.asarray(extractor.predict_on_batch(np.concatenate([images, images[:, :, ::-1, :]])))
        count = len(images)
        return np.stack([maps[:count], maps[count:]], axis=1)

    def record_unreadable(start: int, failed: list) -> None:
        chunk = paths[start:start + batch_size]
        for path, _ in failed:
            activations[start + chunk.index(path)] = 0
        with (cache_dir / UNREADABLE_FILE).open("a", encoding="utf-8") as handle:
            handle.write("".join(f"{path}\n" for path, _ in failed))

    fill_rows(cache_dir, manifest, activations, paths, batch_size=batch_size, max_batches=max_batches,
              load=lambda chunk: _load_batch(chunk, image_size, resize), compute=compute,
              record_unreadable=record_unreadable, progress=progress, description="activations")
    logger.info("activations: %d of %d rows (%.1f images/s)", manifest["rows_done"], len(paths),
                manifest["rows_done"] / max(manifest["seconds"], 1e-9))
