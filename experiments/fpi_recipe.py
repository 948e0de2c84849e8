"""Head recipe on cached ImageNet ResNet-50 features of Fashion Product Images (frozen backbone).

Every run trains one head with ``fashion_hier.features.fit_head`` on the fixed split of
``data.seed`` (70/15/15), scores validation and test, and appends one row to ``runs.csv`` in
``--out`` (a rerun skips rows already there). ``--stage`` picks the runs:

  lr         scikit-learn LogisticRegression(C=0.5) on standardised features, per level
  weighting  loss.weighting schemes on the independent head (one seed)
  recipe     optimiser/schedule, input norm, label smoothing, flipped views (one seed)
  final      linear / independent / message passing with the chosen recipe, 3 seeds
  extra      the paper config, units 1024, no L2 (one seed)
  paper      the shipped paper config (message passing, inverse_frequency, Adam), 3 seeds
  all        final seed 0, weighting, recipe, final seeds 1-2, paper seed 0 (in that order)

``--summary`` writes the markdown tables (validation and test) from ``runs.csv``.

    python experiments/fpi_recipe.py --cache /work/cache/h7-recipe/feat_plain --out DIR --stage weighting
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images"  # ../shared beside the repository
WEIGHTS = Path.home() / ".cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"  # get_resnet50_imagenet.sh
RARE = 20  # a subcategory with fewer training images than this is rare
SEEDS = (0, 1, 2)

RECIPE = {"model.input_norm": "batchnorm", "optimizer.name": "adamw", "optimizer.schedule": "cosine",
          "optimizer.warmup_epochs": 2, "optimizer.weight_decay": 0.004, "training.epochs": 20,
          "training.batch_size": 128, "training.early_stopping_patience": 6, "loss.weighting": "none"}
PAPER = {"loss.weighting": "inverse_frequency", "training.epochs": 20, "training.early_stopping_patience": 3}


def stage_runs(stage: str, recipe: dict) -> list[tuple[str, dict, int]]:
    """(name, config overrides, seed) of each run of ``stage``, cheapest-to-most-informative first.

    The weighting ``none`` and the recipe's own row are ``final/independent`` seed 0 (same overrides).
    """
    base = {**recipe, "model.head": "independent"}
    heads = ("linear", "independent", "message_passing")
    weighting = [(f"weighting/{name}", {**base, **extra}, 0) for name, extra in {
        "inverse_frequency": {"loss.weighting": "inverse_frequency"},
        "smoothed": {"loss.weighting": "smoothed"},
        "effective_number_0.999": {"loss.weighting": "effective_number", "loss.beta": 0.999},
        "effective_number_0.9999": {"loss.weighting": "effective_number", "loss.beta": 0.9999},
        "logit_adjustment": {"loss.weighting": "logit_adjustment", "loss.tau": 1.0}}.items()]
    ablation = [(f"recipe/{name}", {**base, **extra}, 0) for name, extra in {
        "adam_constant": {"optimizer.name": "adam", "optimizer.schedule": "constant", "optimizer.warmup_epochs": 0},
        "no_input_norm": {"model.input_norm": "none"},
        "label_smoothing_0.1": {"loss.label_smoothing": 0.1},
        "flip_features": {"data.flip_features": True}}.items()]
    extra = [(f"recipe/{name}", {**base, **changes}, 0) for name, changes in {
        "units_1024": {"model.units": 1024}, "l2_0": {"model.l2": 0.0}}.items()]
    final = {seed: [(f"final/{head}", {**recipe, "model.head": head}, seed) for head in heads] for seed in SEEDS}
    paper = [("paper/message_passing_inverse_frequency", PAPER, seed) for seed in SEEDS]
    stages = {"weighting": weighting, "recipe": ablation, "final": sum(final.values(), []), "paper": paper,
              "extra": paper[:1] + extra, "all": final[0] + weighting + ablation + final[1] + final[2] + paper[:1]}
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(stages)}")
    return stages[stage]


def load_data(cache_dir: Path):
    """Config, label space, and per split: encoded labels and features (plain, and flipped for train)."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.features import load_feature_cache
    from fashion_hier.features.cache import _features_of, flipped_cache_dir
    from fashion_hier.labels import LabelSpace
    from fashion_hier.data.catalog import config_splits, read_config_catalog
    from fashion_hier.train import resolved_config

    config = TrainConfig.from_yaml(ROOT / "experiments/configs/fpi_paper.yaml").with_overrides(
        [f"data.labels_csv={DATA}/styles.csv", f"data.image_dir={DATA}/images", f"model.weights={WEIGHTS}"])
    config = resolved_config(config)
    catalog = read_config_catalog(config)
    splits = config_splits(config, catalog)
    from dataclasses import asdict
    label_space = LabelSpace.from_frame(splits.train, **asdict(config.data.columns))
    cache = load_feature_cache(cache_dir)
    flipped_dir = flipped_cache_dir(cache_dir)
    flipped = load_feature_cache(flipped_dir) if (flipped_dir / "manifest.json").is_file() else None
    data = {}
    for name, frame in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        frame = frame.loc[label_space.known_rows(frame)]
        paths = frame["image_path"].astype(str).tolist()
        data[name] = {"labels": label_space.encode(frame), "features": _features_of(cache, paths, name)}
        if name == "train" and flipped is not None:
            data[name]["flipped"] = _features_of(flipped, paths, name)
    return config, label_space, data


def scores(y: dict, probabilities: dict, label_space, train_counts: np.ndarray) -> dict:
    """Accuracy, macro class F1 (all / rare subcategories), attribute mAP, hierarchy-consistent accuracy."""
    from sklearn.metrics import average_precision_score, f1_score

    from fashion_hier.predict import consistent_decode

    sub_true, sub_pred = y["subcategory"], probabilities["subcategory"].argmax(1)
    present = np.unique(sub_true)
    rare = present[train_counts[present] < RARE]
    attributes = y["attributes"]
    keep = (attributes.sum(0) > 0) & (attributes.sum(0) < len(attributes))
    category_joint, sub_joint = consistent_decode(probabilities["category"], probabilities["subcategory"],
                                                  label_space.parent_index)
    return {
        "category_accuracy": float((probabilities["category"].argmax(1) == y["category"]).mean()),
        "subcategory_accuracy": float((sub_pred == sub_true).mean()),
        "subcategory_cf1": float(f1_score(sub_true, sub_pred, labels=present, average="macro", zero_division=0)),
        "rare_subcategory_cf1": float(f1_score(sub_true, sub_pred, labels=rare, average="macro", zero_division=0)),
        "attribute_map": float(average_precision_score(attributes[:, keep], probabilities["attributes"][:, keep],
                                                       average="macro")),
        "consistent_category_accuracy": float((category_joint == y["category"]).mean()),
        "consistent_subcategory_accuracy": float((sub_joint == sub_true).mean()),
        "consistent_pairs": float((label_space.parent_index[sub_pred] == probabilities["category"].argmax(1)).mean()),
    }


def append_row(path: Path, row: dict) -> None:
    """Print ``row`` (floats rounded) and append it to the CSV at ``path`` (atomic: a kill never loses earlier rows)."""
    from fashion_hier.atomic import atomic_path

    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    frame = pd.DataFrame([row])
    if path.is_file():
        frame = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def run_head(config, label_space, data, overrides: dict, seed: int) -> dict:
    from fashion_hier.features import fit_head, predict_from_features

    config = config.with_overrides([f"{key}={value}" for key, value in {**overrides, "training.seed": seed}.items()])
    train = data["train"]
    flipped = train.get("flipped") if config.data.flip_features else None
    if config.data.flip_features and flipped is None:
        raise FileNotFoundError("data.flip_features needs the flipped cache (CACHE/flipped)")
    started = time.perf_counter()
    fitted = fit_head(config, label_space, train["features"], train["labels"], data["validation"]["features"],
                      data["validation"]["labels"], flipped_train_features=flipped)
    seconds = time.perf_counter() - started
    counts = np.bincount(train["labels"]["subcategory"], minlength=label_space.num_subcategories)
    row = {"seconds": seconds, "epochs_run": len(fitted.epoch_seconds)}
    for split in ("validation", "test"):
        probabilities = predict_from_features(fitted.model, data[split]["features"])
        row.update({f"{split}_{k}": v for k, v in scores(data[split]["labels"], probabilities, label_space,
                                                       counts).items()})
    return row


def run_logistic_regression(label_space, data, seed: int) -> dict:
    """scikit-learn LogisticRegression(C=0.5) per level on standardised features (attributes: one per label)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    scaler = StandardScaler().fit(data["train"]["features"])
    x = {split: scaler.transform(data[split]["features"]) for split in data}
    y = data["train"]["labels"]
    probabilities = {split: {} for split in ("validation", "test")}
    for level in ("category", "subcategory"):
        model = LogisticRegression(C=0.5, max_iter=500, random_state=seed).fit(x["train"], y[level])
        for split in probabilities:
            full = np.zeros((len(x[split]), getattr(label_space, f"num_{level.replace('category', 'categories')}")))
            full[:, model.classes_] = model.predict_proba(x[split])
            probabilities[split][level] = full
    for split in probabilities:
        probabilities[split]["attributes"] = np.zeros((len(x[split]), label_space.num_attributes))
    for index in range(label_space.num_attributes):
        model = LogisticRegression(C=0.5, max_iter=500, random_state=seed).fit(x["train"], y["attributes"][:, index])
        for split in probabilities:
            probabilities[split]["attributes"][:, index] = model.predict_proba(x[split])[:, 1]
    counts = np.bincount(y["subcategory"], minlength=label_space.num_subcategories)
    row = {"seconds": time.perf_counter() - started, "epochs_run": 0}
    for split in probabilities:
        row.update({f"{split}_{k}": v for k, v in scores(data[split]["labels"], probabilities[split], label_space,
                                                       counts).items()})
    return row


METRICS = {"subcategory_accuracy": "sub acc", "category_accuracy": "cat acc", "subcategory_cf1": "sub CF1",
           "rare_subcategory_cf1": f"rare CF1 (<{RARE})", "attribute_map": "attr mAP"}


def _mean_std(values: pd.Series) -> str:
    values = values.astype(float) * 100
    return f"{values.mean():.2f}" if len(values) == 1 else f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def summary_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The report's tables (percentages; mean ± sample std over seeds where there are several)."""
    tables = {}
    for split in ("validation", "test"):
        rows = []
        for name, group in runs.groupby("name", sort=False):
            row = {"run": name, "seeds": len(group)}
            row.update({label: _mean_std(group[f"{split}_{metric}"]) for metric, label in METRICS.items()})
            row["seconds / run"] = f"{group['seconds'].mean():.0f}"
            rows.append(row)
        tables[split] = pd.DataFrame(rows)
    paired = []
    mp, ind = (runs[runs["name"] == f"final/{head}"].set_index("seed") for head in ("message_passing", "independent"))
    seeds = mp.index.intersection(ind.index)
    for split in ("validation", "test"):
        for metric, label in METRICS.items():
            difference = (mp.loc[seeds, f"{split}_{metric}"] - ind.loc[seeds, f"{split}_{metric}"])
            paired.append({"split": split, "metric": label, "seeds": len(seeds),
                           "MP - independent": _mean_std(difference),
                           "per seed": " ".join(f"{100 * d:+.2f}" for d in difference)})
    tables["paired"] = pd.DataFrame(paired)
    decoding = []
    for name, group in runs[runs["name"].str.startswith(("final/", "paper/", "sklearn"))].groupby("name", sort=False):
        for split in ("validation", "test"):
            decoding.append({"run": name, "split": split,
                             "sub acc (argmax)": _mean_std(group[f"{split}_subcategory_accuracy"]),
                             "sub acc (consistent)": _mean_std(group[f"{split}_consistent_subcategory_accuracy"]),
                             "cat acc (argmax)": _mean_std(group[f"{split}_category_accuracy"]),
                             "cat acc (consistent)": _mean_std(group[f"{split}_consistent_category_accuracy"]),
                             "argmax pairs consistent": _mean_std(group[f"{split}_consistent_pairs"])})
    tables["decoding"] = pd.DataFrame(decoding)
    return tables


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def write_summary(csvs: list[Path], out: Path) -> None:
    """``recipe.csv`` (every run) and ``recipe_tables.md`` (the tables) in ``out``."""
    runs = pd.concat([pd.read_csv(path) for path in csvs], ignore_index=True).drop_duplicates(["name", "seed"])
    runs.to_csv(out / "recipe.csv", index=False)
    parts = []
    for title, table in summary_tables(runs).items():
        parts.append(f"### {title}\n\n{_markdown(table)}\n")
    (out / "recipe_tables.md").write_text("\n".join(parts), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--summary", nargs="*", type=Path, help="runs.csv files: write the tables into --out")
    parser.add_argument("--stage", choices=("lr", "weighting", "recipe", "extra", "final", "paper", "all"))
    parser.add_argument("--set", nargs="*", default=[], help="override the recipe, KEY=VALUE (YAML values)")
    parser.add_argument("--only", help="run only names containing this text")
    parser.add_argument("--seeds", nargs="*", type=int, help="run only these training seeds")
    args = parser.parse_args()
    if args.summary:
        write_summary(args.summary, args.out)
        return
    import yaml

    recipe = {**RECIPE, **{k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}}
    config, label_space, data = load_data(args.cache)
    print(f"{label_space}; rows: " + ", ".join(f"{k} {len(v['features'])}" for k, v in data.items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "runs.csv"
    done = pd.read_csv(table) if table.is_file() else pd.DataFrame(columns=["name", "seed"])
    runs = ([("sklearn_logistic_regression_C0.5", None, 0)] if args.stage == "lr"
            else stage_runs(args.stage, recipe))
    for name, overrides, seed in runs:
        if (args.only and args.only not in name) or (args.seeds is not None and seed not in args.seeds):
            continue
        if ((done["name"] == name) & (done["seed"] == seed)).any():
            continue
        row = (run_logistic_regression(label_space, data, seed) if overrides is None
               else run_head(config, label_space, data, overrides, seed))
        row = {"name": name, "seed": seed, **row,
               "overrides": " ".join(f"{k}={v}" for k, v in (overrides or {}).items())}
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(table, index=False)
        print(f"{name} seed {seed}: val sub {row['validation_subcategory_accuracy']:.4f} "
              f"cf1 {row['validation_subcategory_cf1']:.4f} cat {row['validation_category_accuracy']:.4f} "
              f"mAP {row['validation_attribute_map']:.4f} ({row['seconds']:.0f} s, {row['epochs_run']} epochs)",
              flush=True)


if __name__ == "__main__":
    main()
