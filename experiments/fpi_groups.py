"""Attribute columns on Fashion Product Images: per-column accuracy and macro-F1, the head vs logistic regression.

The recipe's data mapping (``experiments/configs/fpi_recipe.yaml``: category = subCategory, subcategory =
articleType, the fixed 70/15/15 split of data.seed 0) with ``gender``, ``baseColour``, ``season`` and ``usage``
as ``single`` attribute columns, on the recipe's cached ImageNet ResNet-50 conv5+conv4 pooled features
(``fashion-hier train --config experiments/configs/fpi_recipe.yaml`` writes them under OUTPUT_DIR/features).
Every run appends one row per (run, split) to ``--out``/groups.csv; a rerun skips rows already there.

  lr      scikit-learn LogisticRegression per column on standardised features, C in LR_C chosen on
          validation accuracy per column, the rows whose cell is known
  head    the recipe's head (fit_head) on the grouped label space: loss variants, one seed
  seeds   the chosen head variant, seeds 0-2
  recipe  the shipped recipe's runs (fpi_recipe.yaml: the head, then conv5 fine-tuned), scored from the
          predictions.npz that ``fashion-hier evaluate --run RUN --split SPLIT --out RUN_eval_SPLIT`` wrote:
          the arg-max over each column's values, and as predict answers (limited to the values the predicted
          category had in training, ``decoding.category_scores``)

    python experiments/fpi_groups.py --cache /work/runs/fpi/features/resnet50_multiscale_224x224_a0a1b17d5c \\
        --out experiments/results/fpi/groups --stage lr
    python experiments/fpi_groups.py ... --summary
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments.fpi_recipe import _markdown, append_row  # noqa: E402  (what every FPI experiment writes with)

DATA = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images"  # ../shared beside the repository
GROUPS = [{"name": "gender", "kind": "single"}, {"name": "baseColour", "kind": "single"},
          {"name": "season", "kind": "single"}, {"name": "usage", "kind": "single"}]
SEEDS = (0, 1, 2)
LR_C = (0.02, 0.05, 0.1, 0.5, 2.0)
HEAD_VARIANTS = {  # loss options compared on validation (one seed)
    "smoothed": {},
    "smoothed_focal2": {"loss.focal_gamma": 2.0},
    "none": {"loss.weighting": "none"},
    "none_focal2": {"loss.weighting": "none", "loss.focal_gamma": 2.0},
}


def load_data(cache_dir: Path, weights: str):
    """The recipe config with attribute columns, its label space, and per split: targets and features."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.features import load_feature_cache
    from fashion_hier.features.cache import _features_of, flipped_cache_dir
    from fashion_hier.labels import LabelSpace
    from fashion_hier.data.catalog import config_splits, read_config_catalog
    from fashion_hier.train import resolved_config

    config = TrainConfig.from_yaml(ROOT / "experiments/configs/fpi_recipe.yaml").with_overrides([
        f"data.labels_csv={DATA}/styles.csv", f"data.image_dir={DATA}/images", f"model.weights={weights}",
        "data.columns.attributes=[]", f"data.columns.groups={GROUPS}".replace("'", ""), "model.trainable_from=null"])
    config = resolved_config(config)
    catalog = read_config_catalog(config)
    splits = config_splits(config, catalog)
    label_space = LabelSpace.from_columns(splits.train, config.data.columns)
    cache, flipped_dir = load_feature_cache(cache_dir), flipped_cache_dir(cache_dir)
    data = {}
    for name, frame in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        frame = frame.loc[label_space.known_rows(frame)]
        paths = frame["image_path"].astype(str).tolist()
        data[name] = {"labels": label_space.encode(frame, unknown="drop"), "features": _features_of(cache, paths, name)}
        if name == "train" and config.data.flip_features:
            data[name]["flipped"] = _features_of(load_feature_cache(flipped_dir), paths, name)
    return config, label_space, data


def group_rows(name: str, seed: int, seconds: float, label_space, data, probabilities: dict) -> list[dict]:
    """One row per split: per column accuracy, macro-F1, hmean F1 and known rows; subcategory accuracy."""
    from fashion_hier.metrics.groups import group_report

    rows = []
    for split, scores in probabilities.items():
        labels = data[split]["labels"]
        row = {"run": name, "seed": seed, "split": split, "seconds": round(seconds, 1)}
        if "subcategory" in scores:
            row["subcategory_accuracy"] = float((scores["subcategory"].argmax(1) == labels["subcategory"]).mean())
        for group, figures in group_report(labels["attributes"], scores["attributes"], label_space.groups).items():
            row.update({f"{group}_{key}": figures[key] for key in ("known", "accuracy", "macro_f1", "hmean_f1")})
        rows.append(row)
    return rows


def run_logistic_regression(label_space, data, seed: int) -> list[dict]:
    """Per column: LogisticRegression on standardised features of its known training rows, C chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    scaler = StandardScaler().fit(data["train"]["features"])
    x = {split: scaler.transform(data[split]["features"]) for split in data}
    probabilities = {split: {"attributes": np.zeros((len(x[split]), label_space.num_attributes))}
                     for split in ("validation", "test")}
    chosen = {}
    for group in label_space.groups:
        block = data["train"]["labels"]["attributes"][:, group.slice]
        known = block[:, 0] >= 0
        val_block = data["validation"]["labels"]["attributes"][:, group.slice]
        val_known = val_block[:, 0] >= 0
        best = None
        for c in LR_C:
            model = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(x["train"][known],
                                                                                   block[known].argmax(1))
            accuracy = float((model.predict(x["validation"][val_known]) == val_block[val_known].argmax(1)).mean())
            if best is None or accuracy > best[0]:
                best = (accuracy, c, model)
        _, chosen[group.name], model = best
        for split in probabilities:
            probabilities[split]["attributes"][:, group.start + model.classes_] = model.predict_proba(x[split])
    rows = group_rows("logistic_regression", seed, time.perf_counter() - started, label_space, data, probabilities)
    for row in rows:
        row.update({f"{group}_C": c for group, c in chosen.items()})
    return rows


def run_head(config, label_space, data, name: str, overrides: dict, seed: int) -> list[dict]:
    from fashion_hier.features import fit_head, predict_from_features

    config = config.with_overrides([f"{key}={value}" for key, value in {**overrides, "training.seed": seed}.items()])
    train = data["train"]
    started = time.perf_counter()
    fitted = fit_head(config, label_space, train["features"], train["labels"], data["validation"]["features"],
                      data["validation"]["labels"], flipped_train_features=train.get("flipped"))
    probabilities = {split: predict_from_features(fitted.model, data[split]["features"])
                     for split in ("validation", "test")}
    return group_rows(name, seed, time.perf_counter() - started, label_space, data, probabilities)


def _seed_of(run_dir: Path) -> int:
    """The training seed of a recipe run named ``<name>_s<seed>``."""
    return int(Path(run_dir).name.rsplit("_s", 1)[1])


def recipe_rows(run_dirs: list[Path]) -> list[dict]:
    """Rows for trained recipe runs from their evaluation folders (``<run>_eval_validation``, ``<run>_eval_test``)."""
    from fashion_hier.decoding import category_scores
    from fashion_hier.labels import LabelSpace
    from fashion_hier.metrics.groups import group_report
    from fashion_hier.rundir import RunDir

    rows = []
    for run_dir in run_dirs:
        label_space = LabelSpace.load(RunDir(run_dir).labels)
        seed = _seed_of(run_dir)
        for split in ("validation", "test"):
            saved = np.load(RunDir(Path(f"{run_dir}_eval_{split}")).predictions)
            truth, raw = saved["attributes_true"], saved["attributes_score"]
            answered = category_scores(raw, saved["category_score"].argmax(1), label_space)
            for name, scores in (("recipe", raw), ("recipe, as predict answers", answered)):
                row = {"run": name, "seed": seed, "split": split, "seconds": float("nan"),
                       "subcategory_accuracy": float((saved["subcategory_score"].argmax(1)
                                                      == saved["subcategory_true"]).mean())}
                for group, figures in group_report(truth, scores, label_space.groups).items():
                    row.update({f"{group}_{key}": figures[key] for key in ("known", "accuracy", "macro_f1", "hmean_f1")})
                rows.append(row)
    return rows


def stage_runs(stage: str) -> list[tuple[str, dict, int]]:
    if stage == "head":
        return [(f"head/{name}", overrides, 0) for name, overrides in HEAD_VARIANTS.items()]
    if stage.startswith("seeds:"):
        variant = stage.split(":", 1)[1]
        return [(f"head/{variant}", HEAD_VARIANTS[variant], seed) for seed in SEEDS]
    raise ValueError(f"unknown stage {stage!r}")


def summary(runs: pd.DataFrame) -> str:
    """Mean (and spread over seeds) of each column's accuracy and macro-F1 per run and split, in %."""
    columns = [c for c in runs.columns if c.endswith(("_accuracy", "_macro_f1"))]
    lines = []
    for split in ("validation", "test"):
        table = runs[runs["split"] == split].groupby("run")[columns]
        mean, spread, seeds = table.mean() * 100, table.std().fillna(0) * 100, table.size()
        cells = mean.round(2).astype(str) + " ± " + spread.round(2).astype(str)
        cells.insert(0, "seeds", seeds)
        lines += [f"### {split}", "", _markdown(cells.reset_index()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", default=str(Path("~/.cache/fashion_hier/weights/"
                                                      "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").expanduser()))
    parser.add_argument("--stage", default="lr", help="lr, head, or seeds:VARIANT")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="stage recipe: the trained run directories")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "groups.csv"
    if args.summary:
        (args.out / "groups.md").write_text(summary(pd.read_csv(csv)), encoding="utf-8")
        print((args.out / "groups.md").read_text(encoding="utf-8"))
        return
    done = set()
    if csv.is_file():
        done = set(zip(*pd.read_csv(csv)[["run", "seed"]].to_numpy().T))
    if args.stage == "recipe":
        for row in recipe_rows([run for run in args.runs if ("recipe", _seed_of(run)) not in done]):
            append_row(csv, row)
        return
    config, label_space, data = load_data(args.cache, args.weights)
    if args.stage == "lr":
        if ("logistic_regression", 0) not in done:
            for row in run_logistic_regression(label_space, data, seed=0):
                append_row(csv, row)
        return
    for name, overrides, seed in stage_runs(args.stage):
        if (name, seed) not in done:
            for row in run_head(config, label_space, data, name, overrides, seed):
                append_row(csv, row)


if __name__ == "__main__":
    main()
