"""Audit the Fashion Product Images catalogue and draw its most suspicious subcategory labels as a PNG strip.

    python experiments/audit_fpi.py --data DIR --weights RESNET50_NOTOP.h5 --cache CACHE --out OUT [--top 20]

``DIR`` holds ``styles.csv`` and ``images/``. Writes ``OUT/audit.csv``, ``OUT/audit.html`` and
``OUT/top<N>.png``: the ``--top`` lowest-scored subcategory (``articleType``) labels, each image
captioned with the catalogue's label and the cross-validated model's suggestion.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def draw_strip(rows, path: Path, columns: int = 10) -> Path:
    from fashion_hier.data import load_image

    count = len(rows)
    grid_rows = -(-count // columns)
    figure = Figure(figsize=(2.2 * columns, 3.0 * grid_rows + 0.4), layout="constrained")
    figure.suptitle("Most suspicious articleType labels (cleanlab on 5-fold out-of-fold predictions): "
                    "black = catalogue label, green = suggested", fontsize="medium")
    for i, row in enumerate(rows.itertuples(index=False)):
        axes = figure.add_subplot(grid_rows, columns, i + 1)
        axes.imshow(load_image(row.image_path, (160, 160), resize="pad").astype(np.uint8))
        axes.set_axis_off()
        axes.set_title(f"#{row.rank} id {row.id}\ngiven: {row.given}", fontsize="small")
        axes.annotate(f"suggested: {row.suggested}\nscore {row.score:.3f}", xy=(0.5, 0), xycoords="axes fraction",
                      xytext=(0, -4), textcoords="offset points", ha="center", va="top", fontsize="small",
                      color="tab:green")
    figure.savefig(path, dpi=100)
    return path


def main() -> None:
    from fashion_hier.audit import AuditSource, audit_catalog
    from fashion_hier.labels import LabelColumns

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    source = AuditSource(args.data / "styles.csv", args.data / "images", LabelColumns(), weights=args.weights)
    table = audit_catalog(source, args.out, cache_dir=args.cache, progress=False).table
    for level, part in table.groupby("level", sort=False):
        print(f"{level:<12} {int(part['flagged'].sum()):>5} of {len(part)} labels flagged")
    top = table[table["level"] == "subcategory"].nsmallest(args.top, "score")
    print(top[["rank", "id", "given", "suggested", "score"]].to_string(index=False))
    print(f"wrote {draw_strip(top, args.out / f'top{args.top}.png')}")


if __name__ == "__main__":
    main()
