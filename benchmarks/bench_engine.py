"""Images/s of the task through each inference engine, side by side in one run: Keras float32 and OpenVINO
f32, bf16 and int8 (``fashion_hier.engine``), each as a ratio to Keras float32, with the machine's own
matmul rates measured in the same run and the load average before and after.

The task is a trained run when ``--run`` is given (its own image size; int8 calibrates on its training photos),
else ResNet-50 (ImageNet weights when ``shared/tools/get_resnet50_imagenet.sh`` wrote them) with an
independent head at 224 px, Fashion Product Images' class counts. Photos are the shared catalogue's when
present (decoded once, before timing: the figures are the model's, not the loader's), else random pixels.
Each engine is warmed up on one batch (conversion, quantization and compilation are timed apart, as
``prepare_s``), then timed over the same photos; agreement with Keras float32 is the share of equal
subcategory arg-maxes and the largest score difference.

    python benchmarks/bench_engine.py [--quick] [--run RUN]

``run()`` is the entry point for ``benchmarks/run.py``; its key names are stable.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from figures import format_figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "fashion-product-images"
WEIGHTS = Path("~/.cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").expanduser()
ENGINES = (("keras", "f32"), ("openvino", "f32"), ("openvino", "bf16"), ("openvino", "int8"))
BATCH = 32
CALIBRATION = 128


def photo_paths(count: int) -> list[str]:
    """The first ``count`` photos of the shared catalogue (sorted), or [] when it is absent."""
    folder = PHOTOS / "images"
    return sorted(str(p) for p in folder.glob("*.jpg"))[:count] if folder.is_dir() else []


def default_task(image_size: int = 224):
    """ResNet-50 + independent head as the task (ImageNet weights when present), FPI's class counts."""
    from bench_model import NUM_ATTRIBUTES, NUM_CATEGORIES, NUM_SUBCATEGORIES

    from fashion_hier import build_model
    from fashion_hier.labels import LabelSpace
    from fashion_hier.task import HierarchicalClassifier

    categories = [f"c{i}" for i in range(NUM_CATEGORIES)]
    subcategories = [f"s{i}" for i in range(NUM_SUBCATEGORIES)]
    space = LabelSpace(categories, subcategories, [f"a{i}" for i in range(NUM_ATTRIBUTES)],
                       {s: categories[i % NUM_CATEGORIES] for i, s in enumerate(subcategories)})
    network = build_model(NUM_CATEGORIES, NUM_SUBCATEGORIES, NUM_ATTRIBUTES, head="independent",
                          weights=str(WEIGHTS) if WEIGHTS.is_file() else None,
                          input_shape=(image_size, image_size, 3))
    return HierarchicalClassifier(network, space)


def matmul_rates() -> dict:
    from bench_model import matmul_gflops

    return {f"matmul_{dtype}_gflops": matmul_gflops(dtype=dtype) for dtype in ("float32", "bfloat16")}


def time_batches(call, images: np.ndarray, repeats: int) -> float:
    """Images/s of ``call`` over ``images`` in batches of BATCH (best of ``repeats``, after one warm-up batch)."""
    call(images[:BATCH])  # warm-up: first-call allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for offset in range(0, len(images), BATCH):
            call(images[offset:offset + BATCH])
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def time_engine(predictor, images: np.ndarray, repeats: int) -> float:
    """Images/s of ``predictor``'s forward pass (the task's scores) over ``images``."""
    from fashion_hier.streaming import score_images

    return time_batches(lambda batch: score_images(predictor.model, batch, predictor.forward), images, repeats)


def run(quick: bool = False, run_dir: str | None = None) -> dict:
    from fashion_hier.data.images import read_images
    from fashion_hier.predict import Predictor, training_paths
    from fashion_hier.rundir import RunDir
    from fashion_hier.streaming import score_images

    count = 64 if quick else 256
    load_before = os.getloadavg()[0]
    task = Predictor.load(run_dir).model if run_dir else default_task(112 if quick else 224)
    paths = photo_paths(count + CALIBRATION)
    if paths:
        images = read_images(paths[:count], task.image_size, resize=task.resize).images
        source = "catalogue photos"
    else:
        images = np.random.default_rng(0).uniform(0, 255, (count, *task.image_size, 3)).astype(np.float32)
        source = "random pixels"
    calibration = (training_paths(RunDir(run_dir)) if run_dir else paths[count:]) or None
    figures: dict = {"photos": source, "images": len(images), "image_px": task.image_size[0],
                     "load_average_before": round(load_before, 2), **matmul_rates()}
    reference = None
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as cache:
        for engine, precision in ENGINES:
            name = f"{engine}_{precision}"
            start = time.perf_counter()
            try:
                predictor = Predictor(task, engine=engine, precision=precision, engine_cache=cache,
                                      calibration_paths=calibration if precision == "int8" else None)
            except ImportError as error:
                figures[f"{name}_skipped"] = str(error)
                continue
            figures[f"{name}_prepare_s"] = time.perf_counter() - start
            rate = time_engine(predictor, images, repeats=1 if quick else 2)
            figures[f"{name}_images_per_s"] = rate
            scores = np.concatenate([score_images(task, images[o:o + BATCH], predictor.forward)["subcategory"]
                                     for o in range(0, len(images), BATCH)])
            if reference is None:
                reference, keras_rate = scores, rate
                continue
            figures[f"{name}_vs_keras_f32"] = rate / keras_rate
            figures[f"{name}_subcategory_argmax_agreement"] = float((scores.argmax(1) == reference.argmax(1)).mean())
            figures[f"{name}_max_abs_score_diff"] = float(np.abs(scores - reference).max())
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 photos at 112 px: about a minute")
    parser.add_argument("--run", help="a trained run directory (default: ResNet-50 + independent head)")
    args = parser.parse_args(argv)
    print(format_figures(run(quick=args.quick, run_dir=args.run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
