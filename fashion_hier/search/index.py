"""The similarity index directory: a FAISS index of unit vectors, the images behind it, and the run that made it.

Files: ``index.faiss``, ``images.csv`` (id = row of the index, image_path) and ``index.json`` (the model file's
sha256, the embedding, the index kind and its search settings). Vectors are L2-normalised, so distances are
``1 - cosine``. Up to ``APPROXIMATE_THRESHOLD`` images the index is exact (``IndexFlatIP``: inner product =
cosine); above, it is ``PCA128,IVF,Flat`` refined on 8-bit copies of the full vectors (``ivf``): candidates come
from a 128-d PCA projection's inverted lists (L2 on unit vectors ranks as cosine does), and the best
``IVF_REFINE_FACTOR`` x k of them are re-ranked in the full dimension. At 1M vectors of 3,072-d on 2 cores it
builds in minutes, answers in about a millisecond with recall@10 >= 0.95 against exact search and holds 3.6 GB
(``experiments/results/production/search.md``); HNSW, the earlier choice, took hours to build there and held the
full float32 vectors (12 GB). Indexes of either earlier kind still load. ``extend`` adds to a trained index
without rebuilding it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fashion_hier.errors import DamagedFileError
from fashion_hier.jsonio import read_json
from fashion_hier.engine import EngineSpec, engine_spec
from fashion_hier.labels import IMAGE_PATH
from fashion_hier.predict import Predictor
from fashion_hier.rundir import RunDir
from fashion_hier.search.embed import Embedder

logger = logging.getLogger(__name__)

INDEX_FILE, IMAGES_FILE, RECORD_FILE = "index.faiss", "images.csv", "index.json"
APPROXIMATE_THRESHOLD = 100_000  # exact search up to here: ~0.1 s per query on one core at 2048-d
IVF_REDUCED_DIMENSION = 128  # the PCA projection the inverted lists are built on
IVF_REFINE_FACTOR = 16       # candidates per neighbour re-ranked on the full vectors (8-bit scalar quantized)
IVF_TRAINING_SAMPLE = 200_000  # vectors PCA and the k-means of the lists are trained on
EMBED_CHUNK = 20_000  # images embedded, then added, at a time by build_index
# id: the catalogue id, the image's file name without its extension (the library finds a catalogue row's photo as
# IMAGE_DIR/<id>.<ext>); position: the image's row in the index
RESULT_COLUMNS = ("query", "rank", "id", IMAGE_PATH, "distance", "position")


def catalogue_id(image_path: str) -> str:
    """The catalogue id of an image: its file name without the extension (``images/15970.jpg`` -> ``15970``)."""
    return Path(image_path).stem


class IndexMismatchError(ValueError):
    """The index was built by another model file than the one given."""


def model_sha256(run_or_model: str | os.PathLike) -> str:
    """sha256 of the model file of a run directory (its final model) or of a ``.keras`` file."""
    path = Path(run_or_model)
    path = RunDir(path).model if path.is_dir() else path
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SimilarityIndex:
    """Nearest-neighbour search over embedded catalogue images (use ``build_index`` / ``load_index``)."""

    def __init__(self, faiss_index, image_paths: Sequence[str], record: dict, embedder: Embedder | None = None):
        self.faiss_index, self.image_paths, self.record = faiss_index, list(image_paths), dict(record)
        self.embedder = embedder

    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def approximate(self) -> bool:
        return self.record["kind"] != "flat"

    def search(self, queries, k: int = 10) -> pd.DataFrame:
        """The ``k`` nearest images of each query (paths or an (N, h, w, 3) array): ``RESULT_COLUMNS``.

        Unreadable query images are logged and left out.
        """
        if isinstance(queries, (str, os.PathLike)):
            queries = [queries]
        if isinstance(queries, np.ndarray):
            vectors, names = self._embedder().embed_images(queries), [f"array[{i}]" for i in range(len(queries))]
        else:
            vectors, names, _ = self._embedder().embed_paths(list(queries))
        return self.search_vectors(vectors, k, names)

    def search_vectors(self, vectors: np.ndarray, k: int = 10, names: Sequence[str] | None = None) -> pd.DataFrame:
        """The ``k`` nearest images of unit query vectors (as ``Embedder`` gives)."""
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        names = list(names) if names is not None else [str(i) for i in range(len(vectors))]
        scores, ids = self.faiss_index.search(np.ascontiguousarray(vectors, np.float32), min(k, len(self)))
        # inner product = cosine (flat, hnsw); squared L2 between unit vectors = 2 - 2 cosine (ivf)
        distances = scores / 2.0 if self.record["kind"] == "ivf" else 1.0 - scores
        rows = [(name, rank + 1, catalogue_id(self.image_paths[i]), self.image_paths[i], float(d), int(i))
                for name, row_ids, row_distances in zip(names, ids, distances)
                for rank, (i, d) in enumerate(zip(row_ids, row_distances)) if i >= 0]
        return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))

    def extend(self, image_paths: Sequence[str | os.PathLike], *, batch_size: int = 32) -> list[tuple[str, str]]:
        """Embed and add new images (already indexed paths are skipped); returns the unreadable ones."""
        known = set(self.image_paths)
        new = list(dict.fromkeys(str(p) for p in image_paths if str(p) not in known))
        vectors, kept, unreadable = self._embedder().embed_paths(new, batch_size=batch_size)
        if len(kept):
            self.faiss_index.add(vectors)
            self.image_paths += kept
        self.record["count"] = len(self)
        return unreadable

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the index directory (atomically: a reader never sees a half-written index)."""
        import faiss

        from fashion_hier.atomic import atomic_directory
        from fashion_hier.jsonio import write_json

        with atomic_directory(out_dir) as target:
            faiss.write_index(self.faiss_index, str(target / INDEX_FILE))
            pd.DataFrame({"id": [catalogue_id(path) for path in self.image_paths], IMAGE_PATH: self.image_paths}).to_csv(
                target / IMAGES_FILE, index=False)
            write_json(target / RECORD_FILE, {**self.record, "count": len(self)})
        return Path(out_dir)

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            raise ValueError("this index was loaded without its run; pass run= to load_index to embed new images")
        return self.embedder


def new_faiss_index(dimension: int, expected_count: int, *, threshold: int = APPROXIMATE_THRESHOLD
                    ) -> tuple[object, str, dict]:
    """``(index, kind, search settings)``: exact inner product up to ``threshold`` vectors, ``ivf`` above.

    ``ivf`` needs training (``train_index``); its settings (lists probed, refine factor) follow the count:
    about 4 sqrt(N) lists (a power of two, 16 to 4,096), a 32nd of them probed (all of them up to 16 lists).
    """
    import faiss

    if expected_count <= threshold:
        return faiss.IndexFlatIP(dimension), "flat", {}
    lists = int(2 ** np.clip(round(np.log2(4 * np.sqrt(max(expected_count, 1)))), 4, 12))
    reduced = min(IVF_REDUCED_DIMENSION, dimension)
    index = faiss.index_factory(dimension, f"PCA{reduced},IVF{lists},Flat,Refine(SQ8)", faiss.METRIC_L2)
    settings = {"nlist": lists, "nprobe": max(min(lists, 16), lists // 32), "k_factor": IVF_REFINE_FACTOR,
                "pca": reduced}
    apply_search_settings(index, settings)
    return index, "ivf", settings


def apply_search_settings(faiss_index, settings: dict) -> None:
    """The probe count and refine factor of an ``ivf`` index (set on load too: they are search-time settings)."""
    import faiss

    if "nprobe" in settings:
        faiss.extract_index_ivf(faiss_index).nprobe = int(settings["nprobe"])
    if "k_factor" in settings:
        faiss.downcast_index(faiss_index).k_factor = float(settings["k_factor"])


def train_index(faiss_index, vectors: np.ndarray, *, sample: int = IVF_TRAINING_SAMPLE, seed: int = 0) -> None:
    """Train an index that needs it (PCA and the lists' k-means) on a seeded sample of ``vectors``."""
    if faiss_index.is_trained:
        return
    rows = np.random.default_rng(seed).permutation(len(vectors))[:sample]
    faiss_index.train(np.ascontiguousarray(vectors[np.sort(rows)], np.float32))


def build_index(run_or_model: str | os.PathLike, image_paths: Sequence[str | os.PathLike],
                out_dir: str | os.PathLike | None = None, *, embedding: str = "pooled", batch_size: int = 32,
                threshold: int = APPROXIMATE_THRESHOLD, engine: EngineSpec | str | None = None
                ) -> tuple[SimilarityIndex, list[tuple[str, str]]]:
    """Embed ``image_paths`` and index them; written to ``out_dir`` when given.

    Returns the index and the ``(path, reason)`` of images skipped as unreadable. ``engine``
    (``fashion_hier.engine``) embeds them, and is recorded, so that queries are embedded the same way.
    Images are embedded ``EMBED_CHUNK`` at a time and added as they come (an ``ivf`` index first trains on
    the first ``IVF_TRAINING_SAMPLE``), so memory holds the index and one chunk, not every vector.
    """
    model_path = _model_path(run_or_model)
    engine = engine_spec(engine)
    embedder = Embedder(Predictor.load(model_path, engine=engine), embedding)
    paths = list(image_paths)
    faiss_index, kind, settings = new_faiss_index(embedder.dimension, len(paths), threshold=threshold)
    kept, unreadable, untrained = [], [], []
    for start in range(0, len(paths), EMBED_CHUNK):
        vectors, chunk_kept, chunk_unreadable = embedder.embed_paths(paths[start:start + EMBED_CHUNK],
                                                                     batch_size=batch_size)
        kept += chunk_kept
        unreadable += chunk_unreadable
        if faiss_index.is_trained:
            faiss_index.add(vectors)
            continue
        untrained.append(vectors)  # held until the training sample is complete (or the paths end)
        if sum(map(len, untrained)) >= IVF_TRAINING_SAMPLE or start + EMBED_CHUNK >= len(paths):
            held = np.concatenate(untrained)
            untrained = []
            if len(held):
                train_index(faiss_index, held)
                faiss_index.add(held)
    if not kept:
        raise ValueError(f"none of the {len(paths)} images could be read; nothing to index")
    record = {"model_path": str(Path(model_path).resolve()), "model_sha256": model_sha256(model_path),
              "embedding": embedding, "dimension": embedder.dimension, "kind": kind, "metric": "cosine",
              "search": settings, "engine": {"engine": engine.engine, "precision": engine.precision}}
    index = SimilarityIndex(faiss_index, kept, record, embedder)
    if out_dir is not None:
        index.save(out_dir)
    return index, unreadable


def load_index(index_dir: str | os.PathLike, run: str | os.PathLike | None = None, *,
               engine: EngineSpec | str | None = None) -> SimilarityIndex:
    """Read an index directory; with ``run`` (run directory or ``.keras``), check it is the model that built it.

    Raises IndexMismatchError when ``run``'s model file differs from the one recorded in the index, or when
    ``engine`` is given and is not the engine that embedded it (queries and extensions embed the same way).
    Without ``run`` the recorded model path is used for embedding queries.
    """
    index_dir = Path(index_dir)
    missing = [name for name in (INDEX_FILE, IMAGES_FILE, RECORD_FILE) if not (index_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{index_dir} is not a similarity index (no {', '.join(missing)}); "
                                f"build one with 'fashion-hier index'")
    remedy = f"rebuild the index with 'fashion-hier index --run RUN --images IMAGES --out {index_dir}'"
    record = read_json(index_dir / RECORD_FILE, remedy=remedy, keys=("model_path", "model_sha256", "embedding"))
    faiss_index = _read_faiss_index(index_dir / INDEX_FILE, remedy)
    apply_search_settings(faiss_index, record.get("search", {}))
    model_path = _model_path(run) if run is not None else record["model_path"]
    if not Path(model_path).exists():
        raise FileNotFoundError(f"the model that built {index_dir} ({model_path}) is gone; pass --run with it")
    if model_sha256(model_path) != record["model_sha256"]:
        raise IndexMismatchError(f"{index_dir} was built by the model {record['model_path']} (sha256 "
                                 f"{record['model_sha256'][:12]}...), not by {model_path}; query it with that run "
                                 f"or rebuild the index with 'fashion-hier index --run {run or model_path}'")
    image_paths = _read_image_paths(index_dir / IMAGES_FILE, faiss_index.ntotal, remedy)
    recorded = engine_spec(**record.get("engine", {}))  # indexes written before 0.4 were embedded by Keras
    asked = None if engine is None else engine_spec(engine).describe()
    if asked not in (None, recorded.describe()):
        raise IndexMismatchError(f"{index_dir} was embedded by {recorded.describe()}, not {asked}; embed with that "
                                 f"engine (--engine {recorded.engine} --precision {recorded.precision}) or rebuild "
                                 "the index")
    embedder = Embedder(Predictor.load(model_path, engine=recorded), record["embedding"])
    return SimilarityIndex(faiss_index, image_paths, record, embedder)


def _read_faiss_index(path: Path, remedy: str):
    """``faiss.read_index``, with a damaged file named instead of FAISS's C++ assertion text."""
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:
        detail = re.sub(r"^Error in .* at \S+:\d+: (Error: )?", "", " ".join(str(error).split()))  # no C++ names
        raise DamagedFileError(path, f"FAISS cannot read it: {detail}", remedy) from None


def _read_image_paths(path: Path, count: int, remedy: str) -> list[str]:
    """The indexed image paths (``images.csv``), one per vector of the index."""
    try:
        image_paths = pd.read_csv(path, dtype={IMAGE_PATH: str})[IMAGE_PATH].tolist()
    except (ValueError, KeyError) as error:  # pandas' parser and decoding errors are ValueErrors
        raise DamagedFileError(path, f"not a table of image paths: {error}", remedy) from None
    if len(image_paths) != count:
        raise DamagedFileError(path, f"{len(image_paths)} images for the {count} vectors of {INDEX_FILE}", remedy)
    return image_paths


def _model_path(run_or_model) -> str:
    """Where the model lives: what ``Predictor.load`` takes (a run directory, or a .keras file)."""
    if isinstance(run_or_model, Predictor):
        raise TypeError("pass the run directory or .keras file (the index records the model file's sha256)")
    path = Path(run_or_model)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a run directory written by 'fashion-hier train' "
                                f"or a .keras file")
    return str(path)
