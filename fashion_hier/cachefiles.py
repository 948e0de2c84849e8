"""The one implementation of the library's catalogue caches, whose two uses are the pooled-feature cache
(``fashion_hier.features.cache``) and the activation cache (``fashion_hier.finetune.activations``).

A cache is a folder: ``manifest.json`` (what it was computed from, and how many rows are done), ``paths.txt``
(one image per row) and a memory-mapped ``.npy`` of one row per image. Rows are computed batch by batch, the next
batch decoded in a background thread meanwhile; each batch is flushed and then counted in the manifest, written
atomically, so a killed extraction resumes where it stopped and a truncated file is named, not misread. A cache
computed for another request (other images, weights, size, engine...) is refused, naming what differs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fashion_hier.atomic import atomic_write_text
from fashion_hier.errors import DamagedFileError
from fashion_hier.jsonio import read_json

MANIFEST_FILE = "manifest.json"
PATHS_FILE = "paths.txt"
ENGINE_SUBDIR = "openvino"  # in a cache: the OpenVINO model that filled it (converted once, shared by its views)


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


def paths_identity(paths: Sequence[str]) -> dict:
    """``num_rows`` and ``paths_sha256``: the images a cache holds, in order."""
    return {"num_rows": len(paths), "paths_sha256": hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()}


def request_digest(request: dict) -> str:
    """A short hash of a cache request (its identity keys): part of a default cache directory's name."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode("utf-8")).hexdigest()[:10]


def identity(manifest: dict, keys: Sequence[str], defaults: dict) -> dict:
    """The identity ``keys`` of a manifest; a key written before it existed reads as its ``defaults`` value."""
    return {key: manifest.get(key, defaults.get(key)) for key in keys}


def check_identity(cache_dir: Path, manifest: dict, request: dict, *, keys: Sequence[str], defaults: dict,
                   error: type[Exception], what: str) -> None:
    """Raise ``error`` naming every identity key in which the cache differs from ``request``."""
    cached = identity(manifest, keys, defaults)
    differences = [f"{key}: cache has {cached[key]!r}, request has {request[key]!r}"
                   for key in keys if cached[key] != request[key]]
    if differences:
        raise error(f"{what} {cache_dir} was made for a different request (" + "; ".join(differences)
                    + "); pass another cache directory, or overwrite=True (--overwrite) to recompute it")


def row_index(cache_paths: Sequence[str], paths: Sequence[str], *, rows_done: int, error: type[Exception],
              what: str, remedy: str, source: str = "paths") -> np.ndarray:
    """Row of each of ``paths`` in a cache (compared as real paths: symlinks and relative parts resolved); rows not
    written yet count as missing, and missing paths are one ``error`` naming a few and ``remedy``."""
    import pandas as pd

    index = pd.Index(_real(cache_paths)).get_indexer(_real(paths))
    index[index >= int(rows_done)] = -1
    missing = [str(p) for p, i in zip(paths, index) if i < 0]
    if missing:
        raise error(f"{len(missing)} of {len(index)} {source} are not in the {what} (e.g. {missing[:3]}); {remedy}")
    return index


def _real(paths: Sequence[str]) -> list[str]:
    return [os.path.realpath(str(p)) for p in paths]


def start_cache(cache_dir: Path, paths: list[str], request: dict, *, array_file: str, array_shape: Sequence[int],
                array_dtype: str, **extra: Any) -> dict:
    """A new cache: the zero-filled array, ``paths.txt`` and a manifest with ``rows_done`` 0; returns the manifest."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(cache_dir / array_file, mode="w+", dtype=array_dtype, shape=tuple(array_shape))
    del array
    atomic_write_text(cache_dir / PATHS_FILE, "\n".join(paths) + "\n")
    manifest = {**request, **extra, "rows_done": 0, "seconds": 0.0}
    write_manifest(cache_dir, manifest)
    return manifest


def fill_rows(cache_dir: Path, manifest: dict, array: np.ndarray, paths: list[str], *, batch_size: int,
              max_batches: int | None, load: Callable[[list[str]], tuple[Any, list]],
              compute: Callable[[Any], np.ndarray], record_unreadable: Callable[[int, list], None] | None = None,
              progress: bool = False, description: str = "") -> None:
    """Compute the rows not done yet, ``batch_size`` at a time, flushing and counting each batch in the manifest.

    ``load(batch_paths)`` -> ``(inputs, failed)`` runs in a background thread while ``compute(inputs)`` -> rows
    runs on the batch before; ``failed`` lists ``(path, reason)`` of unreadable images, passed with the batch's
    first row to ``record_unreadable`` before the batch is counted. ``max_batches`` stops early (rerun to go on).
    """
    from tqdm.auto import tqdm

    starts = list(range(int(manifest["rows_done"]), len(paths), batch_size))[:max_batches]
    with ThreadPoolExecutor(max_workers=1) as decoder, \
            tqdm(total=len(paths), initial=int(manifest["rows_done"]), unit="img", disable=not progress,
                 desc=description) as bar:
        pending = decoder.submit(load, paths[starts[0]:starts[0] + batch_size]) if starts else None
        for position, start in enumerate(starts):
            began = time.perf_counter()
            inputs, failed = pending.result()
            if position + 1 < len(starts):
                following = starts[position + 1]
                pending = decoder.submit(load, paths[following:following + batch_size])
            rows = compute(inputs)
            array[start:start + len(rows)] = rows
            if failed and record_unreadable is not None:
                record_unreadable(start, failed)
            array.flush()
            manifest["rows_done"] = start + len(rows)
            manifest["seconds"] += time.perf_counter() - began
            write_manifest(cache_dir, manifest)
            bar.update(len(rows))


def read_manifest(cache_dir: Path) -> dict | None:
    """A cache's ``manifest.json`` (what it was made for and how far it got), or None when there is none.

    A damaged one is a ``DamagedFileError``.
    """
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    return read_json(path, remedy=cache_remedy(cache_dir), keys=("num_rows", "rows_done"))


def write_manifest(cache_dir: Path, manifest: dict) -> None:
    """Atomic replace, so an interrupted extraction never leaves a half-written manifest."""
    atomic_write_text(Path(cache_dir) / MANIFEST_FILE, json.dumps(manifest, indent=2))


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
