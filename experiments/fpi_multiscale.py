"""Which backbone stages to pool: conv5 alone, conv5 + conv4, conv5 + conv4 + conv3 (frozen ResNet-50).

The cache is ``resnet50_multiscale_conv3``'s (``fashion-hier features --config experiments/configs/fpi_recipe.yaml
--set model.backbone=resnet50_multiscale_conv3 --extract-only``): per photo and
its mirror image ``[GAP(conv5) 2048 | GAP(conv4) 1024 | GAP(conv3) 512]``; each variant reads its first
columns. Every variant trains the recipe's head (``fpi_recipe.RECIPE`` + message passing, ``smoothed``
weights, mirrored rows) over 3 training seeds, and scikit-learn's logistic regression on the same
columns. Rows go to ``--out/runs.csv`` as in ``fpi_recipe.py`` (a rerun skips rows already there);
``fpi_recipe.py --summary`` makes the tables.

    python experiments/fpi_multiscale.py --cache OUTPUT_DIR/features/resnet50_multiscale_conv3_224x224_<hash> --out DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fpi_recipe  # noqa: E402

VARIANTS = {"conv5": 2048, "conv5+conv4": 3072, "conv5+conv4+conv3": 3584}
HEAD = {**fpi_recipe.RECIPE, "model.head": "message_passing", "loss.weighting": "smoothed",
        "data.flip_features": True}


def sliced(data: dict, width: int) -> dict:
    """The first ``width`` feature columns of every split (and of the mirrored training rows)."""
    return {split: {key: (value[:, :width] if key in ("features", "flipped") else value)
                    for key, value in parts.items()} for split, parts in data.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", nargs="*", type=int, default=list(fpi_recipe.SEEDS))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-lr", action="store_true", help="skip the logistic regressions")
    parser.add_argument("--set", nargs="*", default=[],
                        help="head overrides KEY=VALUE (YAML values), e.g. model.head=independent")
    parser.add_argument("--tag", default="", help="appended to the run names (for --set variants)")
    args = parser.parse_args()
    import yaml

    head = {**HEAD, **{k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}}
    config, label_space, data = fpi_recipe.load_data(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "runs.csv"
    done = pd.read_csv(table) if table.is_file() else pd.DataFrame(columns=["name", "seed"])
    runs = [(f"multiscale/{variant}{args.tag}", variant, seed) for variant in args.variants for seed in args.seeds]
    if not args.no_lr:
        runs += [(f"multiscale/sklearn_lr_{variant}", variant, None) for variant in args.variants]
    for name, variant, seed in runs:
        row_seed = 0 if seed is None else seed
        if ((done["name"] == name) & (done["seed"] == row_seed)).any():
            continue
        features = sliced(data, VARIANTS[variant])
        row = (fpi_recipe.run_logistic_regression(label_space, features, 0) if seed is None
               else fpi_recipe.run_head(config, label_space, features, head, seed))
        row = {"name": name, "seed": row_seed, **row, "overrides": f"features={variant}" + (
            "" if seed is None else " " + " ".join(f"{k}={v}" for k, v in head.items()))}
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(table, index=False)
        print(f"{name} seed {row_seed}: val sub {row['validation_subcategory_accuracy']:.4f} "
              f"cat {row['validation_category_accuracy']:.4f} mAP {row['validation_attribute_map']:.4f} | test sub "
              f"{row['test_subcategory_accuracy']:.4f} cat {row['test_category_accuracy']:.4f} "
              f"mAP {row['test_attribute_map']:.4f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
