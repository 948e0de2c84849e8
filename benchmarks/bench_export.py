"""Benchmark of the TFLite exports: size, images/s and accuracy change against the Keras model on a split.

For each quantization (none, float16, dynamic) the run is exported, every image of the split is
scored one at a time by the TFLite interpreter, and category / subcategory accuracy and attribute
mAP are compared with the Keras model's on the same pixels.

    python benchmarks/bench_export.py --run RUN [--split test] [--limit N] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def scores_table(scores: dict, truth: dict) -> dict:
    from fashion_hier.metrics import hierarchical_report

    report = hierarchical_report(truth, scores)  # parents not needed for the three figures below
    return {"category accuracy": report["category"]["accuracy"],
            "subcategory accuracy": report["subcategory"]["accuracy"], "attributes mAP": report["attributes"]["mAP"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="score only the first N images of the split")
    parser.add_argument("--out", type=Path, default=Path("exported_bench"))
    args = parser.parse_args()

    from fashion_hier.data import load_images
    from fashion_hier.evaluate import prepare, read_split
    from fashion_hier.export import export_tflite, tflite_scores
    from fashion_hier.predict import Predictor
    from fashion_hier.rundir import RunDir

    predictor = Predictor.load(args.run)
    data = prepare(read_split(Path(args.run), args.split), predictor.label_space, args.split)
    frame, truth = data.frame, data.targets
    if args.limit:
        frame, truth = frame.head(args.limit), {level: values[:args.limit] for level, values in truth.items()}
    images = load_images(frame["image_path"].tolist(), predictor.image_size, resize=predictor.resize)
    began = time.perf_counter()
    keras_scores = predictor.predict_scores(images, batch_size=1)
    keras_rate = len(images) / (time.perf_counter() - began)
    rows = [{"model": "keras (float32)", "MB": RunDir(args.run).model.stat().st_size / 2**20,
             "images/s (batch 1)": keras_rate, **scores_table(keras_scores, truth)}]
    for quantization in ("none", "float16", "dynamic"):
        path = export_tflite(predictor, args.out / f"{quantization}.tflite", quantization=quantization)
        began = time.perf_counter()
        scores = tflite_scores(path, images)
        rate = len(images) / (time.perf_counter() - began)
        rows.append({"model": f"tflite {quantization}", "MB": path.stat().st_size / 2**20,
                     "images/s (batch 1)": rate, **scores_table(scores, truth),
                     "max |score - keras|": max(float(np.abs(scores[k] - keras_scores[k]).max()) for k in scores)})
        print(rows[-1], flush=True)
    print(f"{len(images)} images of {args.run} split {args.split}")
    columns = list(rows[-1])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
                                for c in columns) + " |")


if __name__ == "__main__":
    main()
