"""Visual similarity search: embed a catalogue with a run's model, index it with FAISS, query it.

``build_index(run, images, out)`` embeds every readable image (pooled backbone features, or the
head's subcategory state) and writes an index directory; ``load_index(out, run=...)`` reads it back
(refusing a run other than the one that built it); ``SimilarityIndex.search`` returns the nearest
neighbours and ``extend`` adds images without a rebuild. Needs the ``search`` extra (faiss-cpu).
"""
from fashion_hier.search.embed import EMBEDDINGS, Embedder
from fashion_hier.search.index import (
    APPROXIMATE_THRESHOLD,
    IndexMismatchError,
    SimilarityIndex,
    build_index,
    load_index,
    model_sha256,
)

__all__ = ["APPROXIMATE_THRESHOLD", "EMBEDDINGS", "Embedder", "IndexMismatchError", "SimilarityIndex",
           "build_index", "load_index", "model_sha256"]
