"""Run every benchmark and print one table: loader, model throughput, memory, metrics, targets.

    python benchmarks/run.py [--quick] [--json PATH] [--only loader,model,memory,metrics,engine]

``--quick`` uses small counts (under two minutes on 2 cores). The JSON holds every figure under
stable key names ``<section>.<figure>``, the ratios the targets of issue 6 speak of
(``ratios.*``) and whether each target is met (``targets.*``), plus the machine and date.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_engine  # noqa: E402
import bench_extraction  # noqa: E402
import bench_loader  # noqa: E402
import bench_memory  # noqa: E402
import bench_metrics  # noqa: E402
import bench_model  # noqa: E402

SECTIONS = {
    "loader": lambda quick: bench_loader.run(quick=quick),
    "model": lambda quick: bench_model.run(quick=quick),
    "memory": lambda quick: bench_memory.run(quick=quick),
    "metrics": lambda quick: bench_metrics.run(**({"n_samples": 10_000, "n_labels": 200} if quick else {})),
    "engine": lambda quick: bench_engine.run(quick=quick),  # each engine/precision as a ratio to Keras float32
    "extraction": lambda quick: bench_extraction.run(quick=quick),  # what fills the feature caches, likewise
}
LOADERS_WITH_TARGET = ("sequence_w0", "sequence_w2", "tfdata")
LOADER_TARGET = 3.0         # x the training step's images/s at 224 px, and x the naive loader (studio)
INFERENCE_TARGET = 0.8      # fraction of the matmul rate in the setting's own compute dtype
TRAINING_TARGET = 0.6


def ratios_and_targets(figures: dict) -> tuple[dict, dict]:
    """The ratios the targets speak of, and whether each target is met (None: not measured)."""
    loader, model = figures.get("loader", {}), figures.get("model", {})
    ratios: dict[str, float | str | None] = {}
    targets: dict[str, bool | None] = {}
    variant = bench_model.default_variant()
    ratios["default_variant"] = variant
    ratios["default_matmul_reference"] = bench_model.matmul_key(bench_model.compute_dtype(variant))
    reference = model.get(f"train_224px_b16_{variant}_images_per_s")
    ratios["train_224px_reference_images_per_s"] = reference
    for size in bench_loader.IMAGE_SIZES:
        for name in LOADERS_WITH_TARGET:
            rate = loader.get(f"{size}_{name}_images_per_s")
            ratio = rate / reference if rate and reference else None
            ratios[f"{size}_{name}_vs_training_224"] = ratio
            targets[f"loader_{size}_{name}_3x_training"] = None if ratio is None else ratio >= LOADER_TARGET
    for name in LOADERS_WITH_TARGET:
        rate, naive = loader.get(f"studio_{name}_images_per_s"), loader.get("studio_naive_images_per_s")
        ratio = rate / naive if rate and naive else None
        ratios[f"studio_{name}_vs_naive"] = ratio
        targets[f"loader_studio_{name}_3x_naive"] = None if ratio is None else ratio >= LOADER_TARGET
    targets["studio_reduced_decode_used"] = loader.get("studio_reduced_decode_used")
    for kind, key, target in (("infer", "infer_224px_b32", INFERENCE_TARGET), ("train", "train_224px_b16", TRAINING_TARGET)):
        fraction = model.get(f"{key}_{variant}_fraction_of_matmul")
        if fraction is None:  # quick plan: inference at batch 16
            fraction = model.get(f"{key.replace('b32', 'b16')}_{variant}_fraction_of_matmul")
        ratios[f"{kind}_224px_default_fraction_of_matmul"] = fraction
        targets[f"{kind}_224px_at_{int(target * 100)}pct_of_matmul"] = None if fraction is None else fraction >= target
    return ratios, targets


def machine() -> dict:
    load = os.getloadavg()
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_average_1_5_15": [round(v, 2) for v in load]}


def format_table(results: dict) -> str:
    lines = []
    for section, figures in results.items():
        lines.append(f"[{section}]")
        for key, value in figures.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"  {key:<48} {text:>14}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: under two minutes on 2 cores")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    results: dict[str, dict] = {"machine": {**machine(), "quick": args.quick}}
    start = time.perf_counter()
    for name in chosen:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = SECTIONS[name](args.quick)
    results["ratios"], results["targets"] = ratios_and_targets(results)
    results["machine"]["seconds"] = round(time.perf_counter() - start, 1)
    results["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
