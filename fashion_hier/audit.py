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

Attribute columns (``LabelColumns.groups``) are judged column by column, as the model's masked loss
(``losses.GroupedAttributeLoss``) learns them: a ``single`` group is a multi-class problem and a ``multi``
group a multi-label one, each on the rows whose cell holds a value (so on the categories it applies to);
an empty cell is unknown, never judged and never flagged. Those empty cells, where the group applies,
get a **fill-in suggestion** instead: the fold heads' average answer, written to ``fill_in.csv`` most
confident first. The heads are the same logistic regressions (a softmax over the group's values, or
one sigmoid per value), trained on the known cells only.

The audit refuses what it cannot judge. A backbone without pretrained weights (``small_cnn``, or
``weights=None``) gives random features: cleanlab takes the heads' guesses for evidence and flags
about half of a clean synthetic catalogue's correct labels, so ``audit_catalog`` raises
``UntrainedBackboneError`` unless ``allow_untrained_backbone=True``. And every level reports how well
its out-of-fold heads classify (accuracy; mAP for attributes) against the score of always answering
the commonest label; a level not at least halfway from that baseline to a perfect score
(``TRUST_MARGIN``) is marked, logged and shown as not to be trusted.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fashion_hier.labels import IMAGE_PATH, LEVELS, UNKNOWN, GroupSlice, LabelSpace, group_cell_values

logger = logging.getLogger(__name__)

AUDIT_CSV = "audit.csv"
AUDIT_HTML = "audit.html"
AUDIT_JSON = "audit.json"
FILL_IN_CSV = "fill_in.csv"  # attribute columns only: suggested values for the empty cells
# ``group``: the attribute group (catalogue column) a label belongs to; "attributes" for the flat tag set
# (LabelSpace.groups' one group), empty for category and subcategory
CSV_COLUMNS = ("rank", "level", "group", "column", "id", IMAGE_PATH, "given", "suggested", "score")
FILL_IN_COLUMNS = ("rank", "group", "column", "id", IMAGE_PATH, "suggested", "score")
FILL_IN_SHOWN = 50           # fill-in suggestions listed in audit.html (all of them are in fill_in.csv)
# A value is suggested (for a multi group, or the flat tag set) when its out-of-fold probability reaches this.
# Not the paper's DEFAULT_THRESHOLD (0.75, tuned for the network's sigmoids): the audit's logistic heads are
# calibrated well enough that 0.5 means "more likely than not", the cut cleanlab's multi-label ranking makes too.
SUGGESTION_THRESHOLD = 0.5
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
    return cross_validated_probabilities(features, labels, multilabel=multilabel, strata=strata,
                                         settings=settings)[0]


def cross_validated_probabilities(features: np.ndarray, labels: np.ndarray, *, multilabel: bool = False,
                                  strata: np.ndarray | None = None, settings: HeadSettings = HeadSettings(),
                                  unlabelled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``out_of_fold_probabilities``, and the mean answer of the ``folds`` heads on ``unlabelled`` feature rows.

    ``unlabelled`` (M, D): rows without a label (an empty attribute cell); no head saw them, so every fold's
    head may answer, and their average is steadier than any one of them. Returns ``(out_of_fold (N, K),
    unlabelled (M, K))``; the second has zero rows when ``unlabelled`` is None.
    """
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"out_of_fold_probabilities: {len(features)} feature rows but {len(labels)} label rows")
    if settings.folds < 2 or len(features) < settings.folds:
        raise ValueError(f"out_of_fold_probabilities: need folds >= 2 and at least folds rows, "
                         f"got folds={settings.folds} for {len(features)} rows")
    unlabelled = np.zeros((0, features.shape[1]), np.float32) if unlabelled is None else np.asarray(
        unlabelled, dtype=np.float32)
    width = labels.shape[1] if multilabel else int(labels.max()) + 1
    probabilities = np.zeros((len(features), width), dtype=np.float64)
    answers = np.zeros((len(unlabelled), width), dtype=np.float64)
    strata = labels if strata is None and not multilabel else strata
    split = _folds(np.zeros(len(features)) if strata is None else strata, settings.folds, settings.seed)
    for train, held_out in split:
        transform = _feature_transform(features[train], settings.components, settings.seed)
        x_train, x_held = transform.transform(features[train]), transform.transform(features[held_out])
        x_unlabelled = transform.transform(unlabelled) if len(unlabelled) else None
        columns = range(width) if multilabel else [None]
        for column in columns:
            y = labels[train] if column is None else labels[train, column]
            classes = np.unique(y)
            if len(classes) < 2:  # one class only in this training fold: predict it
                if column is None:
                    probabilities[held_out, int(classes[0])] = 1.0
                    answers[:, int(classes[0])] += 1.0
                else:
                    probabilities[held_out, column] = float(classes[0])
                    answers[:, column] += float(classes[0])
                continue
            model = LogisticRegression(C=settings.C, max_iter=1000).fit(x_train, y)
            predicted = model.predict_proba(x_held)
            answered = model.predict_proba(x_unlabelled) if x_unlabelled is not None else None
            if column is None:
                probabilities[np.ix_(held_out, model.classes_.astype(int))] = predicted
                if answered is not None:
                    answers[:, model.classes_.astype(int)] += answered
            else:
                positive = list(model.classes_).index(1)
                probabilities[held_out, column] = predicted[:, positive]
                if answered is not None:
                    answers[:, column] += answered[:, positive]
    return probabilities, answers / len(split)


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

    @property
    def subject(self) -> str:
        """What the warning names: the level."""
        return self.level

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
        return (f"{self.subject} rankings are not to be trusted: out-of-fold {self.metric} {self.score:.3f} is not "
                f"clearly above {baseline} {self.baseline:.3f} (a trusted level reaches {self.needed:.3f}); the "
                f"heads barely tell these labels apart from the features, so many flagged labels are correct")

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "metric": self.metric, "score": self.score, "baseline": self.baseline,
                "needed": self.needed, "trusted": self.trusted, "rows": self.rows}


@dataclass(frozen=True)
class GroupQuality(LevelQuality):
    """``LevelQuality`` of one attribute group (``level`` is ``"attributes"``), on the rows it judged.

    ``single`` groups are trusted on their accuracy and also report macro-F1 (``macro_f1``) beside that of
    always answering the commonest value (``macro_f1_baseline``); ``multi`` groups on their mAP.
    """

    group: str = ""
    kind: str = "single"
    macro_f1: float | None = None
    macro_f1_baseline: float | None = None

    @property
    def subject(self) -> str:
        return f"attribute group {self.group!r}"

    def describe(self) -> str:
        """``out-of-fold accuracy 0.912 (majority 0.400), macro-F1 0.870 (majority 0.143)`` (single groups)."""
        if self.macro_f1 is None:
            return super().describe()
        return f"{super().describe()}, macro-F1 {self.macro_f1:.3f} (majority {self.macro_f1_baseline:.3f})"

    def as_dict(self) -> dict[str, object]:
        extra = ({"macro_f1": self.macro_f1, "macro_f1_baseline": self.macro_f1_baseline}
                 if self.kind == "single" else {})
        return {"group": self.group, "kind": self.kind, **super().as_dict(), **extra}


def group_quality(group: str, kind: str, labels: np.ndarray, probabilities: np.ndarray) -> GroupQuality:
    """How well a group's out-of-fold heads answer its judged rows (``fashion_hier.metrics.groups``), and baselines.

    ``single``: ``labels`` (N,) value indices, ``probabilities`` (N, K) softmax rows; accuracy and macro-F1,
    the baselines those of always answering the commonest value. ``multi``: ``labels`` (N, K) multi-hot,
    ``probabilities`` (N, K) sigmoids; mAP, the baseline the mean value frequency (an uninformed scorer's).
    """
    from fashion_hier.metrics.groups import multi_group_metrics, single_group_metrics

    labels = np.asarray(labels)
    if kind == "multi":
        metrics = multi_group_metrics(labels, probabilities, threshold=SUGGESTION_THRESHOLD)
        frequency = labels.mean(axis=0)
        return GroupQuality("attributes", "mAP", float(metrics["mAP"]), float(frequency[frequency > 0].mean()),
                            len(labels), group=group, kind=kind)
    metrics = single_group_metrics(labels, probabilities)
    counts = np.bincount(labels, minlength=probabilities.shape[1])
    majority = np.zeros_like(probabilities)
    majority[:, counts.argmax()] = 1.0
    return GroupQuality("attributes", "accuracy", float(metrics["accuracy"]), float(counts.max() / len(labels)),
                        len(labels), group=group, kind=kind, macro_f1=float(metrics["macro_f1"]),
                        macro_f1_baseline=float(single_group_metrics(labels, majority)["macro_f1"]))


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
class GroupCells:
    """One attribute group's cells: its kind, catalogue column, and how many are empty where it applies."""

    kind: str
    column: str
    blank: int


def _empty_fill_in() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=float if name == "score" else int if name in ("rank", "row")
                                         else object) for name in (*FILL_IN_COLUMNS, "row")})


@dataclass(frozen=True)
class AuditResult:
    """Every judged label (``table``, see ``audit_features``), each level's ``quality`` and the warnings raised.

    With attribute columns: ``groups``, each attribute group's quality (the attribute level has no entry in
    ``quality`` then), and ``fill_in``, a suggestion per empty cell (``FILL_IN_COLUMNS`` plus ``row``).
    """

    table: pd.DataFrame
    quality: dict[str, LevelQuality]
    warnings: tuple[str, ...] = ()
    untrained_backbone: bool = False
    groups: dict[str, GroupQuality] = field(default_factory=dict)
    fill_in: pd.DataFrame = field(default_factory=_empty_fill_in)
    cells: dict[str, GroupCells] = field(default_factory=dict)  # attribute columns: every group, judged or not

    @property
    def grouped(self) -> bool:
        """Whether the attribute level was judged as attribute columns (``LabelColumns.groups``)."""
        return bool(self.cells)

    @property
    def trusted(self) -> bool:
        """No untrained backbone, and every level's (and attribute group's) heads clearly above their baseline."""
        return not self.untrained_backbone and all(
            quality.trusted for quality in (*self.quality.values(), *self.groups.values()))

    def summary(self) -> dict[str, object]:
        """``audit.json``: the verdict, the warnings, and per level its quality and flagged count.

        With attribute columns also ``groups`` (per group: its quality, flagged and judged labels, empty cells
        where it applies and the fill-in suggestions made for them) and ``fill_in`` (the suggestions' total
        and threshold).
        """
        flagged = self.table.groupby("level")["flagged"].agg(["sum", "size"])
        levels = {level: {**quality.as_dict(), "flagged": int(flagged.at[level, "sum"]),
                          "judged": int(flagged.at[level, "size"])} for level, quality in self.quality.items()}
        summary = {"trusted": self.trusted, "untrained_backbone": self.untrained_backbone,
                   "trust_margin": TRUST_MARGIN, "warnings": list(self.warnings), "levels": levels}
        if self.grouped:
            attributes = self.table[self.table["level"] == "attributes"]
            flagged = attributes.groupby("group")["flagged"].sum()
            judged, suggestions = attributes["group"].value_counts(), self.fill_in["group"].value_counts()
            summary["groups"] = {
                name: {"group": name, "kind": cells.kind, "column": cells.column,
                       **(self.groups[name].as_dict() if name in self.groups else {}),
                       "flagged": int(flagged.get(name, 0)), "judged": int(judged.get(name, 0)),
                       "blank": cells.blank, "fill_in": int(suggestions.get(name, 0))}
                for name, cells in self.cells.items()}
            summary["fill_in"] = {"suggestions": len(self.fill_in), "threshold": SUGGESTION_THRESHOLD,
                                  "blank": sum(cells.blank for cells in self.cells.values())}
        return summary


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
    with columns ``CSV_COLUMNS`` plus ``flagged`` and ``row`` (position in ``frame``), sorted by level,
    group, then rank; its ``quality`` says per level how well the out-of-fold heads classify, and each level
    not clearly above its baseline is logged as a warning and listed in ``warnings``.

    With attribute columns (``label_space.grouped``) the attribute level is judged group by group
    (``_audit_group``): one table row per (row, group) whose cell holds a value, ranked within its group,
    never one whose cell is empty. The result's ``groups`` holds each group's quality (warned about like a
    level's), ``fill_in`` a suggestion for each empty cell where the group applies (most confident first)
    and ``cells`` every group's empty-cell count.
    """
    if len(frame) != len(features):
        raise ValueError(f"audit_features: {len(frame)} catalogue rows but {len(features)} feature rows")
    targets = label_space.encode(frame)
    columns = {"category": label_space.columns.category, "subcategory": label_space.columns.subcategory}
    names = {"category": label_space.categories, "subcategory": label_space.subcategories}
    ids = frame[id_column].astype(str).to_numpy() if id_column in frame.columns else np.arange(len(frame)).astype(str)
    paths = frame[IMAGE_PATH].astype(str).to_numpy()
    parts, quality = [], {}
    for level in ("category", "subcategory"):
        rows, labels, kept_names = _auditable_classes(targets[level], names[level], settings.folds, level)
        probabilities = out_of_fold_probabilities(features[rows], labels, settings=settings)
        quality[level] = out_of_fold_quality(level, labels, probabilities)
        scores, flagged = rank_class_labels(labels, probabilities)
        parts.append(pd.DataFrame({
            "row": rows, "level": level, "group": "", "column": columns[level],
            "given": [kept_names[i] for i in labels],
            "suggested": [kept_names[i] for i in probabilities.argmax(axis=1)], "score": scores, "flagged": flagged}))
    groups, cells, suggestions = {}, {}, []
    if label_space.grouped:
        applicability = label_space.applicability()[targets["category"]]  # (N, G)
        for index, (config, group) in enumerate(zip(label_space.columns.groups, label_space.groups)):
            blank = applicability[:, index] & np.array(
                [not group_cell_values(label_space.columns, config, value) for value in frame[config.source].tolist()])
            cells[group.name] = GroupCells(group.kind, config.source, int(blank.sum()))
            judged, filled, group_result = _audit_group(
                group, config.source, config.separator, targets["attributes"][:, group.slice], np.flatnonzero(blank),
                features, targets["subcategory"], settings)
            parts.append(judged)
            suggestions.append(filled)
            if group_result is not None:
                groups[group.name] = group_result
    else:
        attributes, attribute_quality = _audit_attributes(targets["attributes"], features, targets["subcategory"],
                                                          label_space, settings)
        parts.append(attributes.assign(group="attributes", column="|".join(label_space.columns.attributes)))
        if attribute_quality is not None:
            quality["attributes"] = attribute_quality
    warnings = []
    for judged_quality in (*quality.values(), *groups.values()):
        logger.info("audit %s: %s on %d rows", judged_quality.subject, judged_quality.describe(), judged_quality.rows)
        message = judged_quality.warning()
        if message is not None:
            logger.warning("audit: %s", message)
            warnings.append(message)
    table = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
    table["id"], table[IMAGE_PATH] = ids[table["row"]], paths[table["row"]]
    table["rank"] = table.groupby(["level", "group"], sort=False)["score"].rank(method="first").astype(int)
    group_order = {name: i for i, name in enumerate(["", "attributes", *(g.name for g in label_space.groups)])}
    table = (table.assign(level_order=table["level"].map({level: i for i, level in enumerate(LEVELS)}),
                          group_order=table["group"].map(group_order))
             .sort_values(["level_order", "group_order", "rank"]))
    fill_in = _ranked_fill_in([part for part in suggestions if len(part)], group_order, ids, paths)
    return AuditResult(table[[*CSV_COLUMNS, "flagged", "row"]].reset_index(drop=True), quality, tuple(warnings),
                       groups=groups, fill_in=fill_in, cells=cells)


def _ranked_fill_in(parts: list[pd.DataFrame], group_order: dict[str, int], ids: np.ndarray,
                    paths: np.ndarray) -> pd.DataFrame:
    """The groups' suggestions as one table, highest score first (ties: group order, then catalogue order)."""
    if not parts:
        return _empty_fill_in()
    fill_in = pd.concat(parts, ignore_index=True)
    fill_in = (fill_in.assign(group_order=fill_in["group"].map(group_order))
               .sort_values(["score", "group_order", "row"], ascending=[False, True, True]).reset_index(drop=True))
    fill_in["rank"] = np.arange(1, len(fill_in) + 1)
    fill_in["id"], fill_in[IMAGE_PATH] = ids[fill_in["row"]], paths[fill_in["row"]]
    return fill_in[[*FILL_IN_COLUMNS, "row"]]


def _audit_group(group: GroupSlice, column: str, separator: str | None, block: np.ndarray, blank_rows: np.ndarray,
                 features: np.ndarray, strata: np.ndarray,
                 settings: HeadSettings) -> tuple[pd.DataFrame, pd.DataFrame, GroupQuality | None]:
    """One attribute group (a ``LabelSpace.groups`` entry): its known cells judged, its empty ones filled in.

    ``block``: the group's slice of the encoded attribute targets, (N, K) one-hot or multi-hot, all
    ``UNKNOWN`` where the cell is empty, holds an unseen value or the group does not apply; those rows are
    not judged. ``blank_rows``: the rows whose cell is empty where the group applies: the fold heads'
    average answer on them is suggested (``single``: the arg-max value and its probability; ``multi``: the
    values at or above ``SUGGESTION_THRESHOLD``, joined by ``separator``, scored by the least sure of the
    value decisions, max(p, 1 - p); no suggestion when no value reaches it). Values with fewer than
    ``folds`` known rows are left out (logged), like rare classes of a level; a group left with fewer than
    two values is not judged and gets no suggestions.

    Returns ``(judged, fill_in, quality)``: the judged labels (``audit_features``' table columns but
    ``id``, ``image_path`` and ``rank``), the suggestions (``FILL_IN_COLUMNS`` but those three), and the
    group's ``GroupQuality`` (None when not judged).
    """
    judged_columns = ["row", "level", "group", "column", "given", "suggested", "score", "flagged"]
    fill_columns = ["row", "group", "column", "suggested", "score"]
    empty = (pd.DataFrame(columns=judged_columns), pd.DataFrame(columns=fill_columns), None)
    known = np.flatnonzero((block != UNKNOWN).all(axis=1))
    subject = f"attribute group {group.name!r}"
    if group.kind == "single":
        kept, labels, names = _auditable_classes(block[known].argmax(axis=1), list(group.values), settings.folds,
                                                 subject)
        rows, strata = known[kept], None
    else:
        positives = block[known].sum(axis=0)
        values = np.flatnonzero(positives >= settings.folds)
        rare = [group.values[j] for j in np.flatnonzero((positives > 0) & (positives < settings.folds))]
        if rare:
            logger.info("audit %s: %d values with fewer than %d rows are not judged: %s", subject, len(rare),
                        settings.folds, ", ".join(rare[:10]))
        rows, names = known, [group.values[j] for j in values]
        labels = block[np.ix_(rows, values)].astype(int)
        counts = np.bincount(strata[rows], minlength=strata.max() + 1)
        strata = np.where(counts[strata[rows]] >= settings.folds, strata[rows], -1)
    if len(names) < 2:
        logger.info("audit %s: %d value(s) with at least %d rows; not judged, no fill-in suggestions", subject,
                    len(names), settings.folds)
        return empty
    probabilities, answers = cross_validated_probabilities(
        features[rows], labels, multilabel=group.kind == "multi", strata=strata, settings=settings,
        unlabelled=features[blank_rows])
    names = np.array(names, dtype=object)
    if group.kind == "single":
        scores, flagged = rank_class_labels(labels, probabilities)
        given, suggested = names[labels], names[probabilities.argmax(axis=1)]
        filled, confidence = names[answers.argmax(axis=1)], answers.max(axis=1)
        offered = np.ones(len(blank_rows), dtype=bool)
    else:
        scores, flagged = rank_attribute_sets(labels, probabilities)
        joined = separator or "|"

        def named(on: np.ndarray) -> list[str]:
            return [joined.join(names[row]) or "-" for row in on]

        given, suggested = named(labels.astype(bool)), named(probabilities >= SUGGESTION_THRESHOLD)
        chosen = answers >= SUGGESTION_THRESHOLD
        offered = chosen.any(axis=1)
        filled = np.array(named(chosen), dtype=object)
        confidence = np.maximum(answers, 1.0 - answers).min(axis=1)
    judged = pd.DataFrame({"row": rows, "level": "attributes", "group": group.name, "column": column, "given": given,
                           "suggested": suggested, "score": scores, "flagged": flagged})
    fill_in = pd.DataFrame({"row": blank_rows[offered], "group": group.name, "column": column,
                            "suggested": filled[offered], "score": confidence[offered]})
    return judged, fill_in, group_quality(group.name, group.kind, labels, probabilities)


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
                          "suggested": [named(row) for row in probabilities >= SUGGESTION_THRESHOLD],
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
    ``out_dir/audit.html`` (the summary and a gallery of the first ``gallery_size`` flagged labels);
    with attribute columns also ``out_dir/fill_in.csv`` (a suggestion per empty cell, see ``audit_features``).
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
                      details: dict[str, object] | None = None) -> tuple[Path, ...]:
    """``audit.csv`` (flagged labels), ``audit.json`` (``result.summary()`` plus ``details``, e.g. the
    backbone) and ``audit.html`` (the summary and a gallery of the most suspicious labels); with attribute
    columns also ``fill_in.csv`` (``FILL_IN_COLUMNS``: a suggestion per empty cell, most confident first),
    summarised in the other two. Returns the paths written, in that order."""
    from fashion_hier.atomic import atomic_open, atomic_write_text
    from fashion_hier.jsonio import write_json
    from fashion_hier.report import audit_html

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = result.table
    flagged = table.loc[table["flagged"], list(CSV_COLUMNS)]
    with atomic_open(out_dir / AUDIT_CSV, "w", newline="") as handle:
        flagged.to_csv(handle, index=False)
    if result.grouped:
        with atomic_open(out_dir / FILL_IN_CSV, "w", newline="") as handle:
            result.fill_in[list(FILL_IN_COLUMNS)].to_csv(handle, index=False)
    summary = {**(details or {}), **result.summary()}
    write_json(out_dir / AUDIT_JSON, summary)
    shown = flagged.sort_values("score", kind="stable").head(gallery_size)
    groups = list(summary.get("groups", {}).values())
    html_path = atomic_write_text(out_dir / AUDIT_HTML, audit_html(
        shown, title=title, flagged=len(flagged), judged=len(table), resize=resize,
        quality=[*summary["levels"].values(), *(group for group in groups if "metric" in group)],
        warnings=result.warnings, groups=groups,
        fill_in=result.fill_in.head(FILL_IN_SHOWN) if result.grouped else None, fill_in_csv=FILL_IN_CSV))
    return (out_dir / AUDIT_CSV, out_dir / AUDIT_JSON, Path(html_path),
            *((out_dir / FILL_IN_CSV,) if result.grouped else ()))
