"""One tiny trained run for the production tests (spark, export, search): small_cnn, no weights, 1 epoch."""
from __future__ import annotations

from pathlib import Path

from fashion_hier.config import TrainConfig


def train_tiny_run(root: Path, *, size: int = 32, n: int = 60) -> Path:
    """Train a synthetic-catalogue run under ``root`` and return its run directory."""
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    labels_csv = make_synthetic_catalog(root / "data", n=n, image_size=size, seed=1)
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={root / 'data' / 'images'}",
        f"data.image_size=[{size}, {size}]", "data.augment=false", "model.backbone=small_cnn",
        "model.weights=null", "model.units=8", "training.epochs=1", "training.batch_size=16",
        "training.jit_compile=false", "training.mixed_precision=off",
        f"output_dir={root}", "name=tiny",
    ])
    return train(config, verbose=0)
