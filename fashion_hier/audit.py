"""Find the catalogue's probably-wrong labels: out-of-fold predictions on cached features, ranked by cleanlab.

Every row is scored by a model that never saw its label: the catalogue is cut into ``folds``
stratified folds and, for each fold, a head trained on the other folds predicts it. The heads are
scikit-learn logistic regressions on standardised, PCA-reduced frozen-backbone features (the
feature cache of ``fashion_hier.features``): convex, deterministic, seconds per fold on a CPU and
reasonably calibrated, which is what cleanlab's confident learning needs. Training the library's
Keras head k times would take minutes and add epochs and early stopping to tune, for probabilities
that are no better calibrated.

cleanlab then ranks the given labels: ``cleanlab.rank.get_label_quality_scores`` and
``cleanlab.filter.find_label_issues`` for category and subcategory, their
``cleanlab.multilabel_classification`` counterparts for the attribute set. The backbone is the
run's *pretrained* one (ImageNet weights), never the run's fine-tuned model, which trained on the
labels being judged. ``fashion-hier audit`` writes ``audit.csv``, ``audit.json`` (how far to trust it)
and a self-contained ``audit.html``.

The audit refuses what it cannot judge. A backbone without pretrained weights (``small_cnn``, or
``weights=None``) gives random features: cleanlab takes the heads' guesses for evidence and flags
about half of a clean synthetic catalogue's correct labels, so ``audit_catalog`` raises
``UntrainedBackboneError`` unless ``allow_untrained_backbone=True``. And every level reports how well
its out-of-fold heads classify (accuracy; mAP for attributes) against the score of always answering
the commonest label; a level not at least halfway from that baseline to a perfect score
(``TRUST_MARGIN``) is marked, logged and shown as not to be trusted.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fashion_hier.labels import LEVELS, LabelSpace

logger = logging.getLogger(__name__)

AUDIT_CSV = "audit.csv"
AUDIT_HTML = "audit.html"
AUDIT_JSON = "audit.json"
CSV_COLUMNS = ("rank", "level", "column", "id", "image_path", "given", "suggested", "score")
PCA_COMPONENTS = 256
DEFAULT_FOLDS = 5
# A level's rankings are trusted when its out-of-fold score is at least this fraction of the way from the
# uninformed baseline (always the commonest label) to 1. A floor, not a guarantee: it catches heads that
# learnt next to nothing, but random conv features of real photos pass it (FPI, 1,500 rows, untrained
# small_cnn: subcategory accuracy 0.689 against majority 0.191; ImageNet ResNet-50: 0.791), which is why an
# untrained backbone is refused from its configuration (check_pretrained_backbone), not judged by this score.
TRUST_MARGIN = 0.5


class UntrainedBackboneError(ValueError):
    """The audit's backbone has no pretrained weights: its features are random, and so would its rankings be."""


def check_pretrained_backbone(backbone: str, weights: str | os.PathLike | None, *, allow: bool = False) -> str | None:
    """Refuse a backbone without pretrained weights (``UntrainedBackboneError``), unless ``allow``.

    Returns the warning to record (also logged) when ``allow`` lets an untrained backbone through, else None.
    """
    from fashion_hier.models.backbones import backbone_spec

    if not backbone_spec(backbone).pretrained:
        reason, remedy, train = (f"backbone {backbone!r} has no pretrained weights", "--backbone resnet50 --weights",
                                 "model.backbone: resnet50 and model.weights")
    elif weights is None:
        reason, remedy, train = (f"backbone {backbone!r} with weights=None is randomly initialised", "--weights",
                                 "model.weights")
    else:
        return None
    consequence = ("its features are random, so the rankings would flag correct labels "
                   "(about half of a clean synthetic catalogue's)")
    if not allow:
        raise UntrainedBackboneError(
            f"audit refused: {reason}: {consequence}. Audit with pretrained features: {remedy} imagenet, or {remedy} "
            f"FILE written by shared/tools/get_resnet50_imagenet.sh (or train the run with {train} set to one of "
            f"them); --allow-untrained-backbone (allow_untrained_backbone=True) audits anyway")
    message = f"untrained backbone audited on request: {reason}: {consequence}; the rankings are not to be trusted"
    logger.warning("audit: %s", message)
    return message


@dataclass(frozen=True)
class HeadSettings:
    """The cross-validated heads: folds, PCA size, inverse L2 strength ``C``, seed."""

    folds: int = DEFAULT_FOLDS
    components: int = PCA_COMPONENTS
    C: float = 1.0
    seed: int = 0


# ---- out-of-fold probabilities ----------------------------------------------------------------
def _feature_transform(train: np.ndarray, components: int, seed: int):
    """Standardise, then PCA to at most ``components`` dimensions, fitted on the training fold only."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    components = min(components, train.shape[1], train.shape[0] - 1)
    steps = [StandardScaler()]
    if components < train.shape[1]:
        steps += [PCA(n_components=components, random_state=seed), StandardScaler()]
    return make_pipeline(*steps).fit(train)


def _folds(strata: np.ndarray, folds: int, seed: int):
    """Stratified folds on ``strata`` (rare strata may fall short of ``folds`` rows: sklearn warns, we don't)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
        return list(splitter.split(np.zeros(len(strata)), strata))


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, *, multilabel: bool = False,
                              strata: np.ndarray | None = None, settings: HeadSettings = HeadSettings()) -> np.ndarray:
    """Class probabilities of every row from a logistic regression trained on the other folds.

    Multi-class: ``labels`` (N,) in 0..K-1, returns (N, K) rows summing to 1. Multi-label:
    ``labels`` (N, A) multi-hot, returns (N, A) independent probabilities (one binary head per
    column; a column constant in a training fold predicts its training frequency).
    """
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"out_of_fold_probabilities: {len(features)} feature rows but {len(labels)} label rows")
    if settings.folds < 2 or len(features) < settings.folds:
        raise ValueError(f"out_of_fold_probabilities: need folds >= 2 and at least folds rows, "
                         f"got folds={settings.folds} for {len(features)} rows")
    width = labels.shape[1] if multilabel else int(labels.max()) + 1
    probabilities = np.zeros((len(features), width), dtype=np.float64)
    strata = labels if strata is None and not multilabel else strata
    split = _folds(np.zeros(len(features)) if strata is None else strata, settings.folds, settings.seed)
    for train, held_out in split:
        transform = _feature_transform(features[train], settings.components, settings.seed)
        x_train, x_held = transform.transform(features[train]), transform.transform(features[held_out])
        columns = range(width) if multilabel else [None]
        for column in columns:
            y = labels[train] if column is None else labels[train, column]
            classes = np.unique(y)
            if len(classes) < 2:  # one class only in this training fold: predict it
                if column is None:
                    probabilities[held_out, int(classes[0])] = 1.0
                else:
                    probabilities[held_out, column] = float(classes[0])
                continue
            model = LogisticRegression(C=settings.C, max_iter=1000).fit(x_train, y)
            predicted = model.predict_proba(x_held)
            if column is None:
                probabilities[np.ix_(held_out, model.classes_.astype(int))] = predicted
            else:
                probabilities[held_out, column] = predicted[:, list(model.classes_).index(1)]
    return probabilities


# ---- how far the heads can be trusted ---------------------------------------------------------
@dataclass(frozen=True)
class LevelQuality:
    """How well one level's out-of-fold heads classify, against always answering the commonest label.

    ``metric``: ``"accuracy"`` (arg-max, category and subcategory) or ``"mAP"`` (macro average
    precision, attributes). ``baseline``: the majority-class share, or for mAP the mean attribute
    frequency (the average precision of a scorer that knows nothing).
    """

    level: str
    metric: str
    score: float
    baseline: float
    rows: int

    @property
    def needed(self) -> float:
        """The score a trusted level reaches: ``TRUST_MARGIN`` of the way from the baseline to 1."""
        return self.baseline + TRUST_MARGIN * (1.0 - self.baseline)

    @property
    def trusted(self) -> bool:
        return bool(self.score >= self.needed)

    def describe(self) -> str:
        """``out-of-fold accuracy 0.912 (majority 0.400)``."""
        baseline = "majority" if self.metric == "accuracy" else "uninformed"
        return f"out-of-fold {self.metric} {self.score:.3f} ({baseline} {self.baseline:.3f})"

    def warning(self) -> str | None:
        """What to tell the user when this level's rankings are not to be trusted, else None."""
        if self.trusted:
            return None
        baseline = ("the majority-class share" if self.metric == "accuracy"
                    else "the mAP of an uninformed scorer (mean attribute frequency)")
        return (f"{self.level} rankings are not to be trusted: out-of-fold {self.metric} {self.score:.3f} is not "
                f"clearly above {baseline} {self.baseline:.3f} (a trusted level reaches {self.needed:.3f}); the "
                f"heads barely tell these labels apart from the features, so many flagged labels are correct")

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "metric": self.metric, "score": self.score, "baseline": self.baseline,
                "needed": self.needed, "trusted": self.trusted, "rows": self.rows}


def out_of_fold_quality(level: str, labels: np.ndarray, probabilities: np.ndarray, *,
                        multilabel: bool = False) -> LevelQuality:
    """The accuracy (mAP when ``multilabel``) of out-of-fold ``probabilities`` on ``labels``, and its baseline."""
    from fashion_hier.metrics import accuracy, average_precision

    labels = np.asarray(labels)
    if multilabel:
        frequency = labels.mean(axis=0)
        score = average_precision(labels, probabilities, average="macro")
        return LevelQuality(level, "mAP", float(score), float(frequency[frequency > 0].mean()), len(labels))
    majority = np.bincount(labels).max() / len(labels)
    return LevelQuality(level, "accuracy", accuracy(labels, probabilities), float(majority), len(labels))


@dataclass(frozen=True)
class AuditResult:
    """Every judged label (``table``, see ``audit_features``), each level's ``quality`` and the warnings raised."""

    table: pd.DataFrame
    quality: dict[str, LevelQuality]
    warnings: tuple[str, ...] = ()
    untrained_backbone: bool = False

    @property
    def trusted(self) -> bool:
        """No untrained backbone, and every level's heads clearly above their baseline."""
        return not self.untrained_backbone and all(quality.trusted for quality in self.quality.values())

    def summary(self) -> dict[str, object]:
        """``audit.json``: the verdict, the warnings, and per level its quality and flagged count."""
        flagged = self.table.groupby("level")["flagged"].agg(["sum", "size"])
        levels = {level: {**quality.as_dict(), "flagged": int(flagged.at[level, "sum"]),
                          "judged": int(flagged.at[level, "size"])} for level, quality in self.quality.items()}
        return {"trusted": self.trusted, "untrained_backbone": self.untrained_backbone,
                "trust_margin": TRUST_MARGIN, "warnings": list(self.warnings), "levels": levels}


# ---- ranking ----------------------------------------------------------------------------------
def _require_cleanlab() -> None:
    """A clear error when the optional ranking library is missing."""
    try:
        import cleanlab  # noqa: F401
    except ImportError as error:
        raise ImportError("fashion-hier audit ranks labels with cleanlab, which is not installed: "
                          "pip install 'cleanlab>=2.6' (or install this project with its 'audit' extra: "
                          "pip install '.[audit]')") from error


def rank_class_labels(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label quality score (low: probably wrong) and issue flag for each multi-class label."""
    _require_cleanlab()
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    scores = get_label_quality_scores(labels, probabilities)
    flagged = find_label_issues(labels, probabilities)
    return scores, flagged


def rank_attribute_sets(multi_hot: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's multi-label quality score and issue flag for each row's attribute set."""
    _require_cleanlab()
    from cleanlab.multilabel_classification import filter as multilabel_filter
    from cleanlab.multilabel_classification import rank as multilabel_rank

    label_lists = [list(np.flatnonzero(row)) for row in multi_hot]
    scores = multilabel_rank.get_label_quality_scores(label_lists, probabilities)
    flagged = multilabel_filter.find_label_issues(label_lists, probabilities)
    return scores, flagged


def _auditable_classes(labels: np.ndarray, names: Sequence[str], folds: int, level: str):
    """Rows whose class has at least ``folds`` rows (a rarer class cannot be learnt from the other folds)."""
    counts = np.bincount(labels, minlength=len(names))
    rare = [names[i] for i in np.flatnonzero((counts > 0) & (counts < folds))]
    if rare:
        logger.info("audit %s: %d classes with fewer than %d rows are not judged: %s%s", level, len(rare), folds,
                    ", ".join(rare[:10]), " ..." if len(rare) > 10 else "")
    kept_classes = np.flatnonzero(counts >= folds)
    remap = np.full(len(names), -1)
    remap[kept_classes] = np.arange(len(kept_classes))
    rows = np.flatnonzero(remap[labels] >= 0)
    return rows, remap[labels[rows]], [names[i] for i in kept_classes]


def audit_features(frame: pd.DataFrame, features: np.ndarray, label_space: LabelSpace, *,
                   id_column: str = "id", settings: HeadSettings = HeadSettings()) -> AuditResult:
    """Every (row, level) judged: given and suggested label, cleanlab score and flag, rank within its level.

    ``features[i]`` belongs to ``frame.iloc[i]``. The result's ``table`` has one row per judged label
    with columns ``CSV_COLUMNS`` plus ``flagged`` and ``row`` (position in ``frame``), sorted by level
    then rank; its ``quality`` says per level how well the out-of-fold heads classify, and each level
    not clearly above its baseline is logged as a warning and listed in ``warnings``.
    """
    if len(frame) != len(features):
        raise ValueError(f"audit_features: {len(frame)} catalogue rows but {len(features)} feature rows")
    targets = label_space.encode(frame)
    columns = {"category": label_space.columns.category, "subcategory": label_space.columns.subcategory,
               "attributes": "|".join(label_space.columns.attributes)}
    names = {"category": label_space.categories, "subcategory": label_space.subcategories}
    ids = frame[id_column].astype(str).to_numpy() if id_column in frame.columns else np.arange(len(frame)).astype(str)
    paths = frame["image_path"].astype(str).to_numpy()
    parts, quality = [], {}
    for level in ("category", "subcategory"):
        rows, labels, kept_names = _auditable_classes(targets[level], names[level], settings.folds, level)
        probabilities = out_of_fold_probabilities(features[rows], labels, settings=settings)
        quality[level] = out_of_fold_quality(level, labels, probabilities)
        scores, flagged = rank_class_labels(labels, probabilities)
        parts.append(pd.DataFrame({
            "row": rows, "level": level, "given": [kept_names[i] for i in labels],
            "suggested": [kept_names[i] for i in probabilities.argmax(axis=1)], "score": scores, "flagged": flagged}))
    attributes, attribute_quality = _audit_attributes(targets["attributes"], features, targets["subcategory"],
                                                      label_space, settings)
    parts.append(attributes)
    if attribute_quality is not None:
        quality["attributes"] = attribute_quality
    warnings = []
    for level_quality in quality.values():
        logger.info("audit %s: %s on %d rows", level_quality.level, level_quality.describe(), level_quality.rows)
        message = level_quality.warning()
        if message is not None:
            logger.warning("audit: %s", message)
            warnings.append(message)
    table = pd.concat(parts, ignore_index=True)
    table["column"] = table["level"].map(columns)
    table["id"], table["image_path"] = ids[table["row"]], paths[table["row"]]
    table["rank"] = table.groupby("level")["score"].rank(method="first").astype(int)
    order = {level: i for i, level in enumerate(LEVELS)}
    table = table.sort_values(["level", "rank"], key=lambda s: s.map(order) if s.name == "level" else s)
    return AuditResult(table[[*CSV_COLUMNS, "flagged", "row"]].reset_index(drop=True), quality, tuple(warnings))


def _audit_attributes(multi_hot: np.ndarray, features: np.ndarray, strata: np.ndarray, label_space: LabelSpace,
                      settings: HeadSettings) -> tuple[pd.DataFrame, LevelQuality | None]:
    """The attribute level: one multi-label judgement per row over the attributes common enough to learn."""
    positives = multi_hot.sum(axis=0)
    kept = np.flatnonzero(positives >= settings.folds)
    skipped = [label_space.attributes[j] for j in np.flatnonzero((positives > 0) & (positives < settings.folds))]
    if skipped:
        logger.info("audit attributes: %d attributes with fewer than %d rows are not judged: %s",
                    len(skipped), settings.folds, ", ".join(skipped[:10]))
    if len(kept) < 2:
        return pd.DataFrame(columns=["row", "level", "given", "suggested", "score", "flagged"]), None
    names = [label_space.attributes[j] for j in kept]
    labels = multi_hot[:, kept].astype(int)
    counts = np.bincount(strata)
    probabilities = out_of_fold_probabilities(features, labels, multilabel=True,
                                              strata=np.where(counts[strata] >= settings.folds, strata, -1),
                                              settings=settings)
    scores, flagged = rank_attribute_sets(labels, probabilities)

    def named(mask_row) -> str:
        return ", ".join(name for name, on in zip(names, mask_row) if on) or "-"

    table = pd.DataFrame({"row": np.arange(len(labels)), "level": "attributes",
                          "given": [named(row) for row in labels],
                          "suggested": [named(row) for row in probabilities >= 0.5],
                          "score": scores, "flagged": flagged})
    return table, out_of_fold_quality("attributes", labels, probabilities, multilabel=True)


# ---- catalogue + cache -> files ---------------------------------------------------------------
@dataclass(frozen=True)
class AuditSource:
    """What to audit and which frozen backbone describes its images."""

    labels_csv: Path
    image_dir: Path
    columns: object          # LabelColumns
    id_column: str = "id"
    backbone: str = "resnet50"
    weights: str | None = "imagenet"
    image_size: tuple[int, int] = (224, 224)
    resize: str = "stretch"

    @classmethod
    def from_run(cls, run: str | os.PathLike, *, labels_csv=None, image_dir=None, backbone: str | None = None,
                 weights: str | None = "run") -> "AuditSource":
        """A run's catalogue, label columns and pretrained backbone (``backbone``, ``weights`` override the run's)."""
        from fashion_hier.config import TrainConfig
        from fashion_hier.rundir import RunDir

        run_dir = RunDir(run)
        if not run_dir.config.is_file():
            raise FileNotFoundError(f"{run_dir.config} does not exist: --run must name a run directory written by train")
        config = TrainConfig.from_yaml(run_dir.config)
        labels_csv = labels_csv or config.data.labels_csv
        image_dir = image_dir or config.data.image_dir
        if labels_csv is None or image_dir is None:
            raise ValueError(f"{run_dir.config} names no data.labels_csv/data.image_dir; pass --labels CSV --images DIR")
        return cls(Path(labels_csv), Path(image_dir), config.data.columns, config.data.id_column,
                   backbone or config.model.backbone, config.model.weights if weights == "run" else weights,
                   tuple(config.data.image_size), config.data.resize)


def audit_catalog(source: AuditSource, out_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                  settings: HeadSettings = HeadSettings(), gallery_size: int = 200, progress: bool = True,
                  allow_untrained_backbone: bool = False) -> AuditResult:
    """Audit ``source``'s catalogue: features (cached), cross-validated heads, cleanlab ranking, files.

    Refuses a backbone without pretrained weights (``UntrainedBackboneError``) unless
    ``allow_untrained_backbone``, which logs a warning and marks the result and its files instead.
    Writes ``out_dir/audit.csv`` (the flagged labels, most suspicious first within each level),
    ``out_dir/audit.json`` (``AuditResult.summary``: out-of-fold quality per level, warnings) and
    ``out_dir/audit.html`` (the summary and a gallery of the first ``gallery_size`` flagged labels).
    Features are cached in ``cache_dir`` (default ``out_dir/features``) and reused by the next audit
    of the same images. Returns every judged label (``audit_features``), flagged or not.
    """
    from fashion_hier.data import read_catalog
    from fashion_hier.features import extract_features

    untrained = check_pretrained_backbone(source.backbone, source.weights, allow=allow_untrained_backbone)
    out_dir = Path(out_dir)
    catalog = read_catalog(source.labels_csv, source.image_dir, columns=source.columns, id_column=source.id_column)
    logger.info("%s", catalog.report)
    if len(catalog) < settings.folds:
        raise ValueError(f"{source.labels_csv}: {len(catalog)} usable rows; an audit with {settings.folds} folds needs more")
    features = extract_features(catalog.paths, backbone=source.backbone, weights=source.weights,
                                image_size=source.image_size, resize=source.resize,
                                cache_dir=cache_dir or out_dir / "features", progress=progress)
    result = audit_features(catalog.frame, np.asarray(features), catalog.label_space(), id_column=source.id_column,
                            settings=settings)
    if untrained is not None:
        result = replace(result, warnings=(untrained, *result.warnings), untrained_backbone=True)
    details = {"labels_csv": str(source.labels_csv), "backbone": source.backbone,
               "weights": None if source.weights is None else str(source.weights)}
    write_audit_files(result, out_dir, title=f"Label audit of {source.labels_csv}", gallery_size=gallery_size,
                      resize=source.resize, details=details)
    return result


def write_audit_files(result: AuditResult, out_dir: str | os.PathLike, *, title: str = "Label audit",
                      gallery_size: int = 200, resize: str = "pad",
                      details: dict[str, object] | None = None) -> tuple[Path, Path, Path]:
    """``audit.csv`` (flagged labels), ``audit.json`` (``result.summary()`` plus ``details``, e.g. the
    backbone) and ``audit.html`` (the summary and a gallery of the most suspicious labels)."""
    from fashion_hier.atomic import atomic_open, atomic_write_text
    from fashion_hier.jsonio import write_json
    from fashion_hier.report import audit_html

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = result.table
    flagged = table.loc[table["flagged"], list(CSV_COLUMNS)]
    with atomic_open(out_dir / AUDIT_CSV, "w", newline="") as handle:
        flagged.to_csv(handle, index=False)
    summary = {**(details or {}), **result.summary()}
    write_json(out_dir / AUDIT_JSON, summary)
    shown = flagged.sort_values("score", kind="stable").head(gallery_size)
    html_path = atomic_write_text(out_dir / AUDIT_HTML, audit_html(
        shown, title=title, flagged=len(flagged), judged=len(table), resize=resize,
        quality=list(summary["levels"].values()), warnings=result.warnings))
    return out_dir / AUDIT_CSV, out_dir / AUDIT_JSON, Path(html_path)


# ---- command line -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier audit --run RUN | --labels CSV --images DIR [--out DIR] [--cache DIR] [--folds K]
    [--allow-untrained-backbone]``."""
    from fashion_hier import cli_args
    from fashion_hier.config_checks import BACKBONE_NAMES

    parser = parser or argparse.ArgumentParser(prog="python -m fashion_hier.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=cli_args.run_directory,
                        help="run directory: its catalogue, label columns and pretrained backbone")
    parser.add_argument("--labels", type=cli_args.existing_file("a labelled CSV file"),
                        help="labelled CSV to audit (instead of, or overriding, the run's)")
    parser.add_argument("--images", type=cli_args.existing_directory("the folder of the images of --labels"),
                        help="image folder for --labels")
    parser.add_argument("--out", type=cli_args.output_directory, default="audit",  # a string: checked too
                        help="folder for audit.csv, audit.json and audit.html (default ./audit)")
    parser.add_argument("--cache", type=cli_args.output_directory,
                        help="feature cache folder (default OUT/features); reused when it matches")
    parser.add_argument("--weights", type=cli_args.backbone_weights,
                        help="backbone weights: 'imagenet', a .h5 path or 'none' (default: the run's, else imagenet)")
    parser.add_argument("--backbone", choices=BACKBONE_NAMES, help="backbone (default: the run's, else resnet50)")
    parser.add_argument("--folds", type=cli_args.int_at_least(2), default=DEFAULT_FOLDS,
                        help=f"cross-validation folds (default {DEFAULT_FOLDS})")
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
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.run is not None:
        source = AuditSource.from_run(args.run, labels_csv=args.labels, image_dir=args.images, backbone=args.backbone,
                                      weights="run" if args.weights is None else weights)
    else:
        from fashion_hier.labels import LabelColumns

        source = AuditSource(args.labels, args.images, LabelColumns(), backbone=args.backbone or "resnet50",
                             weights="imagenet" if args.weights is None else weights)
    result = audit_catalog(source, args.out, cache_dir=args.cache,
                           settings=HeadSettings(folds=args.folds, seed=args.seed), gallery_size=args.gallery,
                           progress=not args.no_progress and sys.stderr.isatty(), allow_untrained_backbone=args.allow_untrained_backbone)
    counts = result.table.groupby("level", sort=False)["flagged"].agg(["sum", "size"])
    for level, (flagged, judged) in counts.iterrows():
        quality = result.quality[level]
        verdict = "" if quality.trusted and not result.untrained_backbone else "  NOT TO BE TRUSTED"
        print(f"{level:<12} {int(flagged):>6} of {int(judged)} labels flagged; {quality.describe()}{verdict}")
    if not result.trusted:
        print(f"the rankings are not to be trusted (warnings above and in {args.out / AUDIT_JSON})")
    print(f"wrote {args.out / AUDIT_CSV}, {args.out / AUDIT_JSON} and {args.out / AUDIT_HTML}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
