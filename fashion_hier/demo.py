"""The end-to-end demo: synthetic catalogue -> small model -> test-split accuracy beside chance.

``fashion-hier demo`` needs no data and no downloads: it generates a catalogue whose category,
subcategory and attributes are drawn into the images, trains a small configuration of the
library's own model on it (random initialisation, small images), evaluates it on the held-out
test split with ``fashion-hier evaluate``'s code, and prints how far above chance each level is.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.config import TrainConfig
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

DEMO_IMAGE_SIZE = 64
DEFAULT_PRODUCTS = 600
DEFAULT_EPOCHS = 20
DEMO_RUN_NAME = "run"  # the run directory is OUT/run
# float32 on every CPU: "auto" would pick bfloat16 where the CPU has it (AVX-512 BF16/AMX) and float32
# elsewhere, and the README's demo figures are meant to reproduce on both kinds.
DEMO_SETTINGS = (
    "model.backbone=small_cnn", "model.weights=null", "model.units=64", "model.l2=0.0",
    "training.batch_size=16", "training.jit_compile=false", "training.mixed_precision=float32",
    "data.augment=false",
)


def demo_config(out_dir: Path, labels_csv: Path, *, epochs: int, seed: int) -> TrainConfig:
    """The small configuration the demo trains: the library's model at 64 px, random initialisation."""
    return TrainConfig().with_overrides([
        *DEMO_SETTINGS,
        f"data.labels_csv={labels_csv}", f"data.image_dir={labels_csv.parent / 'images'}",
        f"data.image_size=[{DEMO_IMAGE_SIZE}, {DEMO_IMAGE_SIZE}]", f"data.seed={seed}",
        f"training.epochs={epochs}", f"output_dir={out_dir}", f"name={DEMO_RUN_NAME}",
    ])


DEMO_CATALOG = "catalog"  # make_synthetic_catalog's folder: styles.csv and images/, rewritten byte for byte


def _check_demo_folder(out_dir: Path, *, overwrite: bool) -> None:
    """A non-empty ``out_dir`` is reused only with ``overwrite`` and only when it holds nothing but an earlier
    demo (its catalogue and its run, which ``train`` clears itself): nothing of a user's is ever removed."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; pass --overwrite to replace an earlier demo there, "
                              f"or --out NEW_DIR")
    foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in (DEMO_CATALOG, DEMO_RUN_NAME))
    if foreign:
        raise FileExistsError(f"{out_dir} holds files the demo did not write ({', '.join(foreign[:5])}); choose "
                              f"another --out — nothing was removed")


def run_demo(out_dir: str | Path = "fashion_hier_demo", *, n: int = DEFAULT_PRODUCTS, epochs: int = DEFAULT_EPOCHS, seed: int = 0,
             overwrite: bool = False) -> dict:
    """Generate, train, evaluate; return the evaluation report (``fashion-hier demo`` prints its summary)."""
    out_dir = Path(out_dir)
    _check_demo_folder(out_dir, overwrite=overwrite)
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.train import train

    started = time.perf_counter()
    labels_csv = make_synthetic_catalog(out_dir / DEMO_CATALOG, n=n, image_size=DEMO_IMAGE_SIZE, seed=seed)
    run_dir = train(demo_config(out_dir, Path(labels_csv), epochs=epochs, seed=seed), overwrite=overwrite)
    report = evaluate_run(run_dir, split="test", progress=False)
    logger.info("demo finished in %.0f s; run directory: %s", time.perf_counter() - started, run_dir)
    return report


def chance_levels(run_dir: Path) -> dict[str, float]:
    """What guessing reaches on the test split: the majority class share per level, and for
    attributes the mean label frequency (the AP of random scores)."""
    from fashion_hier.labels import LabelSpace

    run = RunDir(run_dir)
    label_space = LabelSpace.load(run.labels)
    test = pd.read_csv(run.split("test"), dtype=str)
    targets = label_space.encode(test.loc[label_space.known_rows(test)], unknown="drop")
    return {
        "category": float(np.bincount(targets["category"]).max() / len(targets["category"])),
        "subcategory": float(np.bincount(targets["subcategory"]).max() / len(targets["subcategory"])),
        "attributes": float(targets["attributes"].mean(axis=0)[targets["attributes"].any(axis=0)].mean()),
    }


def summary_table(report: dict, chance: dict[str, float]) -> str:
    """Accuracy (category, subcategory) and mAP (attributes) on the test split, beside chance."""
    rows = [
        ("category", "accuracy", report["category"]["accuracy"], chance["category"]),
        ("subcategory", "accuracy", report["subcategory"]["accuracy"], chance["subcategory"]),
        ("attributes", "mAP", report["attributes"]["mAP"], chance["attributes"]),
    ]
    lines = [f"test split ({report.get('n_samples', '?')} images)",
             f"{'level':<12} {'metric':<9} {'model':>6} {'chance':>7}"]
    lines += [f"{level:<12} {metric:<9} {value:>6.3f} {base:>7.3f}" for level, metric, value, base in rows]
    lines.append("chance: majority-class share (accuracy), mean label frequency (mAP of random scores)")
    return "\n".join(lines)
