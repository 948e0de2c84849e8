"""Score recipe runs (frozen or partially fine-tuned) on their validation and test photos, like fpi_recipe.py.

Each run directory was written by the one recipe command (``fashion-hier train --config
experiments/configs/fpi_recipe.yaml ...``). Its ``model.keras`` is loaded alone (``Predictor.load``) and
scores the *images* of the run's saved validation and test splits, so the numbers are those of the
model a user gets; the metrics are ``fpi_recipe.scores`` (the same as every row of ``recipe.csv``).
One row per run is appended to ``--out`` (a run already there is skipped).

    python experiments/fpi_score_runs.py --out runs.csv RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fpi_recipe import scores  # noqa: E402


def score_run(run_dir: Path) -> dict:
    from fashion_hier import Predictor
    from fashion_hier.config import TrainConfig, training_seed
    from fashion_hier.evaluate import read_split
    from fashion_hier.rundir import RunDir

    run = RunDir(run_dir)
    predictor = Predictor.load(run.path)
    label_space = predictor.label_space
    config = TrainConfig.from_yaml(run.config)
    train = read_split(run.path, "train")
    train = train.loc[label_space.known_rows(train)]
    counts = np.bincount(label_space.encode(train)["subcategory"], minlength=label_space.num_subcategories)
    finished = run.finished_info()
    finetune = finished.get("finetune", {})
    row = {"run": run.path.name, "training_seed": training_seed(config),
           "trainable_from": config.model.trainable_from or "", "finetune_learning_rate":
           config.training.finetune_learning_rate if config.model.trainable_from else np.nan,
           "finetune_kept": finetune.get("kept", ""), "finetune_best_epoch": finetune.get("best_epoch", ""),
           "finetune_epoch_seconds": json.dumps(finetune.get("epoch_seconds", []))}
    for split in ("validation", "test"):
        frame = read_split(run.path, split)
        frame = frame.loc[label_space.known_rows(frame)]
        started = time.perf_counter()
        probabilities = predictor.predict_scores(frame["image_path"].astype(str).tolist(), batch_size=64)
        row[f"{split}_score_seconds"] = time.perf_counter() - started
        row.update({f"{split}_{k}": v for k, v in scores(label_space.encode(frame), probabilities, label_space,
                                                       counts).items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    done = set(pd.read_csv(args.out)["run"]) if args.out.is_file() else set()
    for run_dir in args.runs:
        if run_dir.name in done:
            continue
        row = score_run(run_dir)
        frame = pd.DataFrame([row])
        frame.to_csv(args.out, mode="a", header=not args.out.is_file(), index=False)
        print(f"{run_dir.name}: val sub acc {row['validation_subcategory_accuracy']:.4f}, test sub acc "
              f"{row['test_subcategory_accuracy']:.4f}, test cat acc {row['test_category_accuracy']:.4f}, "
              f"test mAP {row['test_attribute_map']:.4f}", flush=True)


if __name__ == "__main__":
    main()
