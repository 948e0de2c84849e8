"""``fashion-hier similar``: the nearest catalogue images of query images, printed, as CSV, or as pictures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def plot_neighbours(query_path: str, neighbours: pd.DataFrame, out_path: str | Path, *, size: int = 160) -> Path:
    """A PNG of the query (left, framed) beside its neighbours in rank order, each titled with its distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion_hier.atomic import atomic_path
    from fashion_hier.data.images import load_image

    panels = [(query_path, "query")] + [(row.image_path, f"#{row.rank}  d={row.distance:.3f}")
                                        for row in neighbours.itertuples()]
    figure, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for axis, (path, title) in zip(axes[0], panels):
        axis.imshow(load_image(path, size, resize="pad").astype("uint8"))
        axis.set_title(title, fontsize=7)
        axis.set_xticks([]), axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("tab:red" if title == "query" else "lightgrey")
            spine.set_linewidth(2 if title == "query" else 0.5)
    figure.tight_layout()
    with atomic_path(out_path) as target:
        figure.savefig(target, dpi=100, format="png")
    plt.close(figure)
    return Path(out_path)


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier similar --index INDEX IMAGE [IMAGE ...] -k 10 [--out CSV] [--plot DIR]``."""
    from fashion_hier import cli_args
    from fashion_hier.search import load_index

    parser = parser or argparse.ArgumentParser(prog="fashion-hier similar", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=cli_args.as_text(cli_args.existing_file("a query image file")),
                        help="query image files")
    parser.add_argument("--index", required=True,
                        type=cli_args.existing_directory("an index folder written by 'fashion-hier index'"),
                        help="index directory written by fashion-hier index")
    parser.add_argument("--run", type=cli_args.run_or_model,
                        help="run to embed the queries (default: the one recorded in the index)")
    parser.add_argument("-k", type=cli_args.positive_int, default=10, help="neighbours per query")
    parser.add_argument("--out", type=cli_args.output_file, help="write the neighbours as CSV here instead of printing them")
    parser.add_argument("--plot", type=cli_args.output_directory,
                        help="folder for one PNG per query: the query beside its neighbours")
    args = parser.parse_args(argv)
    try:
        index = load_index(args.index, run=args.run)
        results = index.search(args.images, k=args.k)
    except (ValueError, FileNotFoundError) as error:
        print(f"fashion-hier similar: {error}", file=sys.stderr)
        return 2
    missing = sorted(set(args.images) - set(results["query"]))
    for path in missing:
        print(f"skipped unreadable query image {path}", file=sys.stderr)
    if args.out:
        from fashion_hier.atomic import atomic_path

        with atomic_path(args.out) as target:
            results.to_csv(target, index=False)
        print(f"wrote {len(results)} neighbours of {results['query'].nunique()} images to {args.out}")
    else:
        print(results.to_string(index=False))
    if args.plot:
        for number, (query, neighbours) in enumerate(results.groupby("query", sort=False)):
            written = plot_neighbours(query, neighbours, args.plot / f"{number:03d}_{Path(query).stem}.png")
            print(f"wrote {written}")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
