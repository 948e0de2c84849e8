"""Read a labels CSV and an image folder into a clean catalogue, and say what was left out.

The default schema is Kaggle's *Fashion Product Images* ``styles.csv``. Real exports carry rows
with an unquoted comma in the free-text last column (``productDisplayName``) or a stray ``"``;
``csvread`` recovers, skips or refuses those (``on_bad_rows``) and the report lists them by line.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_hier.data.csvread import BadRow, CatalogError, check_on_bad_rows, delimiter_name, read_frame
from fashion_hier.data.images import DEFAULT_MAX_PIXELS, unreadable_reason
from fashion_hier.labels import IMAGE_PATH, LabelColumns, LabelSpace

__all__ = ["BadRow", "Catalog", "CatalogError", "CatalogReport", "Exclusion", "IMAGE_EXTENSIONS", "read_catalog"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
EXAMPLES_SHOWN = 5
_NUMERIC_ID = re.compile(r"^(\d+)\.0+$")  # an id a spreadsheet wrote as a number: 10000.0 for image 10000.jpg


@dataclass
class Exclusion:
    """Rows left out for one reason: how many, and a few (line, id, detail) examples."""

    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CatalogReport:
    """What ``read_catalog`` read, fixed, left out and re-balanced. ``str()`` prints it."""

    labels_csv: str
    image_dir: str
    rows_read: int = 0
    lines_read: int = 0
    blank_lines: int = 0
    quoted_line_breaks: int = 0
    encoding: str = "utf-8"
    delimiter: str = ","
    notes: list[str] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    excluded: dict[str, Exclusion] = field(default_factory=dict)
    ambiguous_images: Exclusion = field(default_factory=Exclusion)
    balancing: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-serialisable data."""
        data = asdict(self)
        data["bad_rows"] = [{**asdict(row), "reason": row.reason} for row in self.bad_rows]
        return data

    def __str__(self) -> str:
        lines = [
            f"catalogue {self.labels_csv} (images under {self.image_dir})",
            f"  rows read: {self.rows_read}; kept: {self.rows_kept}",
            f"  lines: {self.lines_read} ({self._line_accounting()}); {self.encoding}, "
            f"{delimiter_name(self.delimiter)}-delimited",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        if self.bad_rows:
            lines.append(f"  malformed rows: {len(self.bad_rows)}")
            lines += [f"    line {row.line}: {row.reason}" for row in self.bad_rows[:10]]
            if len(self.bad_rows) > 10:
                lines.append(f"    ... and {len(self.bad_rows) - 10} more (see to_dict()['bad_rows'])")
        for reason, exclusion in self.excluded.items():
            if exclusion.count:
                lines.append(f"  left out, {reason.replace('_', ' ')}: {exclusion.count}")
                lines += [f"    {_describe(example)}" for example in exclusion.examples]
        if self.ambiguous_images.count:
            lines.append(f"  ids with several image files (first by extension order used): {self.ambiguous_images.count}")
        if self.conflicts:
            lines.append(f"  subcategories under more than one category: {len(self.conflicts)}")
            lines += [f"    {sub}: {rows}" for sub, rows in list(self.conflicts.items())[:10]]
        for key, value in self.balancing.items():
            lines.append(f"  balancing {key}: {value}")
        return "\n".join(lines)


    def _line_accounting(self) -> str:
        """Every physical line: the header, the rows, blank lines and line breaks inside quoted fields."""
        parts = ["1 header", f"{self.rows_read} rows"]
        if self.blank_lines:
            parts.append(f"{self.blank_lines} blank")
        if self.quoted_line_breaks:
            parts.append(f"{self.quoted_line_breaks} inside quoted fields")
        return " + ".join(parts)


def _describe(example: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in example.items())


class Catalog:
    """The clean rows (with an absolute ``image_path`` column), their label columns and the report."""

    def __init__(self, frame: pd.DataFrame, columns: LabelColumns, report: CatalogReport) -> None:
        self.frame = frame
        self.columns = columns
        self.report = report

    @property
    def paths(self) -> np.ndarray:
        return self.frame[IMAGE_PATH].to_numpy(dtype=str)

    def label_space(self) -> LabelSpace:
        """The label space of every row in the catalogue."""
        return LabelSpace.from_columns(self.frame, self.columns)

    def split(self, fractions: Sequence[float] = (0.7, 0.15, 0.15), *, by: str = "subcategory", seed: int = 0):
        """Stratified train/validation/test split; ``by`` is a level name or a column name."""
        from fashion_hier.data.split import split_frame

        column = {"category": self.columns.category, "subcategory": self.columns.subcategory}.get(by, by)
        return split_frame(self.frame, column, fractions, seed=seed)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Catalog({len(self.frame)} rows, columns={self.columns})"


def read_config_catalog(config) -> Catalog:
    """The catalogue a ``TrainConfig``'s ``data`` section describes (``read_catalog`` with its options)."""
    data = config.data
    return read_catalog(data.labels_csv, data.image_dir, columns=data.columns, id_column=data.id_column,
                        verify_images=data.verify_images, max_pixels=data.max_pixels, cap_factor=data.cap_factor,
                        target_samples=data.target_samples, seed=data.seed)


def config_splits(config, catalog: Catalog | None = None):
    """The train/validation/test split ``train`` makes of a ``TrainConfig``'s catalogue (``data.split``,
    ``split_by``, ``seed``); ``catalog``: that catalogue when the caller has already read it."""
    data = config.data
    catalog = catalog if catalog is not None else read_config_catalog(config)
    return catalog.split(tuple(data.split), by=data.split_by, seed=data.seed)


def read_catalog(
    labels_csv: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    columns: LabelColumns = LabelColumns(),
    id_column: str = "id",
    path_column: str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    on_bad_rows: str = "recover",
    verify_images: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cap_factor: float | None = None,
    target_samples: int | None = None,
    seed: int = 0,
) -> Catalog:
    """Read ``labels_csv``, find each row's image under ``image_dir``, leave out what cannot be used.

    Images are found by ``id_column`` (``<id>.<ext>`` anywhere under ``image_dir``) or, with
    ``path_column``, by a path relative to ``image_dir``. Rows with no image, an undecodable
    image (``verify_images=True``, with the loaders' pixel budget ``max_pixels``) or no
    category/subcategory label are left out and reported.
    ``cap_factor`` caps each subcategory at that many times the mean subcategory size;
    ``target_samples`` then down-samples to that many rows keeping subcategory proportions.
    The encoding (UTF-8, UTF-8 with BOM, else cp1252/latin-1, noted) and the delimiter (comma,
    semicolon, tab or pipe) are detected. A CSV or folder that yields no usable row raises
    ``CatalogError`` (a ValueError) naming the file, line or column and what to do.
    """
    labels_csv, image_dir = Path(labels_csv), Path(image_dir)
    _check_options(on_bad_rows, cap_factor, target_samples, extensions)
    if not labels_csv.is_file():
        raise FileNotFoundError(f"labels CSV {labels_csv} does not exist")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist or is not a folder")
    report = CatalogReport(labels_csv=str(labels_csv), image_dir=str(image_dir))

    frame = _read_frame(labels_csv, on_bad_rows, report)
    key_column = path_column or id_column
    _check_columns(frame, labels_csv, [key_column, *columns.all], "columns")

    frame = _leave_out(frame, frame[list(columns.required)].isna().any(axis=1), report, "missing_label",
                       lambda row: f"no {' / '.join(c for c in columns.required if pd.isna(row[c]))}", key_column)
    frame = _leave_out(frame, frame[key_column].isna() | frame[key_column].duplicated(), report, "bad_or_duplicate_id",
                       lambda row: "empty" if pd.isna(row[key_column]) else "repeats an earlier row", key_column)

    if path_column:
        paths = frame[path_column].map(lambda p: _path_under(image_dir, p))
    else:
        index, report.ambiguous_images = _image_index(image_dir, extensions)
        paths = _find_by_id(frame[id_column], index, report)
    frame = frame.assign(image_path=paths)
    with_image = frame[IMAGE_PATH].notna()
    if len(frame) and not with_image.any():
        raise CatalogError(_no_images_message(labels_csv, image_dir, frame, key_column, path_column, extensions))
    frame = _leave_out(frame, ~with_image, report, "missing_image",
                       lambda row: f"no image for {row[key_column]!r} under {image_dir}", key_column)
    if verify_images:  # the loaders' own decoder, so that what passes here also loads in training
        reasons = frame[IMAGE_PATH].map(lambda path: unreadable_reason(path, max_pixels=max_pixels))
        frame = _leave_out(frame, reasons.notna(), report, "unreadable_image",
                           lambda row: f"cannot read {row[IMAGE_PATH]}: {reasons[row.name]}", key_column)

    frame = _balance(frame, columns.subcategory, cap_factor, target_samples, seed, report)
    if not len(frame):
        raise CatalogError(f"{labels_csv}: none of its {report.rows_read} rows can be used:\n{report}")
    report.conflicts = LabelSpace.from_columns(frame, columns).conflicts
    report.rows_kept = len(frame)
    return Catalog(frame.reset_index(drop=True), columns, report)


def _read_frame(path: Path, on_bad_rows: str, report: CatalogReport) -> pd.DataFrame:
    """``csvread.read_frame``'s text columns indexed by line; what the reader found goes into ``report``."""
    frame, parsed = read_frame(path, on_bad_rows)
    report.bad_rows, report.rows_read, report.notes = parsed.bad_rows, parsed.rows_read, list(parsed.notes)
    report.lines_read, report.blank_lines = parsed.line_count, parsed.blank_lines
    report.quoted_line_breaks = parsed.quoted_line_breaks
    report.encoding, report.delimiter = parsed.encoding, parsed.delimiter
    return frame


def _find_by_id(ids: pd.Series, index: dict[str, str], report: CatalogReport) -> pd.Series:
    """Image path per id; an id written as a number (``10000.0``) also matches ``10000.jpg`` (and is noted)."""
    paths = ids.map(index)
    numeric = paths.isna() & ids.str.fullmatch(_NUMERIC_ID).fillna(False).astype(bool)
    if numeric.any():
        paths = paths.where(~numeric, ids[numeric].str.replace(_NUMERIC_ID, r"\1", regex=True).map(index))
        matched = int(paths[numeric].notna().sum())
        example = ids[numeric].iloc[0]
        integer = _NUMERIC_ID.fullmatch(example).group(1)
        report.notes.append(f"{matched} of {int(numeric.sum())} ids written as numbers (e.g. {example!r}) "
                            f"matched images by their integer part (e.g. {integer}.jpg)")
    return paths


def _no_images_message(labels_csv: Path, image_dir: Path, frame: pd.DataFrame, key_column: str,
                       path_column: str | None, extensions: Sequence[str]) -> str:
    example = frame[key_column].iloc[0]
    if path_column:
        looked_for = f"paths in column {path_column!r} relative to the folder (e.g. {image_dir / str(example)})"
    else:
        looked_for = (f"files named <{key_column}> + one of {', '.join(extensions)} in it and its subfolders "
                      f"(e.g. {example}{extensions[0]})")
    return (f"{labels_csv}: no image found for any of its {len(frame)} rows under {image_dir}; looked for "
            f"{looked_for} — check the image folder (data.image_dir) and the id column (data.id_column)")


def _check_options(on_bad_rows: str, cap_factor, target_samples, extensions) -> None:
    check_on_bad_rows(on_bad_rows)
    if cap_factor is not None and not cap_factor > 0:
        raise ValueError(f"cap_factor must be a positive number (times the mean class size) or None, got {cap_factor!r}")
    if target_samples is not None and (isinstance(target_samples, bool) or not isinstance(target_samples, (int, np.integer)) or target_samples < 1):
        raise ValueError(f"target_samples must be a positive integer or None, got {target_samples!r}")
    if isinstance(extensions, str) or not all(str(e).startswith(".") for e in extensions):
        raise ValueError(f"extensions must be a list of suffixes with a dot, like ('.jpg', '.png'), got {extensions!r}")


def _check_columns(frame: pd.DataFrame, source: Path, needed: Sequence[str], argument: str) -> None:
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        hint = ("; the header reads as one column — is the file delimited by something other than "
                "comma, semicolon, tab or pipe?" if len(frame.columns) == 1 else "")
        raise CatalogError(
            f"{source}: columns {missing} not found (header: {list(frame.columns)}){hint}; "
            f"name the CSV's columns in the config's data.columns / data.id_column (Python: "
            f"{argument}=LabelColumns(...), id_column=..., path_column=...)"
        )


def _leave_out(frame: pd.DataFrame, drop: pd.Series, report: CatalogReport, reason: str, detail, key_column: str) -> pd.DataFrame:
    """Remove the rows marked in ``drop`` and record them (count + first examples) under ``reason``."""
    dropped = frame.loc[drop.to_numpy(dtype=bool)]
    report.excluded[reason] = Exclusion(
        count=len(dropped),
        examples=[
            {"line": int(row.name), key_column: None if pd.isna(row[key_column]) else str(row[key_column]), "detail": detail(row)}
            for _, row in dropped.head(EXAMPLES_SHOWN).iterrows()
        ],
    )
    return frame.loc[~drop.to_numpy(dtype=bool)]


def _image_index(image_dir: Path, extensions: Sequence[str]) -> tuple[dict[str, str], Exclusion]:
    """Map file stem (the product id) -> absolute image path, from one walk of ``image_dir``.

    When an id has several files, the one whose extension comes first in ``extensions`` wins
    (then the alphabetically first path); such ids are reported.
    """
    rank = {ext.lower(): i for i, ext in enumerate(extensions)}
    found: dict[str, list[tuple[int, str]]] = {}
    for folder, _, files in os.walk(image_dir):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() in rank:
                found.setdefault(stem, []).append((rank[ext.lower()], os.path.abspath(os.path.join(folder, name))))
    index = {stem: min(candidates)[1] for stem, candidates in found.items()}
    several = sorted(stem for stem, candidates in found.items() if len(candidates) > 1)
    ambiguous = Exclusion(
        count=len(several),
        examples=[{"id": stem, "files": sorted(path for _, path in found[stem])} for stem in several[:EXAMPLES_SHOWN]],
    )
    return index, ambiguous


def _path_under(image_dir: Path, relative: str) -> str | None:
    path = (image_dir / str(relative)).resolve()
    return str(path) if path.is_file() else None


def _balance(frame: pd.DataFrame, column: str, cap_factor: float | None, target_samples: int | None,
             seed: int, report: CatalogReport) -> pd.DataFrame:
    """The notebook's balancing: cap each class at k x mean class size, then down-sample to a total."""
    rng = np.random.default_rng(seed)
    if cap_factor is not None and len(frame):
        counts = frame[column].value_counts().sort_index()
        cap = max(1, math.floor(cap_factor * counts.mean()))
        before = len(frame)
        frame = _sample_per_class(frame, column, counts.clip(upper=cap), rng)
        report.balancing["cap"] = {"cap_factor": cap_factor, "mean_class_size": round(float(counts.mean()), 3),
                                   "cap": cap, "classes_capped": sorted(counts.index[counts > cap]),
                                   "rows_removed": before - len(frame)}
    if target_samples is not None and len(frame):
        counts = frame[column].value_counts().sort_index()
        before = len(frame)
        if target_samples < before:
            frame = _sample_per_class(frame, column, _proportional_quotas(counts, target_samples), rng)
        report.balancing["target"] = {"target_samples": target_samples, "rows_removed": before - len(frame),
                                      "classes_removed": sorted(set(counts.index) - set(frame[column]))}
    return frame


def _proportional_quotas(counts: pd.Series, total: int) -> pd.Series:
    """Rows per class adding up to ``total``, proportional to ``counts`` (largest remainders get the rest)."""
    exact = counts * total / counts.sum()
    quotas = np.floor(exact).astype(int)
    leftover = total - int(quotas.sum())
    largest_remainders = (exact - quotas).sort_values(ascending=False, kind="stable").index[:leftover]
    quotas[largest_remainders] += 1
    return quotas


def _sample_per_class(frame: pd.DataFrame, column: str, quotas: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    """Keep ``quotas[c]`` random rows of each class ``c`` (all when the quota covers it), in file order."""
    keep = []
    for name, positions in frame.groupby(column, sort=True).indices.items():
        quota = int(quotas.get(name, 0))
        keep.append(positions if quota >= len(positions) else rng.choice(positions, size=quota, replace=False))
    return frame.iloc[np.sort(np.concatenate(keep))] if keep else frame
