"""The shipped recipe from nothing, timed, and its held-out numbers over seeds against the previous recipe's.

Trains ``experiments/configs/fpi_recipe.yaml`` with the library's ``train`` for each seed into
``WORK/recipe/recipe_s<seed>``: the first seed from nothing (its caches extracted into the empty
``WORK/recipe/features``), the others on those caches. The baseline, ``base_s<seed>``, is the same head on
``--baseline-output``'s caches extracted by Keras in float32 (the previous recipe; its conv5 fine-tune was not
kept on seed 0, so its model was this head). ``int8_s<seed>`` is the recipe with its caches extracted at int8
(``WORK/int8``, from nothing). Every run is scored on validation and test by ``evaluate_run``. One JSON row per
(run, split) goes to ``OUT/rows.jsonl`` as it is measured, each run's ``timings.json`` to ``OUT/timings.jsonl``, and ``OUT/recipe_time.md`` gets the tables (``--tables-only`` rebuilds them).

    python experiments/fpi_recipe_time.py --out experiments/results/fpi/recipe_time --work /tmp/recipe_time \\
        --baseline-output /work/runs/fpi --seeds 0 1 2 [--variants int8]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import fpi_engine  # figures: the accuracy per level and the attribute headline of a metrics dict
import fpi_recipe  # ROOT, DATA, WEIGHTS

CONFIG = fpi_recipe.ROOT / "experiments/configs/fpi_recipe.yaml"
SPLITS = ("validation", "test")
# bf16 extraction (the shipped recipe), int8 extraction (128 or 512 calibration photos), Keras f32 caches
VARIANTS = ("recipe", "int8", "int8_512", "baseline")


def config_for(output_dir: Path, name: str, seed: int, extra: list[str]):
    from fashion_hier.config import TrainConfig

    return TrainConfig.from_yaml(CONFIG).with_overrides([
        f"data.labels_csv={fpi_recipe.DATA}/styles.csv", f"data.image_dir={fpi_recipe.DATA}/images",
        f"model.weights={fpi_recipe.WEIGHTS}", f"output_dir={output_dir}", f"name={name}", f"training.seed={seed}",
        *extra])


def train_and_score(variant: str, config, out: Path) -> None:
    """Train ``config`` (reusing a finished run), record its timings, and score it on both splits."""
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.rundir import RunDir
    from fashion_hier.train import train

    run = RunDir(config.run_dir)
    if not run.is_finished:
        train(config, verbose=0)
    timings = json.loads(run.timings.read_text()) if run.timings.is_file() else {}
    _append(out / "timings.jsonl", {"variant": variant, "run": run.path.name, **timings})
    for split in SPLITS:
        result = evaluate_run(run.path, split=split, out_dir=out / "reports" / run.path.name / split, progress=False)
        _append(out / "rows.jsonl", {"variant": variant, "run": run.path.name, "seed": config.training.seed,
                                     "split": split, **fpi_engine.figures(result)})


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def tables(out: Path) -> str:
    """Mean ± sd over seeds per variant and split, then the timings of each run."""
    rows, timings = _read(out / "rows.jsonl"), _read(out / "timings.jsonl")
    lines = ["| variant | split | seeds | " + " | ".join(fpi_engine.FIGURES) + " |",
             "|---|---|---:|" + "---:|" * len(fpi_engine.FIGURES)]
    for variant in dict.fromkeys(row["variant"] for row in rows):
        for split in SPLITS:
            chosen = [row for row in rows if row["variant"] == variant and row["split"] == split]
            if not chosen:
                continue
            cells = []
            for figure in fpi_engine.FIGURES:
                values = [row[figure] for row in chosen]
                spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
                cells.append(f"{statistics.mean(values):.2f}{spread}")
            lines.append(f"| {variant} | {split} | {len(chosen)} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | run | total s | stages (s) |", "|---|---|---:|---|"]
    for timing in timings:
        stages = ", ".join(f"{name} {seconds:.0f}" for name, seconds in timing.get("stages", {}).items())
        lines.append(f"| {timing['variant']} | {timing['run']} | {timing.get('total', float('nan')):.0f} | "
                     f"{stages}, other {timing.get('other', 0):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, help="folder for the recipe's runs and caches (from nothing)")
    parser.add_argument("--baseline-output", type=Path, help="output_dir holding Keras float32 feature caches")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which to train and score (rows are appended; a finished run is scored again)")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    if not args.tables_only:
        if "recipe" in args.variants:
            for seed in args.seeds:
                train_and_score("recipe", config_for(args.work / "recipe", f"recipe_s{seed}", seed, []), args.out)
        if "int8" in args.variants:  # its own caches, from nothing: extraction at int8 (calibrated on train photos)
            int8 = ["training.extraction_engine=openvino", "training.extraction_precision=int8"]
            for seed in args.seeds:
                train_and_score("int8 extraction", config_for(args.work / "int8", f"int8_s{seed}", seed, int8),
                                args.out)
        if "int8_512" in args.variants:  # the same, its ranges collected on 512 training photos instead of 128
            int8 = ["training.extraction_engine=openvino", "training.extraction_precision=int8",
                    "training.extraction_calibration_size=512"]
            for seed in args.seeds:
                train_and_score("int8 extraction, 512 calibration photos",
                                config_for(args.work / "int8", f"int8_512_s{seed}", seed, int8), args.out)
        if args.baseline_output is not None and "baseline" in args.variants:
            keras_f32 = ["training.extraction_engine=keras", "training.extraction_precision=f32"]
            for seed in args.seeds:
                train_and_score("previous (Keras f32 caches)",
                                config_for(args.baseline_output, f"base_s{seed}", seed, keras_f32), args.out)
    (args.out / "recipe_time.md").write_text(tables(args.out), encoding="utf-8")
    print((args.out / "recipe_time.md").read_text())


if __name__ == "__main__":
    main()
