"""Benchmark of Spark scoring: images/s of ``score_catalog`` per master against one-process predict, and whether
Spark's rows equal local ``predict``'s.

The model is ``--run`` (e.g. the Fashion Product Images recipe run: ResNet-50 at 224 px) on ``--photos`` (a folder
or CSV), or, without ``--run``, a small_cnn run trained (once, cached in ``--work``) on a synthetic catalogue.
Every Python worker gets its share of the cores (``EngineSpec.threads`` = cores / concurrent tasks), so two
workers on two cores do not fight over them. Spark is timed twice per master: the first pass includes starting
the Python workers and loading the model in each; the second pass is warm (workers reused, model cached per
process). ``local-cluster[n,c,m]`` starts n real executor JVMs of c cores and m MB (a multi-executor master on
one machine).

    python benchmarks/bench_spark.py --run RUN --photos PHOTOS --images 256 --engine openvino --precision int8 \
        --masters "local[1]" "local[2]" "local-cluster[2,1,2048]"
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
    parser.add_argument("--run", type=Path, help="a trained run (default: a small_cnn run on a synthetic catalogue)")
    parser.add_argument("--photos", type=Path, help="with --run: a folder or CSV of photos to score")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=64, help="the synthetic run's size (without --run)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--engine", default="keras", choices=("keras", "openvino"))
    parser.add_argument("--precision", default="f32", choices=("f32", "bf16", "int8"))
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--work", type=Path, default=Path("bench_spark_work"))
    args = parser.parse_args()

    from fashion_hier.engine import EngineSpec
    from fashion_hier.predict import Predictor, list_images
    from fashion_hier.spark import score_catalog, spark_session, threads_per_worker

    if args.run is not None:
        run, paths = args.run, list_images(args.photos)[:args.images]
    else:
        run = small_run(args.work, args.images, args.image_size)
        paths = [p for split in ("train", "validation", "test") for p in list_images(run / "splits" / f"{split}.csv")]
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    predictor = Predictor.load(run, engine=args.engine, precision=args.precision)
    predictor.predict(paths[:args.batch_size], batch_size=args.batch_size)  # warm-up
    began = time.perf_counter()
    expected = predictor.predict(paths, batch_size=args.batch_size, consistent=True)
    local_seconds = time.perf_counter() - began
    print(f"{len(paths)} images, {Path(run).name} at {predictor.image_size[0]} px, {predictor.engine.describe()}, "
          f"batch {args.batch_size}, {cores} CPU cores, load average {load:.2f} at start")
    print("| where | threads per worker | pass | seconds | images/s | rows equal local predict |")
    print("|---|---:|---|---:|---:|---|")
    print(f"| Predictor.predict (1 process) | {cores} | warm | {local_seconds:.1f} | {len(paths) / local_seconds:.1f} | — |")
    for master in args.masters:
        spark = spark_session(master, app_name="fashion-hier-bench")
        parallelism = spark.sparkContext.defaultParallelism
        threads = threads_per_worker(spark)
        engine = EngineSpec(args.engine, args.precision, threads=threads)
        frame = spark.createDataFrame(pd.DataFrame({"image_path": paths})).repartition(parallelism).cache()
        frame.count()
        for label in ("cold (workers start, model loads)", "warm"):
            began = time.perf_counter()
            rows = score_catalog(frame, run, batch_size=args.batch_size, engine=engine).toPandas()
            seconds = time.perf_counter() - began
            same = _same_names(rows, expected)
            print(f"| spark {master} | {threads} | {label} | {seconds:.1f} | {len(rows) / seconds:.1f} | {same} |",
                  flush=True)
        spark.stop()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _same_names(rows: pd.DataFrame, expected: pd.DataFrame) -> str:
    """"yes" when every image has the same category and subcategory as local predict (scores to 1e-4)."""
    rows = rows.sort_values("image_path").reset_index(drop=True)
    expected = expected.sort_values("image_path").reset_index(drop=True)
    names = all(rows[c].tolist() == expected[c].tolist() for c in ("image_path", "category", "subcategory"))
    scores = (rows["subcategory_score"] - expected["subcategory_score"]).abs().max()
    return f"{'yes' if names else 'NO'} (max score difference {scores:.1e})"


if __name__ == "__main__":
    main()
