"""The two HTML pages a person opens: ``report.html`` beside ``metrics.md`` and the audit's ``audit.html``.

Both are single self-contained files (``fashion_hier.htmlpage``): plots as base64 PNG, thumbnails as
base64 JPEG, no network, no folder beside them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_hier.htmlpage import escape, image_tag, page, png_data_uri, table, thumbnail_uri

CONFUSIONS_SHOWN = 10     # worst subcategory confusions listed in report.html
EXAMPLES_PER_CONFUSION = 4
THUMBNAIL_SIZE = 160
LEVEL_FILTER_SCRIPT = """
const select = document.getElementById("level-filter");
const count = document.getElementById("shown-count");
function applyFilter() {
  let shown = 0;
  for (const card of document.querySelectorAll(".card")) {
    const visible = select.value === "all" || card.dataset.level === select.value;
    card.style.display = visible ? "" : "none";
    if (visible) shown += 1;
  }
  count.textContent = String(shown);
}
select.addEventListener("change", applyFilter);
applyFilter();
"""


# ---- audit.html ---------------------------------------------------------------------------------
def audit_html(shown: pd.DataFrame, *, title: str, flagged: int, judged: int, resize: str = "pad",
               quality: Sequence[dict[str, Any]] = (), warnings: Sequence[str] = (),
               groups: Sequence[dict[str, Any]] = (), fill_in: pd.DataFrame | None = None,
               fill_in_csv: str = "") -> str:
    """A gallery of flagged labels (``fashion_hier.audit.CSV_COLUMNS`` rows), filterable by level.

    Above it: the warnings (the rankings are not to be trusted) and ``quality``, one dict per level
    (``fashion_hier.audit.LevelQuality.as_dict`` plus ``flagged`` and ``judged``; an attribute group's
    also has ``group``). With attribute columns: ``groups`` (``audit.json``'s per-group entries: empty
    cells and fill-in suggestions) and ``fill_in``, the most confident suggestions to list
    (``fashion_hier.audit.FILL_IN_COLUMNS`` rows), all of them in the file named ``fill_in_csv``.
    """
    levels = list(dict.fromkeys(shown["level"]))
    options = "".join(f'<option value="{escape(level)}">{escape(level)}</option>' for level in levels)
    cards = "".join(_audit_card(row, resize) for row in shown.itertuples(index=False))
    body = (
        "".join(f'<p class="warning" style="color: #b00; font-weight: bold">Warning: {escape(text)}</p>'
                for text in warnings)
        + _audit_quality_table(quality) + _audit_fill_in(groups, fill_in, fill_in_csv) +
        f'<p class="note">{flagged} of {judged} labels flagged by cleanlab on out-of-fold predictions; '
        f"the {len(shown)} most suspicious (lowest label-quality score) are shown, most suspicious first. "
        f'Red: the catalogue\'s label; green: what the cross-validated model suggests. Full list: audit.csv.</p>'
        f'<p><label for="level-filter">level: </label><select id="level-filter">'
        f'<option value="all">all</option>{options}</select> '
        f'<span id="shown-count">{len(shown)}</span> shown</p>'
        f'<div class="gallery">{cards}</div>'
    )
    return page(title, body, script=LEVEL_FILTER_SCRIPT)


def _audit_quality_table(quality: Sequence[dict[str, Any]]) -> str:
    """How well each level's (or attribute group's) out-of-fold heads classify, against the commonest label."""
    if not quality:
        return ""
    rows = [(f"{level['level']}: {level['group']}" if level.get("group") else level["level"], level["metric"],
             f"{level['score']:.3f}", f"{level['baseline']:.3f}",
             f"{level['needed']:.3f}", "yes" if level["trusted"] else "NO", level["flagged"], level["judged"])
            for level in quality]
    return table(("level", "out-of-fold metric", "score", "baseline (commonest label)", "trusted from", "trusted",
                  "flagged", "judged"), rows, table_id="audit-quality")


def _audit_fill_in(groups: Sequence[dict[str, Any]], fill_in: pd.DataFrame | None, fill_in_csv: str) -> str:
    """Attribute columns: per group its empty cells and the suggestions made, then the most confident ones."""
    if not groups:
        return ""
    counts = table(("group", "kind", "column", "empty cells (group applies)", "suggestions", "trusted"),
                   [(group["group"], group["kind"], group["column"], group["blank"], group["fill_in"],
                     "yes" if group.get("trusted") else "NO" if "trusted" in group else "not judged")
                    for group in groups], table_id="audit-fill-in")
    total, blank = (sum(int(group[key]) for group in groups) for key in ("fill_in", "blank"))
    listed = "" if fill_in is None or not len(fill_in) else table(
        ("rank", "id", "group", "suggested", "score"),
        [(row.rank, row.id, row.group, row.suggested, f"{float(row.score):.3f}") for row in fill_in.itertuples()],
        table_id="audit-fill-in-top")
    shown = f"; the first {len(fill_in)} below" if fill_in is not None and len(fill_in) else ""
    where = f"{fill_in_csv}, " if fill_in_csv else ""
    return (f'<h2>Fill-in suggestions</h2><p class="note">{total} suggestions for the {blank} empty cells where '
            f"their group applies: the cross-validated model's value ({escape(where)}most "
            f"confident first{shown}). "
            "A multi-valued cell gets one only when some value is more likely than not, scored by the least sure "
            "of its value decisions; a group not judged (fewer than two learnable values) gets none.</p>"
            + counts + listed)


def _audit_card(row: Any, resize: str) -> str:
    group = getattr(row, "group", "")
    where = f"{row.level}: {group}" if isinstance(group, str) and group and group != row.level else row.level
    return (
        f'<div class="card" data-level="{escape(row.level)}">'
        f"{image_tag(thumbnail_uri(row.image_path, THUMBNAIL_SIZE, resize), str(row.id))}"
        f"<div>#{int(row.rank)} {escape(where)} · id {escape(row.id)}</div>"
        f'<div class="given">given: {escape(row.given)}</div>'
        f'<div class="suggested">suggested: {escape(row.suggested)}</div>'
        f"<div>score {float(row.score):.3g}</div></div>"
    )


# ---- report.html --------------------------------------------------------------------------------
def worst_confusions(true: np.ndarray, predicted: np.ndarray, names: Sequence[str],
                     top: int = CONFUSIONS_SHOWN) -> list[tuple[int, int, int]]:
    """The ``top`` most frequent (true, predicted, count) off-diagonal pairs, most frequent first."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    wrong = true != predicted
    if not wrong.any():
        return []
    pairs, counts = np.unique(np.stack([true[wrong], predicted[wrong]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts))[:top]
    return [(int(pairs[i, 0]), int(pairs[i, 1]), int(counts[i])) for i in order]


def report_html(result: dict[str, Any], table_markdown: str, plot_paths: Sequence[str | os.PathLike],
                image_paths: Sequence[str], subcategory_true: np.ndarray, subcategory_predicted: np.ndarray,
                subcategory_names: Sequence[str], *, resize: str = "stretch", title: str = "Evaluation report") -> str:
    """The evaluation page: the paper's table, hierarchy figures, the plots, the worst confusions with examples."""
    hierarchy = result["hierarchy"]
    body = [
        f'<p class="note">{result["n_samples"]} samples from {escape(result["data"]["source"])}; '
        f'attribute thresholds: {escape(result["thresholds"]["source"])}; checkpoint {escape(result["checkpoint"])}.</p>',
        "<h2>Metrics (%)</h2>", _markdown_table_html(table_markdown),
        "<h2>Hierarchy</h2>",
        table(["measure", "%"], [
            ["consistency (predicted subcategory under predicted category)", _percent(hierarchy.get("consistency"))],
            ["joint accuracy (category and subcategory both right)", _percent(hierarchy.get("joint_accuracy"))],
        ], table_id="hierarchy"),
        *(["<h2>Attribute columns (%)</h2>", table(*group_table_cells(result["groups"]), table_id="groups"),
            '<p class="note">Each column scored on the rows where its cell is known and it applies to the '
            "category; hmean F1 is the harmonic mean of micro and macro F1.</p>"] if result.get("groups") else []),
        _trust_html(result),
        "<h2>Plots</h2>",
        "".join(f'<figure><img src="{png_data_uri(path)}" alt="{escape(Path(path).stem)}">'
                f"<figcaption>{escape(Path(path).name)}</figcaption></figure>" for path in plot_paths),
        "<h2>Worst subcategory confusions</h2>",
        _confusions_html(image_paths, subcategory_true, subcategory_predicted, subcategory_names, resize),
    ]
    return page(title, "\n".join(body))


def _percent(value: Any) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _trust_html(result: dict[str, Any]) -> str:
    """Calibration per level, coverage at target accuracies and hP/hR/hF (evaluate's ``trust_report``)."""
    if "calibration" not in result:
        return ""
    calibration = [[level, *(f"{figures[key]:.4f}" for key in ("ece", "adaptive_ece", "brier", "log_loss")),
                    f"{figures['temperature']:.3f}"] for level, figures in result["calibration"].items()]
    coverage = []
    for level in ("category", "subcategory"):
        points = result["selective"][level]["at_accuracy"]
        coverage.append([level, *("unreachable" if point["min_confidence"] is None else
                                  f"{100 * point['coverage']:.1f}% (confidence >= {point['min_confidence']:.3f})"
                                  for point in points.values())])
    micro, macro = result["hierarchical"]["micro"], result["hierarchical"]["macro"]
    hierarchical = [[average, *(_percent(figures[key]) for key in ("hP", "hR", "hF"))]
                    for average, figures in (("micro", micro), ("macro", macro)) if figures is not None]
    targets = [f"coverage at {100 * float(target):.0f}% accuracy" for target in result["selective"]["category"]["at_accuracy"]]
    return "\n".join([
        "<h2>Calibration</h2>",
        table(["level", "ECE", "adaptive ECE", "Brier", "log loss", "temperature"], calibration, table_id="calibration"),
        "<h2>Answers a team can accept unseen</h2>",
        table(["level", *targets], coverage, table_id="coverage"),
        "<h2>Hierarchical precision, recall, F1 (%)</h2>",
        table(["average", "hP", "hR", "hF"], hierarchical, table_id="hierarchical"),
    ])


GROUP_TABLE_HEADER = ("group", "kind", "known rows", "coverage", "accuracy", "macro F1", "micro F1", "hmean F1",
                      "mAP", "OF1")


def group_table_cells(groups: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The per-group table (``evaluate``'s ``groups``): header and rows, metrics in %; one source for
    ``metrics.md`` and ``report.html``."""
    rows = []
    for name, figures in groups.items():
        single = figures["kind"] == "single"
        rows.append([name, figures["kind"], str(figures["known"]), _percent(figures["coverage"]),
                     *(_percent(figures[key]) if single else "" for key in ("accuracy", "macro_f1", "micro_f1",
                                                                             "hmean_f1")),
                     *("" if single else _percent(figures[key]) for key in ("mAP", "OF1"))])
    return list(GROUP_TABLE_HEADER), rows


def _markdown_table_html(markdown: str) -> str:
    """The pipe table at the top of ``metrics.md`` as an HTML table (one source for both files)."""
    lines = markdown.split("\n\n")[0].splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return table(cells[0], [row for row in cells[2:]], table_id="metrics")


def _confusions_html(image_paths: Sequence[str], true: np.ndarray, predicted: np.ndarray,
                     names: Sequence[str], resize: str) -> str:
    confusions = worst_confusions(true, predicted, names)
    if not confusions:
        return '<p class="note">no subcategory confusions on this split.</p>'
    paths = np.asarray(image_paths, dtype=str)
    rows = []
    for truth, guess, count in confusions:
        examples = paths[(true == truth) & (predicted == guess)][:EXAMPLES_PER_CONFUSION]
        thumbnails = "".join(image_tag(thumbnail_uri(p, 96, resize), Path(p).name).replace("<img ", '<img width="96" ')
                             for p in examples)
        rows.append(f"<tr><td>{escape(names[truth])}</td><td>{escape(names[guess])}</td><td>{count}</td>"
                    f'<td class="examples">{thumbnails}</td></tr>')
    return ('<table id="confusions"><thead><tr><th>true</th><th>predicted</th><th>rows</th><th>examples</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def write_html_report(out_dir: str | os.PathLike, result: dict[str, Any], table_markdown: str,
                      plot_paths: Sequence[str | os.PathLike], image_paths: Sequence[str],
                      targets: dict[str, np.ndarray], scores: dict[str, np.ndarray], label_space: Any,
                      *, resize: str = "stretch") -> Path:
    """Write ``report.html`` into ``out_dir`` (atomically) and return its path."""
    from fashion_hier.atomic import atomic_write_text
    from fashion_hier.rundir import RunDir

    text = report_html(result, table_markdown, plot_paths, image_paths, targets["subcategory"],
                       np.asarray(scores["subcategory"]).argmax(axis=1), label_space.subcategories, resize=resize)
    return atomic_write_text(RunDir(out_dir).report_html, text)


# ---- the tuned-threshold hint -------------------------------------------------------------------
def threshold_hint(y_true: np.ndarray, y_score: np.ndarray, thresholds: np.ndarray, *, seed: int = 0,
                   min_gain: float = 0.01) -> str | None:
    """One line when per-attribute tuned thresholds would raise attribute F1 (micro) by ``min_gain`` or more.

    The gain is estimated without scoring anything again and without fitting on the rows it is
    measured on: the rows are cut in two halves, thresholds tuned on one half are scored on the other,
    and both ways are pooled. Returns None when tuning would not help.
    """
    from sklearn.metrics import f1_score

    from fashion_hier.metrics import tune_thresholds

    y_true = np.asarray(y_true) > 0
    y_score = np.asarray(y_score, dtype=float)
    if len(y_true) < 4 or not y_true.any():
        return None
    halves = np.array_split(np.random.default_rng(seed).permutation(len(y_true)), 2)
    tuned = np.zeros_like(y_true)
    for fit, score in ((halves[0], halves[1]), (halves[1], halves[0])):
        tuned[score] = y_score[score] >= tune_thresholds(y_true[fit], y_score[fit])
    current = f1_score(y_true, y_score >= np.asarray(thresholds), average="micro", zero_division=0)
    estimated = f1_score(y_true, tuned, average="micro", zero_division=0)
    if estimated - current < min_gain:
        return None
    return (f"hint: tuned per-attribute thresholds would raise attribute F1 from {100 * current:.1f}% to about "
            f"{100 * estimated:.1f}% (estimated by 2-fold cross-fitting on these rows); run "
            f"'fashion-hier evaluate --run RUN --tune-thresholds' to fit them on the validation split")
