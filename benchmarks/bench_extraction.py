"""Images/s of cache extraction through each engine, side by side in one run: the frozen backbone that fills the
feature caches (``training.extraction_engine``/``extraction_precision``), Keras float32 against OpenVINO bf16
and int8, each as a ratio to Keras float32, with the machine's matmul rates and the load average.

The network is ``features.cache.feature_extractor`` (default ``resnet50_multiscale``: conv5 + conv4 pooled, what
the Fashion Product Images recipe caches) with ImageNet weights when ``shared/tools/get_resnet50_imagenet.sh``
wrote them, compiled exactly as extraction compiles it (``engine.compile_engine``; int8 calibrated on 128
catalogue photos other than the timed ones). Photos are decoded once before timing. Agreement with Keras float32
is the cosine between each photo's feature vectors (smallest and mean).

    python benchmarks/bench_extraction.py [--quick] [--backbone NAME]
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

from bench_engine import CALIBRATION, WEIGHTS, matmul_rates, photo_paths, time_batches  # noqa: E402
from figures import format_figures  # noqa: E402

SPECS = (("keras", "f32"), ("openvino", "bf16"), ("openvino", "int8"))


def cosines(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The cosine between each row of ``features`` and the same row of ``reference``."""
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1)
    return (features * reference).sum(1) / np.maximum(norms, 1e-12)


def run(quick: bool = False, backbone: str = "resnet50_multiscale") -> dict:
    from fashion_hier.data.images import read_images
    from fashion_hier.engine import EngineSpec, compile_engine, photo_inputs
    from fashion_hier.features.cache import feature_extractor

    count, size = (64, 112) if quick else (256, 224)
    load_before = os.getloadavg()[0]
    paths = photo_paths(count + CALIBRATION)
    if len(paths) < count + 1:
        raise SystemExit("bench_extraction needs the shared catalogue's photos (../shared/data/fashion-product-images)")
    images = read_images(paths[:count], (size, size)).images
    model = feature_extractor(backbone, str(WEIGHTS) if WEIGHTS.is_file() else None, (size, size))
    figures: dict = {"network": f"{backbone} pooled features at {size} px", "images": len(images),
                     "weights": "imagenet" if WEIGHTS.is_file() else "random", "load_average_before": round(load_before, 2),
                     **matmul_rates()}
    reference = keras_rate = None
    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as cache:
        for engine, precision in SPECS:
            name = f"{engine}_{precision}"
            start = time.perf_counter()
            try:
                extractor = compile_engine(model, EngineSpec(engine, precision), calibration_paths=paths[count:],
                                               inputs=photo_inputs((size, size), "stretch"), cache_dir=cache)
            except ImportError as error:
                figures[f"{name}_skipped"] = str(error)
                continue
            figures[f"{name}_prepare_s"] = time.perf_counter() - start
            rate = time_batches(extractor.predict_on_batch, images, repeats=1 if quick else 2)
            figures[f"{name}_images_per_s"] = rate
            features = np.concatenate([np.asarray(extractor.predict_on_batch(images[o:o + 32]), np.float32)
                                       for o in range(0, len(images), 32)])
            if reference is None:
                reference, keras_rate = features, rate
                continue
            agreement = cosines(features, reference)
            figures[f"{name}_vs_keras_f32"] = rate / keras_rate
            figures[f"{name}_min_cosine"] = float(agreement.min())
            figures[f"{name}_mean_cosine"] = float(agreement.mean())
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 photos at 112 px: about a minute")
    parser.add_argument("--backbone", default="resnet50_multiscale", help="the cached backbone (default: the recipe's)")
    args = parser.parse_args(argv)
    print(format_figures(run(quick=args.quick, backbone=args.backbone)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
