"""Measure ``fashion-hier audit`` on a synthetic catalogue with a known set of flipped subcategory labels.

    python experiments/audit_synthetic.py --out /tmp/audit_synthetic [--n 1000] [--flip 0.05]

Writes the catalogue, flips ``--flip`` of the subcategory (``articleType``) labels to another
subcategory of a random row, audits it with the real pretrained backbone, and prints precision and
recall of the top-N subcategory rows (N = number flipped) and of cleanlab's own flagged set.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def flip_labels(labels_csv: Path, column: str, fraction: float, seed: int) -> set[str]:
    """Rewrite ``fraction`` of ``column`` with another value of that column; return the flipped ids."""
    frame = pd.read_csv(labels_csv, dtype=str)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(frame), size=round(fraction * len(frame)), replace=False)
    values = sorted(frame[column].unique())
    for row in flipped:
        others = [value for value in values if value != frame.at[row, column]]
        frame.at[row, column] = others[rng.integers(len(others))]
    frame.to_csv(labels_csv, index=False)
    return set(frame.loc[flipped, "id"])


def main() -> None:
    from fashion_hier.audit import AuditSource, HeadSettings, audit_catalog
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.labels import LabelColumns

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--weights", default="imagenet", help="backbone weights: imagenet or a .h5 file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels_csv = make_synthetic_catalog(args.out / "catalog", n=args.n, image_size=args.image_size, seed=args.seed)
    flipped = flip_labels(labels_csv, "articleType", args.flip, args.seed)
    source = AuditSource(labels_csv, labels_csv.parent / "images", LabelColumns(), weights=args.weights,
                         image_size=(args.image_size, args.image_size))
    table = audit_catalog(source, args.out / "audit", settings=HeadSettings(seed=args.seed), progress=False).table
    sub = table[table["level"] == "subcategory"]
    top = set(sub.nsmallest(len(flipped), "score")["id"])
    hits = len(top & flipped)
    flagged = set(sub.loc[sub["flagged"], "id"])
    print(f"rows {args.n}, flipped subcategory labels {len(flipped)}, judged {len(sub)}")
    print(f"top-{len(flipped)} by cleanlab score: precision {hits / len(top):.3f}, recall {hits / len(flipped):.3f}")
    print(f"cleanlab find_label_issues: {len(flagged)} flagged, precision {len(flagged & flipped) / max(len(flagged), 1):.3f}, "
          f"recall {len(flagged & flipped) / len(flipped):.3f}")


if __name__ == "__main__":
    main()
