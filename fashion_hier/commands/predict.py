"""``fashion-hier predict``: score a folder or CSV of images with a run, locally or on Spark."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args
from fashion_hier.predict import ERROR_COLUMN, Predictor, list_images, shard, write_predictions  # no TensorFlow yet
from fashion_hier.engine import check_available, engine_spec
from fashion_hier.rundir import RunDir
from fashion_hier.streaming import check_batch_size


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` for argparse; checked by ``shard``'s own rule."""
    try:
        index, count = (int(part) for part in text.split("/"))
        shard([], index, count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n with 0 <= i < n, e.g. 0/4 ... 3/4") from None
    return index, count


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier predict --run DIR --images DIR_OR_CSV --out predictions.csv``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier predict", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_or_model,
                        help="run directory written by fashion-hier train, or a single .keras model file")
    cli_args.add_image_source_arguments(parser)
    parser.add_argument("--out", required=True, type=cli_args.output_file,
                        help="CSV to write (one row per image, written as batches finish)")
    parser.add_argument("--consistent", action="store_true",
                        help="pick the joint best (category, subcategory) pair, so the subcategory belongs to the category")
    parser.add_argument("--min-confidence", type=cli_args.probability, metavar="P",
                        help="answer the subcategory only where its score reaches P, else leave it to a person "
                             "(empty cell, needs_review true); default: the model's own (evaluate --target-accuracy)")
    parser.add_argument("--min-category-confidence", type=cli_args.probability, metavar="P",
                        help="the same for the category (no category: no subcategory either)")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n",
                        help="score every n-th image of the sorted list starting at i (split a catalogue over n machines)")
    parser.add_argument("--checkpoint", default=RunDir.MODEL, help=f"model file in the run (default: {RunDir.MODEL})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (none either when stderr is not a terminal)")
    cli_args.add_engine_arguments(parser)
    parser.add_argument("--spark", action="store_true",
                        help="score with pyspark (fashion_hier.spark); --out ending .parquet writes Parquet")
    parser.add_argument("--spark-master", default="local[2]", help="Spark master for --spark")
    args = parser.parse_args(argv)
    spark = args.spark or args.engine == "spark"  # 0.3's '--engine spark' still works, with Keras
    engine = "keras" if args.engine in ("local", "spark") else args.engine
    min_confidence = {level: value for level, value in (("category", args.min_category_confidence),
                                                        ("subcategory", args.min_confidence)) if value is not None}
    try:
        check_batch_size(args.batch_size)
        spec = engine_spec(engine, args.precision)
        check_available(spec)
        paths = shard(list_images(args.images, path_column=args.path_column), *args.shard)
        if spark:  # the workers load the model; the driver only checks the arguments
            Predictor.load(args.run, checkpoint=args.checkpoint)
        else:
            predictor = Predictor.load(args.run, checkpoint=args.checkpoint, engine=spec)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"fashion-hier predict: {error}", file=sys.stderr)
        return 2
    if spark:
        from fashion_hier.spark import predict_with_spark  # pyspark is an extra: imported only when asked for

        # the run directory itself when possible: its thresholds file then applies on Spark too
        model = args.run if args.checkpoint == RunDir.MODEL else RunDir(args.run) / args.checkpoint
        count = predict_with_spark(paths, model, args.out, master=args.spark_master, batch_size=args.batch_size,
                                   consistent=args.consistent, min_confidence=min_confidence,
                                   engine=spec)
        print(f"wrote {count} rows to {args.out} (spark, {args.spark_master})")
        return 0
    if min_confidence:
        predictor = predictor.with_min_confidence(min_confidence)
    scored, unreadable, review = write_predictions(predictor, paths, args.out, batch_size=args.batch_size,
                                                   consistent=args.consistent, progress=not args.no_progress and sys.stderr.isatty())
    print(f"wrote {scored + unreadable} rows to {args.out}: {scored} predictions"
          + (f", {review} of them left (in part) to a person (needs_review)" if review else "")
          + (f", {unreadable} unreadable images (see the {ERROR_COLUMN!r} column)" if unreadable else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
