"""Benchmark of fashion_hier.metrics at catalogue scale (default 100,000 samples x 1,000 labels).

Times each metric on random inputs, and the code ``fashion_hier.metrics`` keeps instead of calling
scikit-learn against scikit-learn: top-5 accuracy against ``top_k_accuracy_score`` (all samples),
per-label AP against ``average_precision_score`` called label by label, and micro AP against
``average_precision_score(average="micro")``, both on the first ``sklearn_labels`` labels and then
extrapolated linearly to all labels (the key names say so; linear extrapolation of micro AP's sort
understates sklearn's time slightly). Peak resident memory comes from ``resource.getrusage`` and
includes the inputs themselves.

    python benchmarks/bench_metrics.py            # full size
    python benchmarks/bench_metrics.py --quick    # 10,000 x 200, a few seconds

``run()`` is the entry point for ``benchmarks/run.py``; its key names are stable.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import average_precision_score, top_k_accuracy_score  # noqa: E402

from fashion_hier import metrics  # noqa: E402

N_CATEGORIES = 50


def _seconds(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def make_inputs(n_samples: int, n_labels: int, seed: int) -> tuple[dict, dict, np.ndarray]:
    """Random ``y_true``/``y_score`` dicts shaped like a model's outputs (float32 probabilities).

    ``n_labels`` is both the number of attributes and of subcategories; attribute prevalence
    varies from 0.1% to 10%, and scores lean towards the true labels so AP is not trivial.
    """
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, N_CATEGORIES, size=n_labels)
    subcategory = rng.integers(0, n_labels, size=n_samples)
    prevalence = rng.uniform(0.001, 0.1, size=n_labels).astype(np.float32)
    attributes = rng.random((n_samples, n_labels), dtype=np.float32) < prevalence
    attribute_scores = rng.random((n_samples, n_labels), dtype=np.float32)
    attribute_scores[attributes] = np.sqrt(attribute_scores[attributes])
    subcategory_scores = rng.random((n_samples, n_labels), dtype=np.float32)
    subcategory_scores[np.arange(n_samples), subcategory] += 1.0
    subcategory_scores /= subcategory_scores.sum(axis=1, keepdims=True)
    category_scores = rng.random((n_samples, N_CATEGORIES), dtype=np.float32)
    category_scores /= category_scores.sum(axis=1, keepdims=True)
    y_true = {"category": parents[subcategory], "subcategory": subcategory, "attributes": attributes}
    y_score = {"category": category_scores, "subcategory": subcategory_scores, "attributes": attribute_scores}
    return y_true, y_score, parents


def run(n_samples: int = 100_000, n_labels: int = 1_000, seed: int = 0, sklearn_labels: int = 50) -> dict:
    """Seconds per metric function and peak RSS; see the module docstring for what is compared."""
    y_true, y_score, parents = make_inputs(n_samples, n_labels, seed)
    attributes, attribute_scores = y_true["attributes"], y_score["attributes"]
    figures: dict[str, float | int] = {"n_samples": n_samples, "n_labels": n_labels, "seed": seed}

    timed = {
        "report_seconds": lambda: metrics.hierarchical_report(y_true, y_score, parents=parents),
        "single_label_prf_seconds": lambda: metrics.classification_prf(y_true["subcategory"], y_score["subcategory"]),
        "top5_accuracy_seconds": lambda: metrics.top_k_accuracy(y_true["subcategory"], y_score["subcategory"], k=5),
        "attribute_prf_seconds": lambda: metrics.multilabel_prf(attributes, attribute_scores, average=None),
        "precision_at_k_seconds": lambda: metrics.precision_recall_at_k(attributes, attribute_scores),
        "precision_at_3_seconds": lambda: metrics.precision_recall_at_k(attributes, attribute_scores, k=3),
        "ap_seconds": lambda: metrics.average_precision(attributes, attribute_scores, average=None),
        "micro_ap_seconds": lambda: metrics.average_precision(attributes, attribute_scores, average="micro"),
        "tune_thresholds_seconds": lambda: metrics.tune_thresholds(attributes, attribute_scores),
    }
    results = {}
    for key, function in timed.items():
        figures[key], results[key] = _seconds(function)
    figures["metrics_seconds_total"] = figures["report_seconds"]

    sklearn_seconds, sklearn_top5 = _seconds(
        lambda: top_k_accuracy_score(y_true["subcategory"], y_score["subcategory"], k=5, labels=np.arange(n_labels))
    )
    figures["sklearn_top5_accuracy_seconds"] = sklearn_seconds
    figures["top5_speedup_vs_sklearn"] = sklearn_seconds / figures["top5_accuracy_seconds"]
    figures["top5_difference_vs_sklearn"] = abs(results["top5_accuracy_seconds"] - sklearn_top5)

    subset = min(sklearn_labels, n_labels)
    sklearn_seconds, sklearn_ap = _seconds(
        lambda: np.array([average_precision_score(attributes[:, j], attribute_scores[:, j]) for j in range(subset)])
    )
    figures["sklearn_ap_labels_timed"] = subset
    figures["sklearn_ap_seconds_subset"] = sklearn_seconds
    figures["sklearn_ap_seconds_extrapolated"] = sklearn_seconds * n_labels / subset
    figures["ap_speedup_vs_sklearn"] = figures["sklearn_ap_seconds_extrapolated"] / figures["ap_seconds"]
    figures["ap_max_abs_difference_vs_sklearn"] = float(np.nanmax(np.abs(results["ap_seconds"][:subset] - sklearn_ap)))
    sklearn_seconds, _ = _seconds(
        lambda: average_precision_score(attributes[:, :subset], attribute_scores[:, :subset], average="micro")
    )
    figures["sklearn_micro_ap_seconds_extrapolated"] = sklearn_seconds * n_labels / subset
    figures["micro_ap_speedup_vs_sklearn"] = (
        figures["sklearn_micro_ap_seconds_extrapolated"] / figures["micro_ap_seconds"]
    )
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def format_table(figures: dict) -> str:
    width = max(len(key) for key in figures)
    return "\n".join(
        f"{key:<{width}}  {value:>12.4g}" if isinstance(value, float) else f"{key:<{width}}  {value:>12}"
        for key, value in figures.items()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 samples x 200 labels instead of 100,000 x 1,000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = {"n_samples": 10_000, "n_labels": 200} if args.quick else {}
    print(format_table(run(seed=args.seed, **size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
