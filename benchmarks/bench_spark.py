"""Benchmark of Spark scoring: images/s of ``score_catalog`` on local[1] and local[2] against one-process predict.

Trains (once, cached in ``--work``) a small_cnn run on a synthetic catalogue, then scores every image
with ``Predictor.predict`` in this process and with ``fashion_hier.spark.score_catalog`` on each
master. Spark is timed twice per master: the first pass includes starting the Python workers and
loading the model in each; the second pass is warm (workers reused, model cached per process).

    python benchmarks/bench_spark.py --images 400 --image-size 64 --work /tmp/bench_spark
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH")]))

import pandas as pd  # noqa: E402

from fashion_hier.config import TrainConfig  # noqa: E402


def small_run(work: Path, images: int, image_size: int) -> Path:
    """A 1-epoch small_cnn run on a synthetic catalogue of ``images`` photos (reused when present)."""
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    run = work / f"small_cnn_{image_size}px_{images}"
    if RunDir(run).model.is_file():
        return run
    labels_csv = make_synthetic_catalog(work / f"data_{images}_{image_size}", n=images, image_size=image_size, seed=0)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={labels_csv.parent / 'images'}",
        f"data.image_size=[{image_size}, {image_size}]", "data.augment=false", "model.backbone=small_cnn",
        "model.weights=null", "training.epochs=1", "training.batch_size=32", "training.mixed_precision=off",
        f"output_dir={work}", f"name={run.name}",
    ])
    return train(config, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--work", type=Path, default=Path("bench_spark_work"))
    args = parser.parse_args()

    from fashion_hier.predict import Predictor, list_images
    from fashion_hier.spark import score_catalog, spark_session

    run = small_run(args.work, args.images, args.image_size)
    paths = list_images(run / "splits" / "train.csv") + list_images(run / "splits" / "validation.csv") + \
        list_images(run / "splits" / "test.csv")
    predictor = Predictor.load(run)
    predictor.predict(paths[:args.batch_size], batch_size=args.batch_size)  # warm-up
    began = time.perf_counter()
    predictor.predict(paths, batch_size=args.batch_size, consistent=True)
    local_seconds = time.perf_counter() - began
    print(f"{len(paths)} images, small_cnn {args.image_size}px, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start")
    print("| engine | pass | seconds | images/s |")
    print("|---|---|---:|---:|")
    print(f"| Predictor.predict (1 process) | warm | {local_seconds:.1f} | {len(paths) / local_seconds:.0f} |")
    for master in args.masters:
        spark = spark_session(master, app_name="fashion-hier-bench")
        parallelism = spark.sparkContext.defaultParallelism
        frame = spark.createDataFrame(pd.DataFrame({"image_path": paths})).repartition(parallelism).cache()
        frame.count()
        for label in ("cold (workers start, model loads)", "warm"):
            began = time.perf_counter()
            rows = score_catalog(frame, run, batch_size=args.batch_size).count()
            seconds = time.perf_counter() - began
            assert rows == len(paths)
            print(f"| spark {master} | {label} | {seconds:.1f} | {rows / seconds:.0f} |", flush=True)
        spark.stop()


if __name__ == "__main__":
    main()
