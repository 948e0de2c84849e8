"""Accuracy per inference engine and precision on Fashion Product Images: each run evaluated on its validation
and test photos by Keras float32 and by OpenVINO f32, bf16 and int8 (``fashion_hier.engine``), through
``fashion_hier.evaluate.evaluate_run`` — the numbers ``fashion-hier evaluate --engine ... --precision ...`` prints.

One row per (run, split, engine) in ``OUT/engine_accuracy.csv``, with the change against Keras float32 in
points, and ``OUT/engine_accuracy.md``; each row is appended to ``OUT/rows.jsonl`` as it is measured
(``--tables-only`` rebuilds the tables from it). The default precision is chosen on validation only: the fastest one
whose subcategory accuracy drops by at most ``MAX_DROP`` points on every run.

    python experiments/fpi_engine.py --out experiments/results/fpi/engine --reports /tmp/engine_reports RUN [RUN ...]
    python experiments/fpi_engine.py --out experiments/results/fpi/engine --tables-only
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENGINES = (("keras", "f32"), ("openvino", "f32"), ("openvino", "bf16"), ("openvino", "int8"))
MAX_DROP = 0.5  # points of subcategory accuracy a precision may lose (issue 21)
FIGURES = ("category_accuracy", "subcategory_accuracy", "subcategory_OF1", "attributes_figure")


def figures(result: dict) -> dict:
    """Accuracy per level, subcategory OF1, and the attribute level's headline: mAP of the flat tag set, or the
    mean accuracy of the single-valued columns."""
    groups = result.get("groups") or {}
    singles = [g["accuracy"] for g in groups.values() if "accuracy" in g]
    attributes = (100 * sum(singles) / len(singles)) if singles else 100 * result["attributes"]["mAP"]
    return {"category_accuracy": 100 * result["category"]["accuracy"],
            "subcategory_accuracy": 100 * result["subcategory"]["accuracy"],
            "subcategory_OF1": 100 * result["subcategory"]["OF1"],
            "attributes_figure": attributes,
            "attributes_figure_is": "mean single-column accuracy" if singles else "mAP"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reports", type=Path, help="where evaluate's report folders go (not committed)")
    parser.add_argument("--tables-only", action="store_true", help="rebuild the tables from OUT/rows.jsonl")
    parser.add_argument("--splits", default="validation,test")
    parser.add_argument("--fresh", action="store_true", help="delete each run's openvino/ cache first (times conversion)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    journal = args.out / "rows.jsonl"
    if not args.tables_only:
        if not args.runs or args.reports is None:
            parser.error("pass RUN directories and --reports (or --tables-only)")
        measure(args, journal)
    write_tables([json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line], args.out)


def measure(args, journal: Path) -> None:
    """Evaluate every run on every split with every engine, appending each row to ``journal``."""
    from fashion_hier.engine import EngineSpec
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.rundir import RunDir

    for run in args.runs:
        if args.fresh:
            shutil.rmtree(run / RunDir.OPENVINO, ignore_errors=True)
        for split in args.splits.split(","):
            for engine, precision in ENGINES:
                started = time.perf_counter()
                result = evaluate_run(run, split=split, out_dir=args.reports / f"{run.name}_{split}_{engine}_{precision}",
                                      progress=False, engine=EngineSpec(engine, precision))
                row = {"run": run.name, "split": split, "engine": engine, "precision": precision,
                       "n_photos": result["n_samples"], "seconds": round(time.perf_counter() - started, 1),
                       **figures(result)}
                with journal.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(row, file=sys.stderr, flush=True)


def write_tables(rows: list[dict], out: Path) -> None:
    table = pd.DataFrame(rows)
    reference = table[table.engine.eq("keras")].set_index(["run", "split"])
    for figure in FIGURES:
        table[f"{figure}_change"] = [getattr(row, figure) - reference.loc[(row.run, row.split), figure]
                                     for row in table.itertuples()]
    table.round(3).to_csv(out / "engine_accuracy.csv", index=False)
    validation = table[table.split.eq("validation") & table.engine.eq("openvino")]
    kept = [p for p in ("int8", "bf16", "f32")
            if (validation[validation.precision.eq(p)].subcategory_accuracy_change >= -MAX_DROP).all()]
    lines = ["| run | split | engine | precision | photos | category acc | subcategory acc (change) | subcategory OF1 "
             "| attributes (change) | seconds |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in table.itertuples():
        lines.append(f"| {row.run} | {row.split} | {row.engine} | {row.precision} | {row.n_photos} | "
                     f"{row.category_accuracy:.2f} | {row.subcategory_accuracy:.2f} ({row.subcategory_accuracy_change:+.2f}) | "
                     f"{row.subcategory_OF1:.2f} | {row.attributes_figure:.2f} ({row.attributes_figure_change:+.2f}) | "
                     f"{row.seconds:.0f} |")
    lines.append("")
    lines.append(f"Precisions within {MAX_DROP} pt of Keras float32 subcategory accuracy on every run's validation "
                 f"split, fastest first: {', '.join(kept) or 'none'}.")
    (out / "engine_accuracy.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
