"""Partial fine-tune of ResNet-50's conv5 with the recipe head, from the cached conv4 activations.

Trains ``[conv5 -> pooled conv5 + conv4] -> head`` on ``--cache`` (an activation cache at
``conv4_block6_out``, both views) with ``fashion_hier.finetune.partial``'s pieces, then scores
validation and test on the original views with ``fpi_recipe.scores``. One row per run is appended
to ``--out``. The knobs are the ones the frozen-head recipe cannot have: the head it starts from
(``--init``: the recipe run's trained head, or a fresh one), the learning rate, and a random crop of
the cached map (``--crop``: side fraction range, resized back), a feature-space stand-in for the
image crops that pooled features cannot see.

    python experiments/fpi_partial.py --cache /work/cache/act_conv4 --out partial.csv \
        --init-run runs/final/recipe_ind_s0 --lr 1e-4 --epochs 6 --crop 0.75
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

import fpi_recipe
from fashion_hier.finetune.partial import CachedViews

CONFIG = fpi_recipe.ROOT / "experiments/configs/fpi_recipe.yaml"


class CroppedViews(CachedViews):
    """``CachedViews`` whose training maps are random crops (side fraction in [crop, 1]) resized back."""

    def __init__(self, *args, crop: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.crop = crop

    def __getitem__(self, index):
        import tensorflow as tf

        x, y = super().__getitem__(index)
        generator = np.random.default_rng([self.seed, self.epoch, index])
        side = generator.uniform(self.crop, 1.0, (len(x), 2))
        top = generator.uniform(0.0, 1.0, (len(x), 2)) * (1.0 - side)
        boxes = np.concatenate([top, top + side], axis=1).astype(np.float32)   # y1, x1, y2, x2
        return tf.image.crop_and_resize(x, boxes, np.arange(len(x), dtype=np.int32), x.shape[1:3]).numpy(), y


def recipe_split_rows(cache_dir: Path, overrides: list[str]):
    """``fpi_recipe.yaml`` (+ ``overrides``), its label space, the activation cache, and per split its rows and labels."""
    import tempfile

    from fashion_hier import train as training
    from fashion_hier.config import TrainConfig
    from fashion_hier.finetune import load_activation_cache

    with tempfile.TemporaryDirectory() as scratch:
        config = TrainConfig.from_yaml(CONFIG).with_overrides([*overrides, f"output_dir={scratch}", "name=x"])
        config = training.resolved_config(config)
        prepared = training.prepare_run(config, overwrite=True, resume=False)
    label_space = prepared.label_space
    test_frame, test_labels = training._encode_known(label_space, prepared.splits.test, "test")
    cache = load_activation_cache(cache_dir)
    rows = {name: cache.rows(frame["image_path"].astype(str).tolist())
            for name, frame in (("train", prepared.train_frame), ("validation", prepared.validation_frame),
                                ("test", test_frame))}
    labels = {"train": prepared.train_labels, "validation": prepared.validation_labels, "test": test_labels}
    return config, label_space, cache, rows, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--init-run", type=Path, default=None, help="start from this run's head.keras")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--crop", type=float, default=0.0, help="smallest crop side fraction; 0: no crop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="extra config override KEY=VALUE")
    parser.add_argument("--tag", default="")
    parser.add_argument("--save", type=Path, default=None, help="save the assembled model.keras here")
    args = parser.parse_args()

    import keras

    from fashion_hier import train as training
    from fashion_hier.finetune.partial import (MONITOR, assemble_full_model, cached_batches, cached_model,
                                               predict_from_cache, upper_backbone)
    from fashion_hier.models import backbone_spec, build_head_model_from_config, copy_head_weights

    overrides = [f"data.labels_csv={fpi_recipe.DATA}/styles.csv", f"data.image_dir={fpi_recipe.DATA}/images",
                 f"model.weights={fpi_recipe.WEIGHTS}", f"training.seed={args.seed}",
                 f"optimizer.warmup_epochs={args.warmup}", *args.set]
    config, label_space, cache, rows, labels = recipe_split_rows(args.cache, overrides)

    keras.utils.set_random_seed(args.seed)
    upper = upper_backbone(config.model.backbone, config.model.weights, tuple(config.data.image_size),
                           cache.manifest["cut_layer"])
    head = build_head_model_from_config(config, label_space,
                                        feature_dim=backbone_spec(config.model.backbone).feature_dim)
    if args.init_run is not None:
        copy_head_weights(keras.saving.load_model(args.init_run / "head.keras", compile=False), head)
    model = cached_model(upper, head)
    losses = training.weighted_losses(config, label_space, labels["train"])
    steps = math.ceil(len(rows["train"]) / config.training.batch_size)
    training.compile_model(model, config, losses, label_space, args.lr, jit_compile=False,
                           steps_per_epoch=steps, epochs=args.epochs)
    if args.crop:
        train_data = CroppedViews(cache.activations, rows["train"], labels["train"], config.training.batch_size,
                                  seed=args.seed, crop=args.crop)
    else:
        train_data = cached_batches(cache, rows["train"], labels["train"], config.training.batch_size,
                                    seed=args.seed)
    validation_data = cached_batches(cache, rows["validation"], labels["validation"], config.training.batch_size)
    stop = keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", restore_best_weights=True,
                                         patience=args.epochs)
    started = time.perf_counter()
    history = model.fit(train_data, validation_data=validation_data, epochs=args.epochs, shuffle=False,
                        callbacks=[stop], verbose=2)
    seconds = time.perf_counter() - started
    counts = np.bincount(labels["train"]["subcategory"], minlength=label_space.num_subcategories)
    row = {"tag": args.tag, "init": "recipe" if args.init_run else "fresh", "lr": args.lr, "epochs": args.epochs,
           "warmup": args.warmup, "crop": args.crop, "seed": args.seed, "set": " ".join(args.set),
           "best_epoch": int(np.argmax(history.history[MONITOR])) + 1, "seconds": round(seconds, 1),
           "val_curve": json.dumps([round(v, 4) for v in history.history[MONITOR]])}
    for name in ("validation", "test"):
        probabilities = predict_from_cache(model, cache, rows[name], batch_size=128)
        row.update({f"{name}_{k}": v for k, v in fpi_recipe.scores(labels[name], probabilities, label_space,
                                                                   counts).items()})
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    frame = pd.DataFrame([row])
    if args.out.is_file():
        frame = pd.concat([pd.read_csv(args.out), frame], ignore_index=True)
    frame.to_csv(args.out, index=False)
    if args.save is not None:
        assemble_full_model(upper, head, config, label_space).save(args.save)


if __name__ == "__main__":
    main()
