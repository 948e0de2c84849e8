"""Frozen-backbone head trained on more augmented views: random crops of the cached conv4 maps.

The recipe's head sees each training photo twice (original, mirror). Here each training photo
also gets ``--views`` random crops (side fraction in [``--crop``, 1], resized back) of its cached
``conv4_block6_out`` map, in a random one of the two views, pooled through the frozen conv5 (the
``resnet50_multiscale`` features: GAP conv5 + GAP conv4). A crop of the conv4 map stands in for a
crop of the photo at a fraction of the cost. The pooled views are cached in ``--work``; the head is
``fit_head`` with the recipe config, scored on validation and test (original views).

    python experiments/fpi_views.py --cache /work/cache/act_conv4 --work /work/cache/views \
        --out views.csv --views 4 --crop 0.7 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import fpi_recipe
from fpi_partial import recipe_split_rows

def pooled(upper, activations: np.ndarray, rows: np.ndarray, views: np.ndarray, boxes: np.ndarray | None,
           batch_size: int = 64) -> np.ndarray:
    """Pooled features of ``activations[rows, views]``, each map cropped to ``boxes`` (y1, x1, y2, x2) first."""
    from fashion_hier.finetune.partial import crop_and_resize

    parts = []
    for start in range(0, len(rows), batch_size):
        chunk = slice(start, start + batch_size)
        order = np.argsort(rows[chunk])        # memory-mapped reads in row order
        x = np.asarray(activations[rows[chunk][order], views[chunk][order]], dtype=np.float32)
        if boxes is not None:
            x = crop_and_resize(x, boxes[chunk][order])
        out = np.empty((len(x), upper.output.shape[-1]), np.float32)
        out[order] = np.asarray(upper.predict_on_batch(x))
        parts.append(out)
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="where the pooled views are cached")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--crop", type=float, default=0.7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    from fashion_hier.features import fit_head, predict_from_features
    from fashion_hier.finetune.partial import random_crop_boxes, upper_backbone

    overrides = [f"data.labels_csv={fpi_recipe.DATA}/styles.csv", f"data.image_dir={fpi_recipe.DATA}/images",
                 f"model.weights={fpi_recipe.WEIGHTS}", *args.set]
    config, label_space, cache, rows, labels = recipe_split_rows(args.cache, overrides)
    upper = upper_backbone(config.model.backbone, config.model.weights, tuple(config.data.image_size),
                           cache.manifest["cut_layer"])
    args.work.mkdir(parents=True, exist_ok=True)

    def cached(name: str, make) -> np.ndarray:
        path = args.work / f"{name}.npy"
        if not path.is_file():
            started = time.perf_counter()
            np.save(path, make())
            print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
        return np.load(path)

    features = {name: cached(f"{name}_original", lambda r=r: pooled(upper, cache.activations, r,
                                                                     np.zeros(len(r), int), None))
                for name, r in rows.items()}
    train_rows = rows["train"]
    flipped = cached("train_flipped", lambda: pooled(upper, cache.activations, train_rows,
                                                     np.ones(len(train_rows), int), None))
    augmented = []
    for k in range(args.views):
        def make(k=k):
            generator = np.random.default_rng([1234, k, int(args.crop * 100)])
            return pooled(upper, cache.activations, train_rows, generator.integers(0, 2, len(train_rows)),
                          random_crop_boxes(generator, len(train_rows), args.crop))
        augmented.append(cached(f"train_crop{int(args.crop * 100)}_{k}", make))
    train_features = np.concatenate([features["train"], flipped, *augmented])
    train_labels = {level: np.concatenate([values] * (2 + args.views)) for level, values in labels["train"].items()}
    counts = np.bincount(labels["train"]["subcategory"], minlength=label_space.num_subcategories)
    for seed in args.seeds:
        run_config = config.with_overrides([f"training.seed={seed}"])
        started = time.perf_counter()
        fitted = fit_head(run_config, label_space, train_features, train_labels, features["validation"],
                          labels["validation"])
        row = {"tag": args.tag, "views": args.views, "crop": args.crop, "seed": seed, "set": " ".join(args.set),
               "epochs_run": len(fitted.epoch_seconds), "seconds": round(time.perf_counter() - started, 1)}
        for name in ("validation", "test"):
            probabilities = predict_from_features(fitted.model, features[name])
            row.update({f"{name}_{k}": v for k, v in fpi_recipe.scores(labels[name], probabilities, label_space,
                                                                       counts).items()})
        fpi_recipe.append_row(args.out, row)


if __name__ == "__main__":
    main()
