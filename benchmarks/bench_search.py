"""Benchmark of the similarity index at catalogue scale: build time, query latency, recall@10, memory.

Vectors are synthetic unit vectors: with ``--like FEATURES.npy`` drawn like real photo embeddings (a Gaussian
mixture fitted to them: 256 k-means centres, around each the real residuals' covariance — its top 128 principal
directions with their variances, the rest of the variance per dimension — clipped at 0 as ReLU features are),
else 2048-d from a mixture of 1,000 Gaussian clusters (``--uniform``: structureless noise, the
worst case for approximate search). For each size:

* ``flat`` (``IndexFlatIP``, exact, what ``build_index`` uses up to 100,000 images);
* ``ivf`` (``fashion_hier.search.index.new_faiss_index`` above 100,000: PCA to 128-d, inverted lists, the best
  16 x k candidates re-ranked on 8-bit copies of the full vectors), trained on the first 200,000 vectors;
* ``hnsw`` (``IndexHNSWFlat`` M=32, efConstruction=80, efSearch=128, the earlier choice above 100,000), built
  only up to ``--hnsw-max`` vectors because its build on 2 CPU cores takes hours at 1M;
* ``ivfpq`` (``IVF{min(4*sqrt(n), 1024)},PQ64``, nprobe=32, 64 bytes a vector), with ``--ivfpq``.

At sizes above ``--in-memory-max`` the exact search streams the vectors in chunks (same arithmetic
as ``IndexFlatIP``, without holding them all): its latency is the search time of a batch of queries per query.
"index MB" is the serialized index; "peak RSS" the process's, all of the benchmark included.

    python benchmarks/bench_search.py --sizes 10000 1000000
    python benchmarks/bench_search.py --like CACHE/features.npy --sizes 1000000 --real-recall

With ``--run RUN`` it measures instead how well a run's embeddings retrieve: on the run's ``--split``,
the share of each image's top-10 neighbours (itself excluded) with the image's subcategory, for the
pooled and the head embedding (``fashion_hier.search.build_index``, exact cosine search).
"""
from __future__ import annotations

import argparse
import functools
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fashion_hier.search.index import new_faiss_index, train_index  # noqa: E402

DIMENSION, CLUSTERS, CHUNK, REAL_CLUSTERS = 2048, 1000, 50_000, 256


@functools.lru_cache(maxsize=1)
def real_mixture(path: str, components: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(centres, cluster weights, residual directions scaled by their spread (r, d), remaining per-dimension
    spread (d,)) of a Gaussian mixture fitted to real unit embeddings."""
    real = np.load(path).astype(np.float32)
    faiss.normalize_L2(real)
    kmeans = faiss.Kmeans(real.shape[1], REAL_CLUSTERS, niter=20, seed=0)
    kmeans.train(real)
    _, labels = kmeans.index.search(real, 1)
    residuals = real - kmeans.centroids[labels[:, 0]]
    _, singular, directions = np.linalg.svd(residuals, full_matrices=False)
    scaled = directions[:components] * (singular[:components, None] / np.sqrt(len(real)))
    remainder = residuals - residuals @ directions[:components].T @ directions[:components]
    weights = np.bincount(labels[:, 0], minlength=REAL_CLUSTERS) / len(real)
    return kmeans.centroids, weights, scaled.astype(np.float32), remainder.std(axis=0).astype(np.float32)


def vectors(start: int, count: int, *, dimension: int, uniform: bool, seed: int = 0, like: str | None = None
            ) -> np.ndarray:
    """Rows ``start..start+count`` of the synthetic collection, generated chunk-wise and reproducibly."""
    if like:
        mixture = real_mixture(like)
    else:
        centres = np.random.default_rng(seed).standard_normal((CLUSTERS, dimension), dtype=np.float32)
    rows = []
    for chunk in range(start // CHUNK, (start + count - 1) // CHUNK + 1):
        rng = np.random.default_rng([seed, chunk + 1])
        noise = rng.standard_normal((CHUNK, dimension), dtype=np.float32)
        if like:
            centres, weights, scaled, remainder = mixture
            picked = rng.choice(len(weights), CHUNK, p=weights)
            along = rng.standard_normal((CHUNK, len(scaled)), dtype=np.float32) @ scaled
            block = np.maximum(centres[picked] + along + remainder * noise, 0)
        else:
            block = noise if uniform else centres[rng.integers(0, CLUSTERS, CHUNK)] + 0.7 * noise
        rows.append(block)
    block = np.concatenate(rows)[start % CHUNK:start % CHUNK + count]
    faiss.normalize_L2(block)
    return np.ascontiguousarray(block)


def exact_neighbours(size: int, queries: np.ndarray, k: int, **kw) -> tuple[np.ndarray, float]:
    """Exact top-k ids by streaming chunks through IndexFlatIP; and the search seconds (generation excluded)."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    seconds = 0.0
    for start in range(0, size, CHUNK):
        block = vectors(start, min(CHUNK, size - start), **kw)
        began = time.perf_counter()
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        scores, ids = flat.search(queries, k)
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_ids = np.concatenate([best_ids, ids + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_ids = np.take_along_axis(merged_ids, order, 1)
        seconds += time.perf_counter() - began
    return best_ids, seconds


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def time_queries(index, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Median single-query latency in ms (one query per call, as a web request would), and the ids found."""
    latencies, ids = [], []
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query per call: one thread, no OpenMP spinning on a shared machine
    for query in queries:
        began = time.perf_counter()
        _, found = index.search(query[None], k)
        latencies.append(time.perf_counter() - began)
        ids.append(found[0])
    faiss.omp_set_num_threads(threads)
    return 1000 * float(np.median(latencies)), np.array(ids)


def build(kind: str, size: int, **kw):
    dimension = kw["dimension"]
    began = time.perf_counter()
    generation = 0.0
    if kind == "ivf":
        index, _, _ = new_faiss_index(dimension, size, threshold=0)
        generated = time.perf_counter()
        sample = vectors(0, min(size, 200_000), **kw)
        generation += time.perf_counter() - generated
        train_index(index, sample)
        del sample
    elif kind == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = 80, 128
    else:
        lists = min(int(4 * np.sqrt(size)), 1024)
        index = faiss.index_factory(dimension, f"IVF{lists},PQ64", faiss.METRIC_INNER_PRODUCT)
        index.train(vectors(0, min(size, max(40 * lists, 20_000)), **kw))
        index.nprobe = 32
    for start in range(0, size, CHUNK):
        generated = time.perf_counter()
        block = vectors(start, min(CHUNK, size - start), **kw)
        generation += time.perf_counter() - generated
        index.add(block)
    return index, time.perf_counter() - began - generation


def subcategory_match_share(run: str, split: str, k: int) -> None:
    """Share of the top-k neighbours with the query's subcategory, per embedding, on a run's split."""
    from fashion_hier.evaluate import prepare, read_split
    from fashion_hier.labels import LabelSpace
    from fashion_hier.rundir import RunDir

    from fashion_hier.search import build_index

    data = prepare(read_split(RunDir(run).path, split), LabelSpace.load(RunDir(run).labels), split)
    frame = data.frame  # rows whose labels the run knows, with their encoded subcategory
    subcategory_of = dict(zip(frame["image_path"], data.targets["subcategory"]))
    print(f"{len(frame)} images of {run} split {split}; top-{k} neighbours, the query itself excluded")
    print("| embedding | dimension | share of neighbours with the query's subcategory | seconds |")
    print("|---|---:|---:|---:|")
    for embedding in ("pooled", "head"):
        began = time.perf_counter()
        index, unreadable = build_index(run, frame["image_path"].tolist(), embedding=embedding)
        found = index.search_vectors(index.faiss_index.reconstruct_n(0, len(index)), k + 1, index.image_paths)
        found = found[found["query"] != found["image_path"]].groupby("query").head(k)
        same = found["image_path"].map(subcategory_of) == found["query"].map(subcategory_of)
        print(f"| {embedding} | {index.record['dimension']} | {same.mean():.3f} | {time.perf_counter() - began:.0f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--dimension", type=int, default=DIMENSION)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hnsw-max", type=int, default=100_000)
    parser.add_argument("--in-memory-max", type=int, default=200_000)
    parser.add_argument("--uniform", action="store_true")
    parser.add_argument("--like", help="a features.npy of real photos: draw the vectors like them (their dimension)")
    parser.add_argument("--ivfpq", action="store_true", help="also the IVF-PQ row")
    parser.add_argument("--real-recall", action="store_true",
                        help="with --like: also the ivf index's recall on the real vectors themselves")
    parser.add_argument("--run", help="measure a run's neighbour quality on --split instead")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    if args.run:
        subcategory_match_share(args.run, args.split, args.k)
        return
    dimension = int(np.load(args.like, mmap_mode="r").shape[1]) if args.like else args.dimension
    kw = {"dimension": dimension, "uniform": args.uniform, "like": args.like}
    queries = vectors(0, args.queries, seed=1, **kw)
    shape = f"drawn like {args.like}" if args.like else "uniform" if args.uniform else "clustered"
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads to build, 1 to query, {dimension}-d "
          f"{shape} vectors, {args.queries} queries, k={args.k}")
    if args.like and args.real_recall:
        real_recall(args.like, args.queries, args.k)
    print("| vectors | index | build s | query ms (median, 1 query) | recall@10 vs exact | index MB | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        truth, exact_seconds = exact_neighbours(size, queries, args.k, **kw)
        kinds = ["flat"] if size <= args.in_memory_max else []
        kinds += ["ivf"]
        kinds += ["hnsw"] if size <= args.hnsw_max else []
        kinds += ["ivfpq"] if args.ivfpq else []
        if size > args.in_memory_max:
            print(f"| {size:,} | flat (streamed) | - | {1000 * exact_seconds / len(queries):.1f} (batch of "
                  f"{len(queries)}, per query) | 1.000 | {size * dimension * 4 / 1e6:.0f} (not built) | - |",
                  flush=True)
        for kind in kinds:
            index, build_seconds = build(kind, size, **kw)
            latency, found = time_queries(index, queries, args.k)
            megabytes = faiss.serialize_index(index).nbytes / 1e6
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
            print(f"| {size:,} | {kind} | {build_seconds:.1f} | {latency:.2f} | {recall_at_k(found, truth):.3f} | "
                  f"{megabytes:.0f} | {peak:.0f} |", flush=True)
            del index


def real_recall(path: str, queries: int, k: int) -> None:
    """The ivf index (forced, at the real collection's own settings) on the real vectors: recall@k against exact."""
    real = np.load(path).astype(np.float32)
    faiss.normalize_L2(real)
    chosen = real[np.random.default_rng(1).choice(len(real), queries, replace=False)]
    exact = faiss.IndexFlatIP(real.shape[1])
    exact.add(real)
    _, truth = exact.search(chosen, k)
    index, _, settings = new_faiss_index(real.shape[1], len(real), threshold=0)
    train_index(index, real)
    index.add(real)
    latency, found = time_queries(index, chosen, k)
    print(f"real vectors ({len(real):,} x {real.shape[1]}, ivf {settings}): recall@{k} {recall_at_k(found, truth):.3f}, "
          f"{latency:.2f} ms a query")


if __name__ == "__main__":
    main()
