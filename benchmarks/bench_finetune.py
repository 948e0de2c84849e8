"""Partial (cached conv5) fine-tuning against full fine-tuning of ResNet-50 on the shared real photos.

Stage ``extract``: the activation cache (conv4_block6_out, original + flipped view) of every photo of
``experiments/configs/fpi_paper.yaml``'s catalogue. Stage ``measure`` (one run): seconds per training
step of the cached conv5 fine-tune and of full fine-tuning at 224 px on the same machine, then the
partial fine-tune itself on the fixed 70/15/15 split and its validation/test scores beside the frozen
backbone's (the same head trained on the same cache with conv5 frozen).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "configs" / "fpi_paper.yaml"
WEIGHTS = Path.home() / ".cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"  # get_resnet50_imagenet.sh
DATA = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images"  # ../shared beside the repository


def paper_config(weights: str):
    from fashion_hier.config import TrainConfig
    from fashion_hier.train import resolved_config

    config = TrainConfig.from_yaml(CONFIG).with_overrides([f"model.weights={weights}", f"data.labels_csv={DATA}/styles.csv",
                                                        f"data.image_dir={DATA}/images"])
    return resolved_config(config)


def extract(args) -> None:
    from fashion_hier.finetune import extract_activations
    from fashion_hier.data.catalog import read_config_catalog

    config = paper_config(args.weights)
    catalog = read_config_catalog(config)
    print(catalog.report, flush=True)
    started = time.perf_counter()
    cache = extract_activations(catalog.paths, cache_dir=args.cache, backbone=config.model.backbone,
                                weights=config.model.weights, image_size=tuple(config.data.image_size),
                                resize=config.data.resize, cut_layer=args.cut, batch_size=args.batch_size)
    print(f"extracted {cache.manifest['rows_done']} rows x 2 views in {time.perf_counter() - started:.0f} s "
          f"(manifest seconds {cache.manifest['seconds']:.0f}); unreadable: {int((~cache.readable).sum())}",
          flush=True)


def _scores(level_scores: dict, labels: dict) -> dict:
    from fashion_hier.metrics import accuracy, average_precision

    return {"subcategory_accuracy": accuracy(labels["subcategory"], level_scores["subcategory"]),
            "category_accuracy": accuracy(labels["category"], level_scores["category"]),
            "attributes_map": float(average_precision(labels["attributes"], level_scores["attributes"]))}


def _predict_levels(model, x) -> dict:
    outputs = model.predict(x, batch_size=256, verbose=0)
    return outputs if isinstance(outputs, dict) else dict(zip(model.output_names, outputs))


def _images_per_second(step, batch, steps: int) -> float:
    step(*batch)  # warm-up: tracing and first-call allocation
    started = time.perf_counter()
    for _ in range(steps):
        step(*batch)
    return steps * len(batch[0]) / (time.perf_counter() - started)


def time_training_steps(config, cache, label_space, paths, labels, *, batch_size: int, steps: int) -> dict:
    """Images/s of full fine-tuning (224 px images) and of the cached conv5 fine-tune, same batches."""
    from fashion_hier import compiling
    from fashion_hier.data import load_images
    from fashion_hier.finetune.partial import cached_model, upper_backbone
    from fashion_hier.models import build_head_model, build_model

    targets = {level: np.asarray(values)[:batch_size] for level, values in labels.items()}
    losses = compiling.weighted_losses(config, label_space, labels)
    model_args = dict(head=config.model.head, units=config.model.units, l2=config.model.l2,
                      dropout=config.model.dropout)
    counts = (label_space.num_categories, label_space.num_subcategories, label_space.num_attributes)
    full = build_model(*counts, backbone="resnet50", weights=config.model.weights, input_shape=(224, 224, 3),
                       trainable_backbone=True, **model_args)
    compiling.compile_model(full, config, losses, label_space, 1e-4, jit_compile=False, steps_per_epoch=1, epochs=1)
    images = load_images(list(paths[:batch_size]), (224, 224), resize=config.data.resize)
    full_rate = _images_per_second(full.train_on_batch, (images, targets), steps)
    del full
    upper = upper_backbone("resnet50", config.model.weights, (224, 224), cache.manifest["cut_layer"])
    cached = cached_model(upper, build_head_model(*counts, feature_dim=2048, **model_args))
    compiling.compile_model(cached, config, losses, label_space, 1e-4, jit_compile=False, steps_per_epoch=1, epochs=1)
    rows = cache.rows(list(paths[:batch_size]))
    maps = np.asarray(cache.activations[np.sort(rows), 0], dtype=np.float32)
    cached_rate = _images_per_second(cached.train_on_batch, (maps, targets), steps)
    return {"batch_size": batch_size, "steps": steps, "full_finetune_images_per_s": full_rate,
            "cached_conv5_images_per_s": cached_rate, "speedup": cached_rate / full_rate}


def fit_frozen_head(config, label_space, pooled: dict, labels: dict, *, epochs: int):
    """The head on the frozen backbone's pooled features (the baseline, and the fine-tune's starting head): the
    library's ``fit_head``, for ``epochs`` epochs with the config's early stopping."""
    import dataclasses

    from fashion_hier.features import fit_head

    config = dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=epochs))
    return fit_head(config, label_space, pooled["train"], labels["train"], pooled["validation"],
                    labels["validation"], verbose=2).model


def measure(args) -> None:
    import dataclasses

    from fashion_hier.finetune import load_activation_cache
    from fashion_hier.finetune.partial import (cached_model, finetune_from_cache, pooled_from_cache,
                                               predict_from_cache, upper_backbone)
    from fashion_hier.labels import LabelSpace
    from fashion_hier.data.catalog import config_splits, read_config_catalog

    config = paper_config(args.weights).with_overrides(
        ["loss.weighting=none", f"training.seed={args.seed}", f"training.batch_size={args.batch_size}",
         "training.early_stopping_patience=2"])
    started = time.perf_counter()
    cache = load_activation_cache(args.cache, allow_unfinished=True)
    done = int(cache.manifest["rows_done"])
    catalog = read_config_catalog(config)
    splits = config_splits(config, catalog)
    label_space = LabelSpace.from_frame(splits.train, **dataclasses.asdict(config.data.columns))
    cached_paths = set(cache.paths[:done][cache.readable[:done]])
    frames, labels, rows = {}, {}, {}
    for name in ("train", "validation", "test"):
        frame = getattr(splits, name)
        frame = frame[frame["image_path"].isin(cached_paths)]
        frames[name] = frame.loc[label_space.known_rows(frame)].iloc[:args.limit]
        labels[name] = label_space.encode(frames[name])
        rows[name] = cache.rows(frames[name]["image_path"].tolist())
    sizes = {name: len(frame) for name, frame in frames.items()}
    print(f"cache rows done {done} of {cache.manifest['num_rows']}; split rows with cached activations: {sizes}",
          flush=True)
    result = {"cache_rows_done": done, "split_rows": sizes, "seed": args.seed, "epochs": args.epochs}
    if args.timing_steps > 0:
        result["timing"] = time_training_steps(config, cache, label_space, frames["train"]["image_path"].tolist(),
                                               labels["train"], batch_size=16, steps=args.timing_steps)
        print("timing", result["timing"], flush=True)

    frozen_upper = upper_backbone("resnet50", config.model.weights, (224, 224), cache.manifest["cut_layer"])
    pooled = {name: pooled_from_cache(frozen_upper, cache, rows[name]) for name in rows}
    frozen_head = fit_frozen_head(config, label_space, pooled, labels, epochs=30)
    result["frozen"] = {name: _scores(_predict_levels(frozen_head, pooled[name]), labels[name])
                        for name in ("validation", "test")}
    print("frozen", result["frozen"], flush=True)

    tuned = finetune_from_cache(config, cache, label_space, frames["train"]["image_path"].tolist(), labels["train"],
                                frames["validation"]["image_path"].tolist(), labels["validation"],
                                learning_rate=args.learning_rate, epochs=args.epochs, initial_head=frozen_head,
                                verbose=2)
    scorer = cached_model(tuned.upper, tuned.head)
    result["finetuned"] = {name: _scores(predict_from_cache(scorer, cache, rows[name]), labels[name])
                           for name in ("validation", "test")}
    result["finetune_epoch_seconds"] = tuned.epoch_seconds
    result["finetune_best_epoch"] = tuned.best_epoch
    result["history"] = {k: [float(v) for v in vs] for k, vs in tuned.history.items()}
    result["seconds_total"] = time.perf_counter() - started
    print("finetuned", result["finetuned"], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["extract", "measure"])
    parser.add_argument("--cache", default="runs/bench_finetune/activations")
    parser.add_argument("--weights", default=WEIGHTS)
    parser.add_argument("--cut", default="conv4_block6_out")
    parser.add_argument("--batch-size", type=int, default=16, help="extraction batch; measure: training batch")
    parser.add_argument("--seed", type=int, default=0, help="training.seed (the split stays data.seed=0)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows per split (smoke test)")
    parser.add_argument("--timing-steps", type=int, default=3, help="0: skip the timing")
    parser.add_argument("--out", default="runs/bench_finetune/measure.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    {"extract": extract, "measure": measure}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
