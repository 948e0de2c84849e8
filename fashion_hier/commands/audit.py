"""``fashion-hier audit``: rank a catalogue's probably-wrong labels (cross-validated heads, cleanlab) and print a summary."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from fashion_hier import audit, cli_args
from fashion_hier.config_checks import BACKBONE_NAMES
from fashion_hier.labels import LabelColumns


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier audit --run RUN | --labels CSV --images DIR [--out DIR] [--cache DIR] [--folds K]
    [--allow-untrained-backbone]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier audit", description=audit.__doc__.splitlines()[0])
    parser.add_argument("--run", type=cli_args.run_directory,
                        help="run directory: its catalogue, label columns and pretrained backbone")
    parser.add_argument("--labels", type=cli_args.existing_file("a labelled CSV file"),
                        help="labelled CSV to audit (instead of, or overriding, the run's)")
    parser.add_argument("--images", type=cli_args.existing_directory("the folder of the images of --labels"),
                        help="image folder for --labels")
    parser.add_argument("--out", type=cli_args.output_directory, default="audit",  # a string: checked too
                        help="folder for audit.csv, audit.json and audit.html, and fill_in.csv with attribute "
                             "columns (default ./audit)")
    parser.add_argument("--cache", type=cli_args.output_directory,
                        help="feature cache folder (default OUT/features); reused when it matches")
    parser.add_argument("--weights", type=cli_args.backbone_weights,
                        help="backbone weights: 'imagenet', a .h5 path or 'none' (default: the run's, else imagenet)")
    parser.add_argument("--backbone", choices=BACKBONE_NAMES, help="backbone (default: the run's, else resnet50)")
    parser.add_argument("--folds", type=cli_args.int_at_least(2), default=audit.DEFAULT_FOLDS,
                        help=f"cross-validation folds (default {audit.DEFAULT_FOLDS})")
    parser.add_argument("--gallery", type=cli_args.non_negative_int, default=200,
                        help="flagged labels shown in audit.html (default 200)")
    parser.add_argument("--seed", type=cli_args.non_negative_int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while extracting features")
    parser.add_argument("--allow-untrained-backbone", action="store_true",
                        help="audit even with a backbone without pretrained weights (random features: the rankings "
                             "flag correct labels); the report is marked not to be trusted")
    args = parser.parse_args(argv)
    if args.run is None and (args.labels is None or args.images is None):
        parser.error("pass --run RUN, or --labels CSV --images DIR")
    if (args.labels is None) != (args.images is None):
        parser.error("--labels and --images go together: a labelled CSV and the folder of its images")
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    weights = None if args.weights in ("none", "None", "null") else args.weights
    if args.run is not None:
        source = audit.AuditSource.from_run(args.run, labels_csv=args.labels, image_dir=args.images,
                                            backbone=args.backbone, weights="run" if args.weights is None else weights)
    else:
        source = audit.AuditSource(args.labels, args.images, LabelColumns(), backbone=args.backbone or "resnet50",
                                   weights="imagenet" if args.weights is None else weights)
    result = audit.audit_catalog(source, args.out, cache_dir=args.cache,
                                 settings=audit.HeadSettings(folds=args.folds, seed=args.seed), gallery_size=args.gallery,
                                 progress=not args.no_progress and sys.stderr.isatty(),
                                 allow_untrained_backbone=args.allow_untrained_backbone)
    counts = result.table.groupby(["level", "group"], sort=False)["flagged"].agg(["sum", "size"])
    for (level, group), (flagged, judged) in counts.iterrows():
        quality = result.groups[group] if result.grouped and level == "attributes" else result.quality[level]
        name = f"{level}: {group}" if result.grouped and level == "attributes" else level
        verdict = "" if quality.trusted and not result.untrained_backbone else "  NOT TO BE TRUSTED"
        print(f"{name:<12} {int(flagged):>6} of {int(judged)} labels flagged; {quality.describe()}{verdict}")
    if not result.trusted:
        print(f"the rankings are not to be trusted (warnings above and in {args.out / audit.AUDIT_JSON})")
    written = [args.out / audit.AUDIT_CSV, args.out / audit.AUDIT_JSON, args.out / audit.AUDIT_HTML]
    if result.grouped:
        blank = sum(cells.blank for cells in result.cells.values())
        print(f"{len(result.fill_in)} fill-in suggestions for {blank} empty attribute cells")
        written.append(args.out / audit.FILL_IN_CSV)
    print(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
