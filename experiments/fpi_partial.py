"""Partial fine-tune of ResNet-50's conv5 with the recipe head, from the cached conv4 activations.

Trains ``[conv5 -> pooled conv5 + conv4] -> head`` on ``--cache`` (an activation cache at
``conv4_block6_out``, both views) with the library's ``finetune_from_cache``, then scores
validation and test on the original views with ``fpi_recipe.scores``. One row per run is appended
to ``--out``. The knobs are the ones the frozen-head recipe cannot have: the head it starts from
(``--init``: the recipe run's trained head, or a fresh one), the learning rate, and a random crop of
the cached map (``--crop``: ``training.finetune_crop``, side fraction range, resized back), a
feature-space stand-in for the image crops that pooled features cannot see. All epochs run; the best
validation epoch is restored.

    python experiments/fpi_partial.py --cache /work/cache/act_conv4 --out partial.csv \
        --init-run runs/final/recipe_ind_s0 --lr 1e-4 --epochs 6 --crop 0.75
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import fpi_recipe

CONFIG = fpi_recipe.ROOT / "experiments/configs/fpi_recipe.yaml"


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

    from fashion_hier.finetune.partial import cached_model, finetune_from_cache, predict_from_cache

    overrides = [f"data.labels_csv={fpi_recipe.DATA}/styles.csv", f"data.image_dir={fpi_recipe.DATA}/images",
                 f"model.weights={fpi_recipe.WEIGHTS}", f"training.seed={args.seed}",
                 f"optimizer.warmup_epochs={args.warmup}", f"training.finetune_crop={args.crop or 'null'}",
                 "training.early_stopping_patience=null", *args.set]
    config, label_space, cache, rows, labels = recipe_split_rows(args.cache, overrides)
    initial_head = (keras.saving.load_model(args.init_run / "head.keras", compile=False)
                    if args.init_run is not None else None)
    result = finetune_from_cache(config, cache, label_space, cache.paths[rows["train"]], labels["train"],
                                 cache.paths[rows["validation"]], labels["validation"], learning_rate=args.lr,
                                 epochs=args.epochs, initial_head=initial_head, verbose=2)
    curve = result.history["val_subcategory_accuracy"]
    counts = np.bincount(labels["train"]["subcategory"], minlength=label_space.num_subcategories)
    row = {"tag": args.tag, "init": "recipe" if args.init_run else "fresh", "lr": args.lr, "epochs": args.epochs,
           "warmup": args.warmup, "crop": args.crop, "seed": args.seed, "set": " ".join(args.set),
           "best_epoch": result.best_epoch, "seconds": round(sum(result.epoch_seconds), 1),
           "val_curve": json.dumps([round(v, 4) for v in curve])}
    model = cached_model(result.upper, result.head)
    for name in ("validation", "test"):
        probabilities = predict_from_cache(model, cache, rows[name], batch_size=128)
        row.update({f"{name}_{k}": v for k, v in fpi_recipe.scores(labels[name], probabilities, label_space,
                                                                   counts).items()})
    fpi_recipe.append_row(args.out, row)
    if args.save is not None:
        result.model.save(args.save)


if __name__ == "__main__":
    main()
