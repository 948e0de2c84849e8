"""Attribute columns on the Meesho-shaped synthetic catalogue: empty cell as *unknown* or as *no*, focal or CE.

The catalogue of ``make_synthetic_catalog(schema="meesho")`` (``attr_1..attr_5`` whose meaning depends on the
category, 35-55% of the applicable cells blank although the image shows the value, rare values on purpose, a
``|``-separated ``tags`` column), split 60/20/20 by subcategory (seed 0), the label space learned from the
training split. ImageNet ResNet-50 pooled features of every image are extracted once into ``--work``/features.npz.
Each run trains the head on them (``fit_head``; the recipe below) and appends one row per split to
``--out``/groups.csv; a rerun skips runs already there. Variants (``tags`` is a multi group in all of them):

  masked_single         attr_k single groups (a softmax each), an empty cell unknown: the library's way
  masked_single_focal   the same with loss.focal_gamma=2
  masked_multi          attr_k multi groups (sigmoids over the column's values), an empty cell unknown
  missing_as_negative   masked_multi, but an empty training cell of a group that applies to the row's category
                        is "none of these values" (all 0), as the flat tag set trained it; cells of a group
                        that does not apply stay unknown, so the empty cells are the only difference
  logistic_regression   scikit-learn, per column on standardised features of its known training rows,
                        C in (0.1, 0.5, 2) chosen on validation accuracy (deterministic: one seed)

Every variant is scored by one scorer on the validation/test rows whose cell is known, against the same
targets: the arg-max over the column's values (within the slice for multi variants too), its accuracy,
macro-F1 and Meesho score (harmonic mean of micro- and macro-F1), the mean over attr_1..attr_5, and the
macro-F1 over the rare values (below 8% of their column's known training cells).

Each head variant is scored a second time "as predict answers" (rows ``<variant>+category_values``, same training,
same seed): ``fashion_hier.decoding.category_scores`` with the head's predicted category (arg-max of its category
output) first — a column answers only the values its category had in training, single groups renormalised — then
the same scorer (a column that does not apply to the predicted category gets no answer, scored wrong). The
logistic regression has no category model, so ``logistic_regression+true_category_values``
restricts it with the row's *true* category; ``masked_single+true_category_values`` does the same to the head
(rescored from its kept scores), the like-for-like comparison. ``<variant>+soft_category_values`` (from the kept
scores) restricts softly instead of trusting the arg-max category: each value's score is weighted by the
probability that the row's category can have it, score'(v) = p(v) * sum_c p(c | x) * value_mask[c, v], single
groups renormalised (see ``soft_category_scores``). The heads' validation/test scores are kept in
``--work``/scores/<variant>_seed<k>.npz, so a later rescoring needs no retraining.

    python experiments/synthetic_groups.py --work /work/runs/synthetic_groups      # everything
    python experiments/synthetic_groups.py --work /work/runs/synthetic_groups --summary
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments.fpi_recipe import _markdown, append_row  # noqa: E402  (the CSV and pipe-table writers)

OUT = ROOT / "experiments/results/synthetic"
WEIGHTS = "~/.cache/fashion_hier/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
N, IMAGE_SIZE, CATALOGUE_SEED = 3000, 96, 0
SPLIT = (0.6, 0.2, 0.2)
SEEDS = (0, 1, 2)
RARE_SHARE = 0.08  # a value below this share of its column's known training cells is rare
LR_C = (0.1, 0.5, 2.0)
HEAD = {  # experiments/configs/fpi_recipe.yaml's head, 30 epochs; no class weighting, so the variants differ
    "model.head": "independent", "model.input_norm": "batchnorm", "model.units": 256,  # only in what they name
    "model.l2": 0.0005, "model.dropout": 0.3, "loss.weighting": "none",
    "optimizer.name": "adamw", "optimizer.learning_rate": 0.001, "optimizer.weight_decay": 0.004,
    "optimizer.schedule": "cosine", "optimizer.warmup_epochs": 2,
    "training.batch_size": 128, "training.epochs": 30, "training.early_stopping_patience": 6,
}
VARIANTS = {  # name -> (kind of the attr_k groups, config overrides, empty applicable cell trained as 0)
    "masked_single": ("single", {}, False),
    "masked_single_focal": ("single", {"loss.focal_gamma": 2.0}, False),
    "masked_multi": ("multi", {}, False),
    "missing_as_negative": ("multi", {}, True),
}
RESTRICTED = "+category_values"  # suffix of the rows scored as predict answers (predicted category)
TRUE_RESTRICTED = "+true_category_values"  # the same with the row's true category
SOFT_RESTRICTED = "+soft_category_values"  # weighted by the category probabilities instead (from the kept scores)
LR_RESTRICTED = "logistic_regression" + TRUE_RESTRICTED  # LR has no category model: only the true category
TRUE_CATEGORY_HEADS = ("masked_single",)  # heads also scored with the true category (from their kept scores)
TABLE = {"accuracy": "accuracy", "macro_f1": "macro-F1", "hmean_f1": "Meesho score",
         "rare_macro_f1": "rare macro-F1", "true_at_half": "true value ≥ 0.5", "tags_mAP": "tags mAP",
         "category_accuracy": "category accuracy"}
NOTES = "<!-- written by hand below; --summary keeps it -->"


def label_columns(kind: str):
    """``category``/``subcategory``, attr_1..attr_5 as ``kind`` groups (``|`` for multi), ``tags`` multi."""
    from fashion_hier.data.synthetic_meesho import ATTRIBUTE_COLUMNS, TAG_SEPARATOR
    from fashion_hier.labels import AttributeGroup, LabelColumns

    separator = TAG_SEPARATOR if kind == "multi" else None
    groups = [AttributeGroup(column, kind, separator=separator) for column in ATTRIBUTE_COLUMNS]
    return LabelColumns("category", "subcategory", attributes=[],
                        groups=(*groups, AttributeGroup("tags", "multi", separator=TAG_SEPARATOR)))


def load_data(work: Path, n: int, image_size: int, weights: str):
    """Per split: the frame and its pooled features; the catalogue and the features made once under ``work``."""
    from fashion_hier.data import make_synthetic_catalog, read_catalog

    labels_csv = work / "catalogue/styles.csv"
    if not labels_csv.is_file():
        make_synthetic_catalog(work / "catalogue", n=n, image_size=image_size, seed=CATALOGUE_SEED, schema="meesho")
    catalog = read_catalog(labels_csv, work / "catalogue/images", columns=label_columns("single"))
    if len(catalog) != n:
        raise ValueError(f"{labels_csv} has {len(catalog)} usable rows, not --n {n}; pass another --work")
    splits = catalog.split(SPLIT, by="subcategory", seed=0)
    features = pooled_features(work, catalog.frame["image_path"].astype(str).tolist(), image_size, weights)
    return {name: {"frame": frame, "features": features.loc[frame["image_path"].astype(str)].to_numpy(np.float32)}
            for name, frame in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))}


def pooled_features(work: Path, paths: list[str], image_size: int, weights: str) -> pd.DataFrame:
    """ImageNet ResNet-50 pooled features of ``paths`` (one row per path), from ``work``/features.npz."""
    from fashion_hier.features import extract_features

    npz = work / "features.npz"
    if not npz.is_file():
        started = time.perf_counter()
        features = extract_features(paths, backbone="resnet50", weights=str(Path(weights).expanduser()),
                                    image_size=(image_size, image_size), cache_dir=work / "extraction", progress=False)
        np.savez(npz, paths=np.asarray(paths), features=np.asarray(features), image_size=image_size)
        print(f"features of {len(paths)} images in {time.perf_counter() - started:.0f} s -> {npz}", flush=True)
    stored = np.load(npz)
    if int(stored["image_size"]) != image_size:
        raise ValueError(f"{npz} holds features of {int(stored['image_size'])} px images, not {image_size}; "
                         "pass another --work")
    missing = sorted(set(paths) - set(stored["paths"]))
    if missing:
        raise ValueError(f"{npz} has no features for {len(missing)} images (first {missing[0]}); delete it to redo")
    return pd.DataFrame(stored["features"], index=stored["paths"])


def label_spaces(data: dict) -> dict:
    """Per kind of the attr_k groups: the label space of the training split and each split's targets."""
    from fashion_hier.data.synthetic_meesho import meesho_attribute_map
    from fashion_hier.labels import LabelSpace

    spaces = {}
    for kind in ("single", "multi"):
        space = LabelSpace.from_columns(data["train"]["frame"], label_columns(kind))
        spaces[kind] = {"space": space, **{split: space.encode(data[split]["frame"], unknown="drop")
                                          for split in data}}  # a value unseen in training: its cell unknown
    single, multi = spaces["single"]["space"], spaces["multi"]["space"]
    if [g.values for g in single.groups] != [g.values for g in multi.groups]:
        raise AssertionError("single and multi label spaces learned different values; the scorer needs one order")
    truth = {column: sorted(c for c, columns in meesho_attribute_map().items() if column in columns)
             for column in (g.name for g in single.groups[:-1])}
    learned = {g.name: list(g.applies_to) for g in single.groups[:-1]}
    if learned != truth:
        raise AssertionError(f"learned applicability {learned} differs from the generator's {truth}")
    return spaces


def missing_as_negative(targets: np.ndarray, label_space, frame: pd.DataFrame) -> np.ndarray:
    """``targets`` with each attr_k group's unknown rows set to 0 where the group applies to the row's category."""
    targets = targets.copy()
    categories = frame["category"].to_numpy()
    for group in label_space.groups:
        if group.name.startswith("attr_"):
            block = targets[:, group.slice]
            block[np.isin(categories, group.applies_to) & (block[:, 0] < 0)] = 0.0
    return targets


def rare_values(train_targets: np.ndarray, label_space) -> dict[str, np.ndarray]:
    """Per attr_k group, the indices of its values below ``RARE_SHARE`` of its known training cells."""
    rare = {}
    for group in label_space.groups:
        if group.name.startswith("attr_"):
            block = train_targets[:, group.slice]
            counts = block[block[:, 0] >= 0].sum(0)
            rare[group.name] = np.flatnonzero(counts / counts.sum() < RARE_SHARE)
    return rare


def unanswered_metrics(true: np.ndarray, predicted: np.ndarray) -> dict:
    """``single_group_metrics`` of the known rows' value indices, ``predicted`` -1 where no answer was given:
    accuracy counts it wrong; macro-F1 over the values seen in truth or in the answers (not the -1)."""
    from sklearn.metrics import f1_score

    labels = np.union1d(true, predicted[predicted >= 0])
    accuracy = float((predicted == true).mean())
    macro_f1 = float(f1_score(true, predicted, labels=labels, average="macro", zero_division=0))
    hmean = 0.0 if accuracy + macro_f1 == 0 else 2 * accuracy * macro_f1 / (accuracy + macro_f1)
    return {"known": len(true), "accuracy": accuracy, "macro_f1": macro_f1, "hmean_f1": hmean}


def scores(targets: np.ndarray, probabilities: np.ndarray, label_space, rare: dict) -> dict:
    """Per attr_k group on its known rows: accuracy, macro-F1, Meesho score, rare-value F1, the share whose true
    value scores >= 0.5; their means over the groups; tags mAP."""
    from sklearn.metrics import f1_score

    from fashion_hier.metrics.groups import multi_group_metrics, single_group_metrics

    row, rare_f1 = {}, []
    for group in label_space.groups:
        block, score = targets[:, group.slice], probabilities[:, group.slice]
        if not group.name.startswith("attr_"):
            row[f"{group.name}_mAP"] = multi_group_metrics(block, score)["mAP"]
            continue
        known = block[:, 0] >= 0
        true, predicted = block[known].argmax(1), score[known].argmax(1)
        # a row whose scores are all 0 gets no answer: category_scores with a predicted category the column does
        # not apply to (predict leaves the cell empty). Wrong for accuracy and the true value's recall, but no
        # value of its own in macro-F1. Never the case for unrestricted scores (softmax/sigmoid > 0).
        unanswered = score[known].sum(1) == 0
        if unanswered.any():
            predicted = np.where(unanswered, -1, predicted)
            figures = unanswered_metrics(true, predicted)
        else:
            figures = single_group_metrics(block, score)
        row.update({f"{group.name}_{key}": figures[key] for key in ("known", "accuracy", "macro_f1", "hmean_f1")})
        # what a 0.5 threshold would decode: an empty cell trained as "no" pulls every value's score down
        row[f"{group.name}_true_at_half"] = float((score[known][np.arange(len(true)), true] >= 0.5).mean())
        present = np.intersect1d(rare[group.name], true)
        per_value = f1_score(true, predicted, labels=present, average=None, zero_division=0) if present.size else []
        row[f"{group.name}_rare_macro_f1"] = float(np.mean(per_value)) if present.size else float("nan")
        rare_f1 += list(per_value)
    for key in ("accuracy", "macro_f1", "hmean_f1", "true_at_half"):
        row[key] = float(np.mean([row[f"{g.name}_{key}"] for g in label_space.groups if g.name.startswith("attr_")]))
    row["rare_macro_f1"] = float(np.mean(rare_f1))  # over every rare (column, value) present in the split
    return row


def run_head(data, spaces, name: str, seed: int, work: Path) -> list[dict]:
    """Train the head ``name`` with ``seed``; per split a row scored on the raw arg-max and a ``+category_values``
    row scored as predict answers (the predicted category's values only). The scores go to ``work``/scores."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.features import fit_head, predict_from_features

    kind, overrides, negatives = VARIANTS[name]
    space = spaces[kind]
    config = TrainConfig().with_overrides([f"{key}={json.dumps(value)}"  # JSON is YAML: None -> null
                                           for key, value in {**HEAD, **overrides, "training.seed": seed}.items()])
    train_labels = dict(space["train"])
    if negatives:
        train_labels["attributes"] = missing_as_negative(train_labels["attributes"], space["space"],
                                                         data["train"]["frame"])
    started = time.perf_counter()
    fitted = fit_head(config, space["space"], data["train"]["features"], train_labels,
                      data["validation"]["features"], space["validation"])
    seconds = time.perf_counter() - started
    history = fitted.history["val_subcategory_accuracy"]
    probabilities = {split: predict_from_features(fitted.model, data[split]["features"])
                     for split in ("validation", "test")}
    kept = work / "scores" / f"{name}_seed{seed}.npz"
    kept.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(kept, **{f"{split}_{level}": p[level] for split, p in probabilities.items()
                                 for level in ("category", "subcategory", "attributes")})
    rows = []
    for split, p in probabilities.items():
        row = {"run": name, "seed": seed, "split": split, "seconds": round(seconds, 1), "epochs": len(history),
               "restored_epoch": int(np.argmax(history)) + 1,
               "subcategory_accuracy": float((p["subcategory"].argmax(1) == space[split]["subcategory"]).mean())}
        rows += restricted_pair(row, spaces, split, p["attributes"], space["space"], p["category"].argmax(1),
                                RESTRICTED, category_accuracy=category_accuracy(p["category"], space[split]))
    return rows


def category_accuracy(category_scores_: np.ndarray, targets: dict) -> float:
    return float((category_scores_.argmax(1) == targets["category"]).mean())


def soft_category_scores(scores: np.ndarray, category_probs: np.ndarray, label_space) -> np.ndarray:
    """``category_scores`` marginalised over the category instead of at its arg-max: each value's score times the
    probability that the row's category can have it, score'(v) = p(v) * sum_c p(c | x) * value_mask[c, v]; each
    ``single`` group renormalised over its values (all 0 where the sum is 0: no answer, as there), ``multi`` groups
    weighted only (as ``category_scores`` leaves them unnormalised). Computed in float64."""
    scores, category_probs = np.asarray(scores, dtype=np.float64), np.asarray(category_probs, dtype=np.float64)
    weighted = scores * (category_probs @ label_space.value_mask().astype(np.float64))  # (N, C) @ (C, A)
    for group in label_space.groups:
        if group.kind == "single":
            block = weighted[:, group.slice]
            total = block.sum(axis=1, keepdims=True)
            weighted[:, group.slice] = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
    return weighted


def restricted_pair(row: dict, spaces, split: str, attributes: np.ndarray, label_space, category: np.ndarray,
                    suffix: str, **extra) -> list[dict]:
    """``row`` scored on ``attributes`` as they are, and a copy (run + ``suffix``) scored on
    ``category_scores(attributes, category, label_space)``: what predict answers with those categories (indices);
    for ``SOFT_RESTRICTED``, ``category`` is the (N, C) category probabilities and ``soft_category_scores`` used."""
    from fashion_hier.decoding import category_scores

    # one scorer, one set of targets: the single label space's (same values, same order)
    targets, single, rare = spaces["single"][split]["attributes"], spaces["single"]["space"], spaces["rare"]
    restrict = soft_category_scores if suffix == SOFT_RESTRICTED else category_scores
    plain = {**row, **scores(targets, attributes, single, rare)}
    limited = {**row, "run": row["run"] + suffix, **extra,
               **scores(targets, restrict(attributes, category, label_space), single, rare)}
    return [plain, limited]


def rescore(csv: Path, work: Path, spaces, name: str, seed: int, suffix: str) -> list[dict]:
    """The head ``name`` (seed) restricted from its kept scores, no retraining: with its predicted categories
    (``suffix`` RESTRICTED), its category probabilities (SOFT_RESTRICTED) or the rows' true categories
    (TRUE_RESTRICTED, like the logistic regression's). Its training figures come from the stored plain row."""
    kept = np.load(work / "scores" / f"{name}_seed{seed}.npz")
    space = spaces[VARIANTS[name][0]]
    stored = pd.read_csv(csv).set_index(["run", "seed", "split"])
    rows = []
    for split in ("validation", "test"):
        plain = stored.loc[(name, seed, split)]
        row = {"run": name, "seed": seed, "split": split,
               **{k: float(plain[k]) for k in ("seconds", "epochs", "restored_epoch", "subcategory_accuracy")}}
        predicted = kept[f"{split}_category"]
        extra = {} if suffix == TRUE_RESTRICTED else {"category_accuracy": category_accuracy(predicted, space[split])}
        category = {RESTRICTED: predicted.argmax(1), SOFT_RESTRICTED: predicted}.get(suffix, space[split]["category"])
        rows.append(restricted_pair(row, spaces, split, kept[f"{split}_attributes"], space["space"], category,
                                    suffix, **extra)[1])
    return rows


def run_logistic_regression(data, spaces) -> list[dict]:
    """Per column: LogisticRegression on standardised features of its known training rows, C chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    space, single = spaces["single"]["space"], spaces["single"]
    scaler = StandardScaler().fit(data["train"]["features"])
    x = {split: scaler.transform(data[split]["features"]) for split in data}
    probabilities = {split: np.zeros((len(x[split]), space.num_attributes)) for split in ("validation", "test")}
    chosen = {}
    for group in space.groups[:-1]:
        block = single["train"]["attributes"][:, group.slice]
        val_block = single["validation"]["attributes"][:, group.slice]
        known, val_known = block[:, 0] >= 0, val_block[:, 0] >= 0
        best = None
        for c in LR_C:
            model = LogisticRegression(C=c, max_iter=2000).fit(x["train"][known], block[known].argmax(1))
            accuracy = float((model.predict(x["validation"][val_known]) == val_block[val_known].argmax(1)).mean())
            if best is None or accuracy > best[0]:
                best = (accuracy, c, model)
        _, chosen[f"{group.name}_C"], model = best
        for split in probabilities:
            probabilities[split][:, group.start + model.classes_] = model.predict_proba(x[split])
    seconds = time.perf_counter() - started
    rows = []
    for split, scored in probabilities.items():
        row = {"run": "logistic_regression", "seed": 0, "split": split, "seconds": round(seconds, 1)}
        # no category model here: the restricted row uses the row's true category (an upper bound for LR)
        for part in restricted_pair(row, spaces, split, scored, space, single[split]["category"], TRUE_RESTRICTED):
            part.pop("tags_mAP")
            rows.append({**part, **chosen})
    return rows


# ---- the markdown -------------------------------------------------------------------------------

def _cells(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``mean ± std`` over seeds in %, per run (rows) and column."""
    grouped = frame.groupby("run", sort=False)[columns]
    mean, spread = grouped.mean() * 100, grouped.std().fillna(0) * 100
    cells = mean.map("{:.1f}".format) + " ± " + spread.map("{:.1f}".format)
    return cells.where(mean.notna(), "")


def _paired(runs: pd.DataFrame, split: str, pairs: list[tuple[str, str]], column: str) -> list[str]:
    """Per pair (a, b): the mean ± std over seeds of a − b on ``column`` (same seed), in points."""
    lines = []
    table = runs[runs["split"] == split].set_index(["run", "seed"])[column]
    for a, b in pairs:
        if a in table.index.get_level_values(0) and b in table.index.get_level_values(0):
            difference = (table[a] - table[b].reindex(table[a].index) if not b.startswith("logistic_regression")
                          else table[a] - table[b].iloc[0]).dropna() * 100
            spread = f" ± {difference.std():.1f}" if len(difference) > 1 else ""
            lines.append(f"| {a} − {b} | {difference.mean():+.1f}{spread} | "
                         + " ".join(f"{v:+.1f}" for v in difference) + " |")
    return lines


def summary(runs: pd.DataFrame, command: str, setup: str) -> str:
    order = [*VARIANTS, *(name + RESTRICTED for name in VARIANTS), *(name + SOFT_RESTRICTED for name in VARIANTS),
             *(name + TRUE_RESTRICTED for name in TRUE_CATEGORY_HEADS), "logistic_regression", LR_RESTRICTED]
    runs = runs.assign(order=runs["run"].map(order.index)).sort_values(["order", "seed"]).drop(columns="order")
    groups = [c.removesuffix("_hmean_f1") for c in runs.columns if c.startswith("attr_") and c.endswith("_hmean_f1")]
    lines = ["# Attribute columns on the Meesho-shaped synthetic catalogue (issue 20, item 7)", "",
             "```", command, "```", "", setup, ""]
    for split in ("validation", "test"):
        frame = runs[runs["split"] == split]
        table = _cells(frame, list(TABLE))
        table.columns = [f"{TABLE[c]} %" for c in TABLE]
        table.insert(0, "seeds", frame.groupby("run", sort=False).size())
        table.insert(1, "epochs (restored)", frame.groupby("run", sort=False).apply(
            lambda f: "" if f["epochs"].isna().all() else
            ", ".join(f"{e:.0f} ({r:.0f})" for e, r in zip(f["epochs"], f["restored_epoch"]))))
        per_group = _cells(frame, [f"{g}_hmean_f1" for g in groups])
        per_group.columns = groups
        rare = _cells(frame, [f"{g}_rare_macro_f1" for g in groups])
        rare.columns = groups
        lines += [f"## {split}", "", "Means over attr_1..attr_5 on the known cells (rare macro-F1: over every rare "
                  "value present), mean ± std over seeds:", "", _markdown(table.reset_index()), "",
                  "Meesho score per column:", "", _markdown(per_group.reset_index()), "",
                  "Rare-value macro-F1 per column:", "", _markdown(rare.reset_index()), ""]
    pairs = [("masked_multi", "missing_as_negative"), ("masked_single", "missing_as_negative"),
             ("masked_single_focal", "masked_single"), ("masked_single", "masked_multi"),
             *((name, "logistic_regression") for name in VARIANTS),
             *((name + RESTRICTED, name) for name in VARIANTS),
             *((name + SOFT_RESTRICTED, name) for name in VARIANTS),
             *((name + SOFT_RESTRICTED, name + RESTRICTED) for name in VARIANTS),
             *((name + TRUE_RESTRICTED, name) for name in TRUE_CATEGORY_HEADS),
             *((name + RESTRICTED, name + TRUE_RESTRICTED) for name in TRUE_CATEGORY_HEADS),
             *((name + SOFT_RESTRICTED, name + TRUE_RESTRICTED) for name in TRUE_CATEGORY_HEADS),
             (LR_RESTRICTED, "logistic_regression"), ("masked_single" + RESTRICTED, "logistic_regression"),
             *((name + TRUE_RESTRICTED, LR_RESTRICTED) for name in TRUE_CATEGORY_HEADS)]
    lines += soft_section(runs)
    lines += ["## Paired differences (same seed), points", ""]
    for column in ("hmean_f1", "rare_macro_f1", "attr_2_hmean_f1"):
        for split in ("validation", "test"):
            title = TABLE.get(column, column.replace("_hmean_f1", " Meesho score"))
            lines += [f"{title}, {split}:", "", "| a − b | mean ± std | per seed |", "|---|---|---|",
                      *_paired(runs, split, pairs, column), ""]
    return "\n".join(lines)


def soft_section(runs: pd.DataFrame, head: str = "masked_single") -> list[str]:
    """``head`` plain, restricted with its arg-max category (hard), softly and with the true category: mean ± std
    over seeds per split; then the paired differences soft − plain and soft − hard."""
    names = {head: "plain", head + RESTRICTED: "hard (arg-max category)",
             head + SOFT_RESTRICTED: "soft (category probabilities)", head + TRUE_RESTRICTED: "true category"}
    columns = {"hmean_f1": "Meesho score", "accuracy": "accuracy", "rare_macro_f1": "rare macro-F1"}
    runs = runs[runs["run"].isin(list(names))]
    if head + SOFT_RESTRICTED not in set(runs["run"]):
        return []
    table = pd.concat({split: _cells(runs[runs["split"] == split], list(columns)).rename(columns=columns)
                       for split in ("validation", "test")}, axis=1)
    table.columns = [f"{metric} % ({split})" for split, metric in table.columns]
    table.index = [f"{names[run]}: {run}" for run in table.index]
    pairs = [(head + SOFT_RESTRICTED, head), (head + SOFT_RESTRICTED, head + RESTRICTED)]
    differences = ["| a − b | split | " + " | ".join(columns.values()) + " |", "|---|---|" + "---|" * len(columns)]
    for a, b in pairs:
        for split in ("validation", "test"):
            frame = runs[runs["split"] == split].set_index(["run", "seed"])
            cells = []
            for column in columns:
                difference = (frame.loc[a, column] - frame.loc[b, column]) * 100
                cells.append(f"{difference.mean():+.1f} ± {difference.std():.1f} ("
                             + " ".join(f"{v:+.1f}" for v in difference) + ")")
            differences.append(f"| {a} − {b} | {split} | " + " | ".join(cells) + " |")
    return [f"## Soft restriction: {head}", "",
            "Mean ± std over seeds, means over attr_1..attr_5:", "",
            _markdown(table.reset_index().rename(columns={"index": "run"})), "",
            "Paired differences (same seed), points: mean ± std (per seed):", "", *differences, ""]


def setup_text(data, spaces, n: int, image_size: int) -> str:
    space, rare = spaces["single"]["space"], spaces["rare"]
    sizes = ", ".join(f"{split} {len(part['frame'])}" for split, part in data.items())
    known = ", ".join(f"{g.name} {int((spaces['single']['train']['attributes'][:, g.start] >= 0).sum())}"
                      for g in space.groups[:-1])
    rare_names = "; ".join(f"{name}: {', '.join(space.group(name).values[i] for i in index) or '-'}"
                           for name, index in rare.items())
    head = ", ".join(f"{key.split('.', 1)[1]} {value}" for key, value in HEAD.items())
    return "\n".join([
        "## Setup", "",
        f"- catalogue: `make_synthetic_catalog(schema=\"meesho\", n={n}, image_size={image_size}, "
        f"seed={CATALOGUE_SEED})`; split {SPLIT} by subcategory (seed 0): {sizes} rows.",
        f"- known training cells per column: {known}; applicability learned from the training rows "
        "(checked equal to the generator's).",
        f"- rare values (< {RARE_SHARE:.0%} of the column's known training cells; a column's values are the "
        f"union over the categories it applies to): {rare_names}.",
        f"- features: ImageNet ResNet-50 (`{Path(WEIGHTS).name}`), global-average pooled, 2048-d, "
        f"images {image_size}x{image_size}, extracted once.",
        f"- head: `fit_head` with {head}; early stopping (library: monitors val subcategory "
        "accuracy, restores its best epoch). `tags` is a multi group in every head variant.",
        "- scorer (every row): on the cells known in the split, the arg-max over the column's values (within "
        "the slice, for multi variants too; no answer where every score is 0, see below); accuracy, macro-F1 "
        "(values seen in truth or prediction), Meesho "
        "score = harmonic mean of micro-F1 (= accuracy) and macro-F1; mean over attr_1..attr_5. `true value ≥ 0.5`: "
        "share of known cells whose true value scores at least 0.5 (softmax or sigmoid), what a 0.5 threshold "
        "would decode.",
        f"- `<variant>{RESTRICTED}`: the same training and seed, scored as `predict` answers: "
        "`fashion_hier.decoding.category_scores` with the head's predicted category (arg-max of its category "
        "output) — values the category never had in training set to 0, single groups renormalised — then the same "
        "scorer; where the predicted category has no such column (all its scores 0) the cell gets no answer, as "
        "`predict` leaves it empty: wrong for accuracy and recall, no value of its own in macro-F1. "
        f"`{LR_RESTRICTED}`: the logistic regression restricted with the row's *true* category (the script "
        "fits no category model for it), so it is an upper bound of what LR would get as predict answers; "
        f"{', '.join(f'`{n}{TRUE_RESTRICTED}`' for n in TRUE_CATEGORY_HEADS)} restricts the head the same way "
        "(rescored from its kept scores), the like-for-like comparison. `category accuracy %`: how often the "
        "head's predicted category is right.",
        f"- `<variant>{SOFT_RESTRICTED}`: the same kept scores restricted softly: each value's score times the "
        "probability that the row's category can have it, p(v) · Σ_c p(c | x) · value_mask[c, v] (p(c | x) the "
        "head's category output), single columns renormalised over their values, then the same scorer; a cell "
        "gets no answer only where that sum is 0 (never here: every category keeps some probability), so unlike "
        "the hard rows a column the arg-max category lacks is still answered. multi columns (masked_multi, "
        "missing_as_negative) are weighted, not renormalised, as `category_scores` leaves them; their arg-max is "
        "the same either way. `category accuracy %` as in the hard row.",
        "- logistic_regression: deterministic, one row per split; C chosen on validation accuracy per column, so "
        "its validation row is optimistic (test is not); `tags mAP` not fitted."])


def add_row(csv: Path, row: dict, done: set) -> None:
    """Append ``row`` unless its (run, seed) is in the CSV already; then print how far the stored row is from it
    (the existing rows are kept as they are: a retraining for the new rows checks that it reproduces them)."""
    if (row["run"], row["seed"]) not in done:
        append_row(csv, row)
        return
    stored = pd.read_csv(csv).set_index(["run", "seed", "split"]).loc[(row["run"], row["seed"], row["split"])]
    keys = [k for k, v in row.items() if isinstance(v, float) and k != "seconds" and k in stored.index
            and not (np.isnan(v) and np.isnan(stored[k]))]
    gap = max(abs(row[k] - float(stored[k])) for k in keys)
    print(f"{row['run']} seed {row['seed']} {row['split']}: kept the stored row; largest gap to this rerun "
          f"{gap:.2g} over {len(keys)} figures", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="catalogue and features.npz (outside the repo)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--weights", default=WEIGHTS)
    parser.add_argument("--stage", default="all", choices=("lr", "heads", "all"))
    parser.add_argument("--summary", action="store_true", help="only (re)write groups.md from groups.csv")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    csv, markdown = args.out / "groups.csv", args.out / "groups.md"
    data = load_data(args.work, args.n, args.image_size, args.weights)
    spaces = label_spaces(data)
    spaces["rare"] = rare_values(spaces["single"]["train"]["attributes"], spaces["single"]["space"])
    if not args.summary:
        done = set(zip(*pd.read_csv(csv)[["run", "seed"]].to_numpy().T)) if csv.is_file() else set()
        if args.stage in ("lr", "all") and {("logistic_regression", 0), (LR_RESTRICTED, 0)} - done:
            for row in run_logistic_regression(data, spaces):
                add_row(csv, row, done)
        if args.stage in ("heads", "all"):
            for seed in SEEDS:
                for name in VARIANTS:
                    kept = (args.work / "scores" / f"{name}_seed{seed}.npz").is_file()
                    if (name, seed) not in done or ((name + RESTRICTED, seed) not in done and not kept):
                        for row in run_head(data, spaces, name, seed, args.work):
                            add_row(csv, row, done)
                        done = set(zip(*pd.read_csv(csv)[["run", "seed"]].to_numpy().T))
                    for suffix in (RESTRICTED, SOFT_RESTRICTED,
                                   *([TRUE_RESTRICTED] if name in TRUE_CATEGORY_HEADS else [])):
                        if (name + suffix, seed) not in done:  # from the kept scores
                            for row in rescore(csv, args.work, spaces, name, seed, suffix):
                                add_row(csv, row, done)
    command = f"python experiments/synthetic_groups.py --work {args.work}" + (
        "" if (args.n, args.image_size) == (N, IMAGE_SIZE) else f" --n {args.n} --image-size {args.image_size}")
    notes = markdown.read_text(encoding="utf-8").partition(NOTES)[2] if markdown.is_file() else "\n"
    text = summary(pd.read_csv(csv), command, setup_text(data, spaces, args.n, args.image_size))
    markdown.write_text(f"{text}\n{NOTES}{notes}", encoding="utf-8")
    print(markdown.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
