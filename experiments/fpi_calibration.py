"""Calibration and selective prediction of a Fashion Product Images recipe run, measured on its photos.

For each run: the test split evaluated as trained (temperature 1), then ``evaluate --calibrate`` (temperatures
fitted on the validation split) and, for each target accuracy, the confidence chosen on validation
(``--target-accuracy``) with what it gives on the test photos: the share answered in full and their
subcategory accuracy, to set beside the validation promise. Everything goes through the library
(``evaluate_run``, ``calibrate_run``, ``choose_min_confidence``); each model is scored on its images.

    python experiments/fpi_calibration.py --out experiments/results/fpi/calibration.csv RUN_DIR [RUN_DIR ...]

The run directory is changed as ``fashion-hier evaluate --calibrate --target-accuracy`` would change it:
work on a copy if the run must stay as trained.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def measure(run_dir: Path, targets: list[float]) -> list[dict]:
    from fashion_hier.calibrate import UNCALIBRATED, calibrate_run, choose_min_confidence
    from fashion_hier.checkpoints import save_model_file
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.predict import load_classifier
    from fashion_hier.rundir import RunDir

    run = RunDir(run_dir)
    reports = run.path.parent / f"{run.path.name}_calibration"  # beside the run: its own files stay its own
    task = load_classifier(run.path)  # start from the scores as trained, whatever was stored before
    save_model_file(task.with_temperatures(UNCALIBRATED).with_min_confidence({"category": None, "subcategory": None}),
                    run.model)
    rows = [_row(run, "as trained", evaluate_run(run.path, out_dir=reports / "as_trained", progress=False))]
    calibration = calibrate_run(run.path)
    rows.append(_row(run, "calibrated on validation",
                     evaluate_run(run.path, out_dir=reports / "calibrated", progress=False),
                     temperatures=calibration.temperatures))
    for target in targets:
        promise = choose_min_confidence(run.path, target)
        result = evaluate_run(run.path, out_dir=reports / f"selective_{target:g}", progress=False)
        rows.append(_row(run, f"min confidence for {target:.0%} (chosen on validation)", result,
                         temperatures=calibration.temperatures, promise=promise))
    return rows


def _row(run, setting: str, result: dict, *, temperatures=None, promise=None) -> dict:
    answered = result["selective"]["answered_in_full"]
    row = {"run": run.path.name, "setting": setting, "test_rows": result["n_samples"],
           "category_accuracy": result["category"]["accuracy"], "subcategory_accuracy": result["subcategory"]["accuracy"],
           **{f"{level}_{key}": result["calibration"][level][key] for level in ("category", "subcategory")
              for key in ("ece", "adaptive_ece", "brier", "log_loss")},
           "attributes_ece": result["calibration"]["attributes"]["ece"],
           "hF_micro": result["hierarchical"]["micro"]["hF"] if result["hierarchical"]["micro"] else None,
           "test_answered_in_full": answered["coverage"],
           "test_accuracy_of_answered": answered["subcategory_accuracy"]}
    if temperatures:
        row.update({f"{level}_temperature": value for level, value in temperatures.items()})
    if promise:
        row.update({"min_confidence_category": promise["min_confidence"]["category"],
                    "min_confidence_subcategory": promise["min_confidence"]["subcategory"],
                    "validation_answered_in_full": promise["coverage"],
                    "validation_accuracy_of_answered": promise["subcategory_accuracy"]})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path, help="CSV of one row per run and setting")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.98, 0.99])
    args = parser.parse_args(argv)
    rows = [row for run in args.runs for row in measure(run, args.targets)]
    frame = pd.DataFrame(rows)
    from fashion_hier.atomic import atomic_path

    with atomic_path(args.out) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.4f")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
