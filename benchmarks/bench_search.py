"""Benchmark of the similarity index at catalogue scale: build time, query latency, recall@10.

Vectors are synthetic 2048-d unit vectors (a mixture of 1,000 Gaussian clusters, so neighbours exist
as they do for product embeddings; ``--uniform`` for structureless Gaussian noise, the worst case
for approximate search). For each size:

* ``flat`` (``IndexFlatIP``, exact, what ``build_index`` uses up to 100,000 images);
* ``hnsw`` (``IndexHNSWFlat`` M=32, efConstruction=80, efSearch=128, what it uses above), built only up
  to ``--hnsw-max`` vectors because its build on 2 CPU cores takes hours at 1M;
* ``ivfpq`` (``IVF{min(4*sqrt(n), 1024)},PQ64``, nprobe=32, 64 bytes a vector), the option that fits 1M x 2048-d
  in memory (a flat 1M index needs 8 GB).

At sizes above ``--in-memory-max`` the exact search streams the vectors in chunks (same arithmetic
as ``IndexFlatIP``, without holding 8 GB): its latency is the search time of a batch of queries per query.

    python benchmarks/bench_search.py --sizes 10000 1000000

With ``--run RUN`` it measures instead how well a run's embeddings retrieve: on the run's ``--split``,
the share of each image's top-10 neighbours (itself excluded) with the image's subcategory, for the
pooled and the head embedding (``fashion_hier.search.build_index``, exact cosine search).
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

DIMENSION, CLUSTERS, CHUNK = 2048, 1000, 50_000


def vectors(start: int, count: int, *, dimension: int, uniform: bool, seed: int = 0) -> np.ndarray:
    """Rows ``start..start+count`` of the synthetic collection, generated chunk-wise and reproducibly."""
    centres = np.random.default_rng(seed).standard_normal((CLUSTERS, dimension), dtype=np.float32)
    rows = []
    for chunk in range(start // CHUNK, (start + count - 1) // CHUNK + 1):
        rng = np.random.default_rng([seed, chunk + 1])
        noise = rng.standard_normal((CHUNK, dimension), dtype=np.float32)
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
    if kind == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = 80, 128
    else:
        lists = min(int(4 * np.sqrt(size)), 1024)
        index = faiss.index_factory(dimension, f"IVF{lists},PQ64", faiss.METRIC_INNER_PRODUCT)
        index.train(vectors(0, min(size, max(40 * lists, 20_000)), **kw))
        index.nprobe = 32
    generation = 0.0
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
    parser.add_argument("--run", help="measure a run's neighbour quality on --split instead")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    if args.run:
        subcategory_match_share(args.run, args.split, args.k)
        return
    kw = {"dimension": args.dimension, "uniform": args.uniform}
    queries = vectors(0, args.queries, seed=1, **kw)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads to build, 1 to query, {args.dimension}-d, "
          f"{'uniform' if args.uniform else 'clustered'} vectors, {args.queries} queries, k={args.k}")
    print("| vectors | index | build s | query ms (median, 1 query) | recall@10 vs exact |")
    print("|---:|---|---:|---:|---:|")
    for size in args.sizes:
        truth, exact_seconds = exact_neighbours(size, queries, args.k, **kw)
        kinds = ["flat"] if size <= args.in_memory_max else []
        kinds += ["hnsw"] if size <= args.hnsw_max else []
        kinds += ["ivfpq"]
        if size > args.in_memory_max:
            print(f"| {size:,} | flat (streamed) | - | {1000 * exact_seconds / len(queries):.1f} (batch of "
                  f"{len(queries)}, per query) | 1.000 |", flush=True)
        for kind in kinds:
            index, build_seconds = build(kind, size, **kw)
            latency, found = time_queries(index, queries, args.k)
            print(f"| {size:,} | {kind} | {build_seconds:.1f} | {latency:.2f} | {recall_at_k(found, truth):.3f} |",
                  flush=True)
            del index


if __name__ == "__main__":
    main()
