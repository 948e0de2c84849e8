"""``fashion-hier index``: embed a folder or CSV of images with a run's model and write a similarity index."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args
from fashion_hier.engine import engine_spec
from fashion_hier.predict import list_images
from fashion_hier.search import EMBEDDINGS, build_index, load_index


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier index --run R --images DIR_OR_CSV --out INDEX [--extend]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier index", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_or_model,
                        help="run directory (or .keras file) whose model embeds")
    cli_args.add_image_source_arguments(parser)
    parser.add_argument("--out", required=True, type=cli_args.output_directory, help="index directory to write")
    parser.add_argument("--embedding", choices=EMBEDDINGS, default="pooled",
                        help="pooled backbone features, or the head's subcategory state")
    parser.add_argument("--extend", action="store_true", help="add the images to the existing index at --out")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    cli_args.add_engine_arguments(parser, spark=False)
    args = parser.parse_args(argv)
    try:
        paths = list_images(args.images, path_column=args.path_column)
        if args.extend:
            index = load_index(args.out, run=args.run, engine=_engine_given(parser, args))
            before = len(index)
            unreadable = index.extend(paths, batch_size=args.batch_size)
            index.save(args.out)
            added = len(index) - before
        else:
            index, unreadable = build_index(args.run, paths, args.out, embedding=args.embedding,
                                            batch_size=args.batch_size, engine=engine_spec(args.engine, args.precision))
            added = len(index)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"fashion-hier index: {error}", file=sys.stderr)
        return 2
    for path, reason in unreadable:
        print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)
    print(f"{'added' if args.extend else 'indexed'} {added} images ({index.record['kind']}, "
          f"{index.record['embedding']} {index.record['dimension']}-d) in {args.out}; {len(unreadable)} unreadable")
    return 0


def _engine_given(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The ``--engine``/``--precision`` the user gave, or None when both were left at their defaults: ``--extend``
    then embeds as the index was embedded, and refuses another engine rather than ignoring it."""
    given = (args.engine, args.precision)
    return None if given == (parser.get_default("engine"), parser.get_default("precision")) else engine_spec(*given)


if __name__ == "__main__":
    sys.exit(main())
