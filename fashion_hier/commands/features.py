"""``fashion-hier features``: cache frozen-backbone features of a catalogue, then train the head on them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_hier import cli_args
from fashion_hier.config import TrainConfig, add_override_argument
from fashion_hier.features.cache import default_cache_dir, ensure_feature_caches
from fashion_hier.rundir import RunDir


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier features --config cfg.yaml | --run DIR [--set k=v] [--cache DIR] [--overwrite]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier features",
                                               description="cache frozen-backbone features and train the head on them")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=cli_args.as_text(cli_args.existing_file("a YAML file of a TrainConfig")),
                        help="YAML file of a TrainConfig")
    source.add_argument("--run", type=cli_args.as_text(cli_args.run_directory),
                        help="an existing run directory: use its saved config")
    add_override_argument(parser)
    parser.add_argument("--cache", type=cli_args.as_text(cli_args.output_directory),
                        help="feature cache directory (default: OUTPUT_DIR/features/<backbone>_<size>_<hash>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    parser.add_argument("--overwrite-cache", action="store_true",
                        help="recompute a cache that was made for other images, backbone, weights or size")
    parser.add_argument("--extract-only", action="store_true",
                        help="compute the feature caches (and model.trainable_from's activation cache) and stop")
    parser.add_argument("--flip", action="store_true",
                        help="also cache horizontally flipped views (CACHE/flipped; implied by data.flip_features)")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32,
                        help="images per backbone batch during extraction")
    args = parser.parse_args(argv)
    # TensorFlow: after parsing
    from fashion_hier.features.head_training import train_head_on_features
    from fashion_hier.data.catalog import read_config_catalog
    from fashion_hier.train import RunDirectoryError, resolved_config

    try:
        config_path = RunDir(args.run).config if args.run else Path(args.config)
        config = TrainConfig.from_yaml(config_path).with_overrides(args.overrides)
        config = resolved_config(config)
        catalog = read_config_catalog(config)
        print(catalog.report)
        cache_dir = Path(args.cache) if args.cache else default_cache_dir(config, catalog.paths, catalog=catalog)
        ensure_feature_caches(config, catalog.paths, cache_dir, flip=args.flip, overwrite=args.overwrite_cache,
                              batch_size=args.batch_size, progress=True, catalog=catalog)
        print(f"features cached in {cache_dir}")
        if args.extract_only and config.model.trainable_from:   # the fine-tune's cache is extraction too
            from fashion_hier.finetune.stage import ensure_activation_cache

            activations = ensure_activation_cache(config, catalog.paths, catalog=catalog)
            print(f"activations at {config.model.trainable_from} cached in {activations.cache_dir}")
        if not args.extract_only:
            run_dir = train_head_on_features(config, cache_dir, overwrite=args.overwrite)
            print(f"run: {run_dir}")
    except (ValueError, FileNotFoundError, RunDirectoryError) as error:
        print(f"fashion-hier features: {error}", file=sys.stderr)
        return 2
    return 0
