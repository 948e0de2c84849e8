"""Peak resident memory of a short training run and of ``fashion-hier predict`` over N images.

Each measurement is a fresh process running ``fashion_hier.commands.train`` / ``fashion_hier.commands.predict`` as
``python -m`` would, and its peak RSS is the child's own ``VmHWM`` (Linux ``/proc/self/status``),
written when it exits. Not ``ru_maxrss``: Linux carries the parent's high-water mark over
``fork``/``exec`` into the child's ``ru_maxrss``, so it would report this (large) process instead.

Prediction must stream: peak memory over 10,000 images should equal that over 1,000 (``--quick``:
1,000 vs 100). The prediction run is an untrained MobileNetV2 at 64 px (memory does not depend on
the weights; a ResNet-50 at 224 px would need minutes for 10,000 images on 2 cores). The training
run (skipped by ``--quick``) is the paper's model (ResNet-50, weights=None, 224 px, batch 16) for
one epoch of a 120-image synthetic catalogue.

``run()`` is the entry point for ``benchmarks/run.py``; its key names are stable.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
from figures import script_main  # noqa: E402
import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PREDICT_PX = 64
# ``python -c PEAK_PROBE module args...``: run ``module`` as ``python -m`` does, then write VmHWM (kB).
PEAK_PROBE = """
import atexit, os, runpy, sys
def write_peak():
    with open("/proc/self/status") as status:
        kilobytes = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    with open(os.environ["FASHION_HIER_PEAK_FILE"], "w") as out:
        out.write(kilobytes)
atexit.register(write_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def module_peak_rss_mb(module: str, arguments: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``python -m module arguments`` in a fresh process; a failure raises."""
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak_kb"
        env = {**os.environ, "FASHION_HIER_PEAK_FILE": str(peak_file),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PEAK_PROBE, module, *arguments], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not peak_file.exists():
            raise RuntimeError(f"python -m {module} {' '.join(arguments)} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}")
        return int(peak_file.read_text()) / 1024, seconds


def write_prediction_run(run_dir: Path, seed: int) -> Path:
    """A run directory ``Predictor.load`` accepts: an untrained small model, its label space and config."""
    import keras

    from fashion_hier.config import TrainConfig
    from fashion_hier.labels import LabelSpace
    from fashion_hier.models import build_model

    label_space = LabelSpace(categories=["Bags", "Shoes"], subcategories=["Backpacks", "Heels", "Sneakers"],
                             attributes=["Casual", "Summer", "Winter"],
                             parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"})
    keras.utils.set_random_seed(seed)
    model = build_model(2, 3, 3, backbone="mobilenetv2", weights=None, input_shape=(PREDICT_PX, PREDICT_PX, 3), units=64)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    label_space.save(run_dir / "labels.json")
    TrainConfig().with_overrides([f"data.image_size=[{PREDICT_PX}, {PREDICT_PX}]"]).to_yaml(run_dir / "config.yaml")
    return run_dir


def write_image_folder(folder: Path, count: int, seed: int) -> Path:
    """``count`` catalogue-size (60x80) JPEGs: one random image written under ``count`` names."""
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    encoded = cv2.imencode(".jpg", image)[1].tobytes()
    for index in range(count):
        (folder / f"{index:06d}.jpg").write_bytes(encoded)
    return folder


def training_peak_rss_mb(root: Path, *, seed: int) -> tuple[float, float]:
    """Peak RSS of ``fashion-hier train`` for one epoch on a small synthetic catalogue."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import make_synthetic_catalog

    labels_csv = make_synthetic_catalog(root / "catalogue", n=120, image_size=64, seed=seed)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={labels_csv.parent / 'images'}", "model.weights=null",
        "model.backbone=resnet50", "data.image_size=[224, 224]", "training.epochs=1", "training.batch_size=16", f"output_dir={root / 'runs'}", "name=memory",
    ])
    config_path = config.to_yaml(root / "train.yaml")
    return module_peak_rss_mb("fashion_hier.commands.train", ["--config", str(config_path)])


def predict_peak_rss_mb(run_dir: Path, images: Path, out_csv: Path) -> tuple[float, float]:
    return module_peak_rss_mb("fashion_hier.predict", ["--run", str(run_dir), "--images", str(images), "--out",
                                                       str(out_csv), "--batch-size", "64", "--no-progress"])


def run(quick: bool = False, seed: int = 0) -> dict:
    """Peak RSS (MB) and seconds of a training run and of predict over a small and a large folder."""
    small, large = (100, 1_000) if quick else (1_000, 10_000)
    figures: dict[str, float | int] = {}
    root = Path(tempfile.mkdtemp(prefix="fashion_hier_bench_memory_"))
    try:
        if not quick:  # a training process alone takes about a minute on 2 cores
            figures["train_peak_rss_mb"], figures["train_seconds"] = training_peak_rss_mb(root, seed=seed)
        run_dir = write_prediction_run(root / "predict_run", seed)
        for name, count in (("small", small), ("large", large)):
            folder = write_image_folder(root / f"images_{count}", count, seed)
            rss, seconds = predict_peak_rss_mb(run_dir, folder, root / f"predictions_{count}.csv")
            figures[f"predict_{name}_images"] = count
            figures[f"predict_{name}_peak_rss_mb"], figures[f"predict_{name}_seconds"] = rss, seconds
            print(f"  predict {count} images: {rss:.0f} MB, {seconds:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures["predict_peak_rss_growth_mb"] = figures["predict_large_peak_rss_mb"] - figures["predict_small_peak_rss_mb"]
    figures["predict_peak_rss_ratio_large_vs_small"] = figures["predict_large_peak_rss_mb"] / figures["predict_small_peak_rss_mb"]
    return figures


def main(argv: list[str] | None = None) -> int:
    return script_main(run, __doc__.splitlines()[0], "no training run; predict over 100 vs 1,000 images", argv)


if __name__ == "__main__":
    sys.exit(main())
