"""One tiny trained run for the production tests (spark, export, search): small_cnn, no weights, 1 epoch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.config import TrainConfig

# attribute columns for ``groups=True``: two single groups, two multi ones; a name with a space on purpose
TINY_GROUPS = ('[{name: gender}, {name: base colour, column: baseColour}, '
               '{name: tags, kind: multi, separator: "|"}, {name: pattern, kind: multi, separator: "|"}]')


def train_tiny_run(root: Path, *, size: int = 32, n: int = 60, groups: bool = False) -> Path:
    """Train a synthetic-catalogue run under ``root`` and return its run directory.

    ``groups``: the attribute level as columns (``TINY_GROUPS``) instead of the flat tag set, read from
    the synthetic catalogue plus a "|"-joined ``tags`` column, with a third of the cells blank.
    """
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.train import train

    labels_csv = make_synthetic_catalog(root / "data", n=n, image_size=size, seed=1)
    overrides = []
    if groups:
        labels_csv = _with_blank_cells(labels_csv, root / "data" / "styles_grouped.csv")
        overrides = ["data.columns.attributes=[]", f"data.columns.groups={TINY_GROUPS}"]
    config = TrainConfig().with_overrides([
        f"data.labels_csv={labels_csv}", f"data.image_dir={root / 'data' / 'images'}",
        f"data.image_size=[{size}, {size}]", "data.augment=false", "model.backbone=small_cnn",
        "model.weights=null", "model.units=8", "training.epochs=1", "training.batch_size=16",
        "training.jit_compile=false", "training.mixed_precision=off",
        f"output_dir={root}", "name=tiny", *overrides,
    ])
    return train(config, verbose=0)


def _with_blank_cells(labels_csv: Path, out: Path) -> Path:
    frame = pd.read_csv(labels_csv)
    frame["tags"] = frame["season"] + "|" + frame["usage"]
    rng = np.random.default_rng(0)
    for column in ("baseColour", "tags", "pattern"):
        frame.loc[rng.random(len(frame)) < 0.3, column] = None
    frame.to_csv(out, index=False)
    return out


def with_group_gaps(run_dir: Path, paths: list[str]):
    """The grouped run's task with applicability and thresholds moved so that ``paths`` meet every case.

    The first image's predicted category c (consistent decoding): per kind, one group applies to c only,
    the other to every category but c, so both kinds answer some rows and leave some empty. Multi
    thresholds sit midway between the two middle scores of each value, so some rows pick it and some not.
    """
    from fashion_hier.labels import LabelSpace
    from fashion_hier.predict import Predictor
    from fashion_hier.task import HierarchicalClassifier

    predictor = Predictor.load(run_dir)
    classifier, space = predictor.model, predictor.label_space
    first = predictor.predict(paths[:1], consistent=True)["category"].iloc[0]
    others = [c for c in space.categories if c != first]
    data = space.to_dict()
    seen = {"single": 0, "multi": 0}
    for entry in data["groups"]:
        entry["applies_to"] = [first] if seen[entry["kind"]] % 2 == 0 else others
        seen[entry["kind"]] += 1
    scores = np.sort(predictor.predict_scores(paths)["attributes"], axis=0)
    middle = len(paths) // 2
    thresholds = classifier.thresholds
    for group in space.groups:
        if group.kind == "multi":
            # float32-representable, so that the graph's float32 comparison and numpy's agree
            midway = (scores[middle - 1, group.slice] + scores[middle, group.slice]) / 2
            thresholds[group.slice] = midway.astype(np.float32)
    return HierarchicalClassifier(classifier.network, LabelSpace.from_dict(data), thresholds=thresholds,
                                  image_size=classifier.image_size, resize=classifier.resize,
                                  temperatures=classifier.temperatures, min_confidence=classifier.min_confidence)
