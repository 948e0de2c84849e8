"""Collect the Fashion Product Images runs into the comparison tables of this folder.

Reads, for every run ``RUNS/<mapping>_<head>_<weighting>_seed<k>``, the ``metrics.json`` and
``per_class_subcategory.csv`` that ``fashion-hier evaluate`` wrote and the timing line that
``fashion-hier features`` printed, and writes here:

- ``per_seed.csv``: one row per run, every metric of ``hierarchical_report`` plus timing;
- ``comparison.csv`` / ``comparison.md``: mean and standard deviation over seeds per variant,
  and the message-passing minus independent difference against the seed spread;
- ``rare_subcategories.csv`` / ``.md``: per-class F1 of the 10 rarest subcategories (that have
  test rows), with and without inverse-frequency weighting;
- ``plots/``: the evaluation plots of the best variant's seed-0 run.

Usage (from the repository root): ``python experiments/results/fpi/summarise.py runs/fpi``
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.metrics import ATTRIBUTE_KEYS, HIERARCHY_KEYS, SINGLE_LABEL_KEYS

HERE = Path(__file__).resolve().parent
RUN_NAME = re.compile(r"^(?P<mapping>.+?)_(?P<head>message_passing|independent)_(?P<weighting>inverse_frequency|none)"
                      r"_seed(?P<seed>\d+)$")
TIMING = re.compile(r"one head epoch on (?P<rows>\d+) cached feature rows took (?P<epoch>[\d.]+) s "
                    r"\(median of (?P<epochs>\d+)\)")
METRICS = ([("category", key) for key in SINGLE_LABEL_KEYS] + [("subcategory", key) for key in SINGLE_LABEL_KEYS]
           + [("attributes", key) for key in ATTRIBUTE_KEYS] + [("hierarchy", key) for key in HIERARCHY_KEYS])
TIMING_COLUMNS = ("epochs_run", "train_seconds", "train_images_per_s", "command_seconds")
VARIANT = ["mapping", "head", "weighting"]
RARE_CLASSES = 10
RARE_MAPPING = "paper"  # the rare-class table compares weighting on the paper's mapping


def read_run(run_dir: Path) -> dict:
    """One row: the run's variant, every metric (in %) and its timing."""
    match = RUN_NAME.match(run_dir.name)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    row = {**match.groupdict(), "seed": int(match["seed"]), "n_test": metrics["n_samples"],
           "scored_from": metrics["data"].get("scored_from", "images")}
    for level, key in METRICS:
        value = metrics[level][key]
        row[f"{level}.{key}"] = np.nan if value is None else 100 * value
    log = (run_dir.parent / f"{run_dir.name}.train.log").read_text(encoding="utf-8")
    timing = TIMING.search(log)
    epoch, epochs, rows = float(timing["epoch"]), int(timing["epochs"]), int(timing["rows"])
    wall = re.search(r"wall_seconds_features_command ([\d.]+)", log)
    row.update(epochs_run=epochs, train_seconds=epoch * epochs, train_images_per_s=rows / epoch,
               command_seconds=float(wall[1]) if wall else np.nan)
    return row


def comparison(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every metric and timing, one row per variant."""
    columns = [f"{level}.{key}" for level, key in METRICS] + list(TIMING_COLUMNS)
    grouped = per_seed.groupby(VARIANT, sort=False)[columns]
    table = grouped.mean().add_suffix(".mean").join(grouped.std(ddof=1).add_suffix(".std"))
    table["seeds"] = grouped.size()
    ordered = [f"{column}.{stat}" for column in columns for stat in ("mean", "std")]
    return table[["seeds", *ordered]].reset_index()


def head_difference(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Message passing minus independent per metric, paired by seed (same split and weighting).

    ``exceeds_noise``: every paired difference has the same sign and the mean difference is larger
    than twice the larger of the two heads' seed standard deviations.
    """
    rows = []
    for (mapping, weighting), group in per_seed.groupby(["mapping", "weighting"], sort=False):
        by_head = {head: part.set_index("seed").sort_index() for head, part in group.groupby("head")}
        if set(by_head) != {"message_passing", "independent"}:
            continue
        mp, ind = by_head["message_passing"], by_head["independent"]
        for level, key in METRICS:
            column = f"{level}.{key}"
            paired = (mp[column] - ind[column]).dropna()
            if paired.empty:
                continue
            noise = max(mp[column].std(ddof=1), ind[column].std(ddof=1))
            same_sign = bool((paired > 0).all() or (paired < 0).all())
            rows.append({"mapping": mapping, "weighting": weighting, "metric": column,
                         "mp_minus_independent": paired.mean(), "paired_min": paired.min(),
                         "paired_max": paired.max(), "seed_std": noise,
                         "exceeds_noise": same_sign and abs(paired.mean()) > 2 * noise})
    return pd.DataFrame(rows, columns=["mapping", "weighting", "metric", "mp_minus_independent", "paired_min",
                                       "paired_max", "seed_std", "exceeds_noise"])


def rare_subcategories(runs_dir: Path, per_seed: pd.DataFrame, catalogue_counts: pd.Series) -> pd.DataFrame:
    """Per variant, mean per-class F1 (%) over seeds and test rows found / test rows over all seeds.

    The rarest subcategories are those with the fewest catalogue rows among the ones that have
    test rows in every run, so every variant is judged on the same classes.
    """
    tables = []
    for row in per_seed.itertuples():
        table = pd.read_csv(runs_dir / f"{row.mapping}_{row.head}_{row.weighting}_seed{row.seed}"
                            / "per_class_subcategory.csv", index_col="class")
        tables.append(table.assign(head=row.head, weighting=row.weighting, seed=row.seed).reset_index())
    per_class = pd.concat(tables)
    tested_runs = per_class[per_class["support"] > 0].groupby("class").size()
    always_tested = tested_runs[tested_runs == len(per_seed)].index
    rarest = catalogue_counts[catalogue_counts.index.isin(always_tested)].sort_values(kind="stable")[:RARE_CLASSES]
    chosen = per_class[per_class["class"].isin(rarest.index)].assign(
        hits=lambda t: (t["recall"] * t["support"]).round().astype(int))
    grouped = chosen.groupby(["class", "head", "weighting"])
    summary = pd.DataFrame({"f1": grouped["f1"].mean() * 100, "hits": grouped["hits"].sum(),
                            "rows": grouped["support"].sum()}).unstack(["head", "weighting"])
    summary.columns = [f"{stat} {head}/{'weighted' if weighting == 'inverse_frequency' else 'unweighted'}"
                       for stat, head, weighting in summary.columns]
    result = pd.concat([rarest.rename("catalogue_rows"), summary], axis=1).loc[rarest.index]
    return result.rename_axis("subcategory")


def rare_markdown(rare: pd.DataFrame) -> str:
    """'F1 (found/test rows)' per variant, one row per rare subcategory."""
    variants = [column[3:] for column in rare.columns if column.startswith("f1 ")]
    frame = pd.DataFrame({"subcategory": rare.index, "catalogue rows": rare["catalogue_rows"].to_numpy()})
    for variant in variants:
        frame[variant] = [f"{f1:.0f} ({hits}/{rows})" for f1, hits, rows in
                          zip(rare[f"f1 {variant}"], rare[f"hits {variant}"], rare[f"rows {variant}"])]
    return markdown(frame)


def markdown(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table (pandas' to_markdown needs the optional 'tabulate' package)."""
    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "n/a" if np.isnan(value) else format(value, floatfmt)
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def comparison_markdown(table: pd.DataFrame) -> str:
    """Per mapping: a row per metric, a column per variant, 'mean ± std' over seeds."""
    parts = []
    for mapping, group in table.groupby("mapping", sort=False):
        labels = [f"{h.replace('message_passing', 'message passing')}, "
                  f"{'inv.-freq. weighted' if w == 'inverse_frequency' else 'unweighted'}"
                  for h, w in zip(group["head"], group["weighting"])]
        rows = []
        metric_names = [f"{level}.{key}" for level, key in METRICS] + list(TIMING_COLUMNS)
        for name in metric_names:
            digits = 1 if name in TIMING_COLUMNS else 2
            cells = [f"{m:.{digits}f} ± {s:.{digits}f}" if not np.isnan(m) else "n/a"
                     for m, s in zip(group[f"{name}.mean"], group[f"{name}.std"])]
            rows.append([name, *cells])
        frame = pd.DataFrame(rows, columns=["metric (% unless timing)", *labels])
        parts.append(f"#### mapping `{mapping}` ({int(group['seeds'].min())} seeds; mean ± std)\n\n" + markdown(frame))
    return "\n".join(parts)


HEADLINE = ("category.accuracy", "category.CF1", "subcategory.accuracy", "subcategory.CF1", "attributes.OF1",
            "attributes.CF1", "attributes.mAP", "hierarchy.joint_accuracy", "train_seconds")


def headline_markdown(table: pd.DataFrame) -> str:
    """A compact table for the README: one row per variant, a few metrics as 'mean ± std'."""
    rows = []
    for _, row in table.iterrows():
        cells = [row["mapping"], row["head"].replace("_", " "),
                 "inverse frequency" if row["weighting"] == "inverse_frequency" else "none"]
        for name in HEADLINE:
            digits = 0 if name == "train_seconds" else 1
            cells.append(f"{row[name + '.mean']:.{digits}f} ± {row[name + '.std']:.{digits}f}")
        rows.append(cells)
    frame = pd.DataFrame(rows, columns=["mapping", "head", "weighting", "cat. acc", "cat. CF1", "sub. acc",
                                        "sub. CF1", "attr. OF1", "attr. CF1", "attr. mAP", "joint acc",
                                        "train s"])
    return markdown(frame)


def best_variant(table: pd.DataFrame, mapping: str) -> pd.Series:
    """The variant of ``mapping`` with the highest mean subcategory accuracy."""
    group = table[table["mapping"] == mapping]
    return group.loc[group["subcategory.accuracy.mean"].idxmax()]


def copy_small_png(source: Path, target: Path, *, max_bytes: int = 300_000) -> None:
    """Copy a plot, halving its pixel size (area interpolation) until it is under ``max_bytes``."""
    import cv2

    image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]
    while encoded.nbytes > max_bytes and min(image.shape[:2]) > 200:
        image = cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
        encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1]
    target.write_bytes(encoded.tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder holding the runs (e.g. runs/fpi)")
    parser.add_argument("--labels", type=Path, default=Path("../shared/data/fashion-product-images/styles.csv"))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    run_dirs = sorted(d for d in args.runs.iterdir() if RUN_NAME.match(d.name) and (d / "metrics.json").is_file())
    if not run_dirs:
        print(f"no evaluated runs under {args.runs}", file=sys.stderr)
        return 2
    per_seed = pd.DataFrame([read_run(d) for d in run_dirs]).sort_values(VARIANT + ["seed"], kind="stable")
    per_seed.to_csv(args.out / "per_seed.csv", index=False, float_format="%.4f")
    table = comparison(per_seed)
    table.to_csv(args.out / "comparison.csv", index=False, float_format="%.4f")
    differences = head_difference(per_seed)
    differences.to_csv(args.out / "head_difference.csv", index=False, float_format="%.4f")
    counts = pd.read_csv(args.labels, dtype=str)["articleType"].value_counts()
    rare = rare_subcategories(args.runs, per_seed[per_seed["mapping"] == RARE_MAPPING], counts)
    rare.to_csv(args.out / "rare_subcategories.csv", float_format="%.2f")
    (args.out / "comparison.md").write_text(comparison_markdown(table), encoding="utf-8")
    (args.out / "headline.md").write_text(headline_markdown(table), encoding="utf-8")
    (args.out / "rare_subcategories.md").write_text(rare_markdown(rare), encoding="utf-8")
    exceeding = differences[differences["exceeds_noise"]]
    (args.out / "head_difference.md").write_text(markdown(differences) + f"\n{len(exceeding)} of {len(differences)} "
                                                 "metric differences exceed the seed noise.\n", encoding="utf-8")
    best = best_variant(table, per_seed["mapping"].iloc[0] if "paper" not in set(per_seed["mapping"]) else "paper")
    best_run = args.runs / f"{best['mapping']}_{best['head']}_{best['weighting']}_seed0"
    plots = args.out / "plots"
    plots.mkdir(exist_ok=True)
    for png in sorted((best_run / "plots").glob("*.png")):
        copy_small_png(png, plots / png.name)
    (plots / "SOURCE.txt").write_text(f"copied from {best_run.name}/plots (best mean subcategory accuracy)\n")
    print(comparison_markdown(table))
    print(rare.round(1).to_string())
    print(f"best: {best_run.name}; {len(exceeding)} of {len(differences)} head differences exceed the seed noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
