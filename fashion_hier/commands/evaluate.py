"""``fashion-hier evaluate``: the paper's table, calibration and selective-prediction figures for a run."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from fashion_hier import cli_args
from fashion_hier.engine import engine_spec
from fashion_hier.rundir import SPLIT_NAMES, RunDir
from fashion_hier.thresholds import DEFAULT_CAP, DEFAULT_FLOOR


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier evaluate``: parse, call ``evaluate_run``, print the table."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_directory, help="run directory written by fashion-hier train")
    parser.add_argument("--split", choices=SPLIT_NAMES, help="saved split to evaluate (default: test)")
    parser.add_argument("--labels", type=cli_args.existing_file("a labelled CSV file"),
                        help="a new labelled CSV to evaluate instead of a saved split")
    parser.add_argument("--images", type=cli_args.existing_directory("the folder of the images of --labels"),
                        help="image folder for --labels")
    parser.add_argument("--out", type=cli_args.output_directory, help="where to write the report (default: the run directory)")
    parser.add_argument("--checkpoint", default=RunDir.MODEL, help=f"model file in the run (default: {RunDir.MODEL})")
    parser.add_argument("--tune-thresholds", action="store_true",
                        help=f"fit per-attribute thresholds on the validation split first; saved as RUN/{RunDir.THRESHOLDS}")
    parser.add_argument("--floor", type=cli_args.probability,
                        help=f"lowest threshold tuning may choose (default {DEFAULT_FLOOR})")
    parser.add_argument("--cap", type=cli_args.probability, help=f"highest threshold tuning may choose (default {DEFAULT_CAP})")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit one temperature per level on the validation split first (stored in the model), "
                             f"so that scores mean what they say; RUN/{RunDir.CALIBRATION} records it")
    parser.add_argument("--target-accuracy", type=cli_args.fraction,
                        help="choose on the validation split the confidence per level whose answers reach this "
                             "accuracy (e.g. 0.98) and store it in the model: predict then leaves less sure "
                             "answers to a person")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    cli_args.add_engine_arguments(parser, spark=False)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while predicting (there is none when stderr is not a terminal: a log file gets no bar frames)")
    args = parser.parse_args(argv)
    if (args.labels is None) != (args.images is None):
        parser.error("--labels and --images go together: a labelled CSV and the folder of its images")
    if args.labels is not None and args.split is not None:
        parser.error("--split names a saved split of the run; with --labels the CSV is evaluated instead — pass one")
    if (args.floor is not None or args.cap is not None) and not args.tune_thresholds:
        parser.error("--floor and --cap bound threshold tuning; add --tune-thresholds")
    from fashion_hier.evaluate import evaluate_run, markdown_table, unseen_summary  # TensorFlow: after parsing

    try:
        result = evaluate_run(
            args.run, split=args.split or "test", labels_csv=args.labels, image_dir=args.images, out_dir=args.out,
            tune_thresholds=args.tune_thresholds, checkpoint=args.checkpoint,
            floor=DEFAULT_FLOOR if args.floor is None else args.floor, cap=DEFAULT_CAP if args.cap is None else args.cap,
            batch_size=args.batch_size, progress=not args.no_progress and sys.stderr.isatty(), calibrate=args.calibrate,
            target_accuracy=args.target_accuracy, engine=engine_spec(args.engine, args.precision),
        )
    except (FileNotFoundError, ValueError, ImportError) as error:  # a missing run or CSV, a bad split: one line, as predict
        print(f"fashion-hier evaluate: {error}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(unseen_summary(result["unseen_labels"]))
    print(trust_summary(result))
    if result.get("threshold_hint"):
        print(result["threshold_hint"])
    print(f"wrote {RunDir.METRICS_JSON}, {RunDir.METRICS_MD}, {RunDir.REPORT_HTML}, per_class_*.csv, {RunDir.PREDICTIONS} and "
          f"{RunDir.PLOTS}/ to {args.out or args.run}")
    return 0



def trust_summary(result: dict) -> str:
    """Calibration per level and how many rows each level can answer at 98% accuracy, as a few lines."""
    lines = ["level        ECE     Brier   temperature  coverage at 98% accuracy"]
    for level in ("category", "subcategory"):
        figures, selective = result["calibration"][level], result["selective"][level]["at_accuracy"]["0.98"]
        coverage = "unreachable" if selective["min_confidence"] is None else (
            f"{selective['coverage']:.1%} (confidence >= {selective['min_confidence']:.3f})")
        lines.append(f"{level:<12} {figures['ece']:.4f}  {figures['brier']:.4f}  {figures['temperature']:<11.3f}  "
                     f"{coverage}")
    answered = result["selective"]["answered_in_full"]
    if answered["coverage"] < 1:
        accuracy = answered["subcategory_accuracy"]
        lines.append(f"with the model's min confidence: {answered['coverage']:.1%} of rows answered in full"
                     + ("" if accuracy is None else f", their subcategory accuracy {accuracy:.1%}")
                     + "; the others are left to a person (predict marks them needs_review)")
    return "\n".join(lines)
