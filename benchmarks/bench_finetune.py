"""Partial (cached conv5) fine-tuning against full fine-tuning of ResNet-50 on the shared real photos.

Stage ``extract``: the activation cache (conv4_block6_out, original + flipped view) of every photo of
``experiments/configs/fpi_paper.yaml``'s catalogue. Stage ``measure`` (one run): seconds per training
step of the cached conv5 fine-tune and of full fine-tuning at 224 px on the same machine, then the
partial fine-tune itself on the fixed 70/15/15 split and its validation/test scores beside the frozen
backbone's (the same head trained on the same cache with conv5 frozen).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "configs" / "fpi_paper.yaml"
WEIGHTS = "/work/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
DATA = "/work/shared/data/fashion-product-images"


def paper_config(weights: str):
    from fashion_hier.config import TrainConfig
    from fashion_hier.train import resolved_config

    config = TrainConfig.from_yaml(CONFIG).with_overrides([f"model.weights={weights}", f"data.labels_csv={DATA}/styles.csv",
                                                        f"data.image_dir={DATA}/images"])
    return resolved_config(config)


def extract(args) -> None:
    from fashion_hier.finetune import extract_activations
    from fashion_hier.train import read_config_catalog

    config = paper_config(args.weights)
    catalog = read_config_catalog(config)
    print(catalog.report, flush=True)
    started = time.perf_counter()
    cache = extract_activations(catalog.paths, cache_dir=args.cache, backbone=config.model.backbone,
                                weights=config.model.weights, image_size=tuple(config.data.image_size),
                                resize=config.data.resize, cut_layer=args.cut, batch_size=args.batch_size)
    print(f"extracted {cache.manifest['rows_done']} rows x 2 views in {time.perf_counter() - started:.0f} s "
          f"(manifest seconds {cache.manifest['seconds']:.0f}); unreadable: {int((~cache.readable).sum())}",
          flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["extract", "measure"])
    parser.add_argument("--cache", default="/work/cache/h8-finetune/activations")
    parser.add_argument("--weights", default=WEIGHTS)
    parser.add_argument("--cut", default="conv4_block6_out")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    {"extract": extract}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
