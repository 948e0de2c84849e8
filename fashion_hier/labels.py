"""The label space: class names per level, the category -> subcategory tree, attribute names.

Built once from training data, saved as JSON beside every model, and used to turn catalogue
rows into model targets (``encode``) and model outputs back into names (``decode_*``).
Only numpy and pandas here: no TensorFlow, so reading labels stays cheap.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

LEVELS = ("category", "subcategory", "attributes")

MISSING_LABEL = "<missing>"  # how a missing category/subcategory is named in unknown-label reports
_FORMAT = "fashion_hier.LabelSpace"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LabelColumns:
    """Which CSV columns feed each level.

    ``attributes`` lists columns whose values are attribute names; with ``attribute_separator``
    set, each of those columns holds a delimited list (``"Summer|Casual"``) instead of one value.
    """

    category: str = "subCategory"
    subcategory: str = "articleType"
    attributes: tuple[str, ...] = ("season", "usage")
    attribute_separator: str | None = None

    def __post_init__(self) -> None:
        attributes = (self.attributes,) if isinstance(self.attributes, str) else tuple(self.attributes)
        object.__setattr__(self, "attributes", attributes)
        if self.attribute_separator == "":
            raise ValueError("attribute_separator must be a non-empty string or None")

    @property
    def required(self) -> tuple[str, str]:
        """Columns every usable row needs a value in."""
        return (self.category, self.subcategory)

    @property
    def all(self) -> tuple[str, ...]:
        """Every column the label space reads, required ones first."""
        return (*self.required, *self.attributes)


def label_text(value: Any) -> str | None:
    """One cell as a label name: stripped text, or None when missing (NaN, None, empty)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a numeric column with gaps is read as float: 2011.0 -> "2011"
    text = str(value).strip()
    return text or None


def row_attributes(df: pd.DataFrame, columns: LabelColumns) -> list[list[str]]:
    """Attribute names of every row, in column order, without duplicates or missing values."""
    _require_columns(df, columns.attributes)
    per_row: list[list[str]] = [[] for _ in range(len(df))]
    for column in columns.attributes:
        for names, value in zip(per_row, df[column].tolist()):
            text = label_text(value)
            if text is None:
                continue
            parts = text.split(columns.attribute_separator) if columns.attribute_separator else [text]
            for part in (p.strip() for p in parts):
                if part and part not in names:
                    names.append(part)
    return per_row


def _level_texts(df: pd.DataFrame, column: str) -> pd.Series:
    """A category/subcategory column as label names, missing values as None."""
    return pd.Series([label_text(v) for v in df[column].tolist()], index=df.index, dtype=object)


def _require_columns(df: pd.DataFrame, names: Iterable[str]) -> None:
    missing = [name for name in names if name not in df.columns]
    if missing:
        raise KeyError(
            f"label columns {missing} not in the frame (columns: {list(df.columns)}); "
            "pass the right names (LabelColumns / from_frame arguments)"
        )


class LabelSpace:
    """Class names of the three levels, the tree joining them, and encoders/decoders."""

    def __init__(
        self,
        categories: Sequence[str],
        subcategories: Sequence[str],
        attributes: Sequence[str],
        parents: dict[str, str],
        *,
        columns: LabelColumns = LabelColumns(),
        conflicts: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self.categories = list(categories)
        self.subcategories = list(subcategories)
        self.attributes = list(attributes)
        self.parents = {sub: parents[sub] for sub in self.subcategories if sub in parents}
        self.columns = columns
        self.conflicts = {sub: dict(rows) for sub, rows in (conflicts or {}).items()}
        self._check()
        self._index = {
            "category": {name: i for i, name in enumerate(self.categories)},
            "subcategory": {name: i for i, name in enumerate(self.subcategories)},
            "attributes": {name: i for i, name in enumerate(self.attributes)},
        }

    def _check(self) -> None:
        for level, names in zip(LEVELS, (self.categories, self.subcategories, self.attributes)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{level} names must be unique; repeated: {duplicates}")
        orphans = [sub for sub in self.subcategories if sub not in self.parents]
        if orphans:
            raise ValueError(f"subcategories without a parent category: {orphans}")
        strangers = sorted({cat for cat in self.parents.values() if cat not in self.categories})
        if strangers:
            raise ValueError(f"parents name categories that are not in the category list: {strangers}")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        category: str = "subCategory",
        subcategory: str = "articleType",
        attributes: str | Sequence[str] = ("season", "usage"),
        attribute_separator: str | None = None,
    ) -> "LabelSpace":
        """Every label seen in ``df``, in sorted order, and the tree between the two levels.

        A subcategory seen under several categories is recorded in ``conflicts`` and given the
        category with the most rows as its parent (ties: alphabetically first).
        """
        columns = LabelColumns(category, subcategory, attributes, attribute_separator)
        _require_columns(df, columns.all)
        pairs = pd.DataFrame(
            {"category": _level_texts(df, category), "subcategory": _level_texts(df, subcategory)}
        )
        incomplete = pairs.isna().any(axis=1)
        if incomplete.any():
            raise ValueError(
                f"{int(incomplete.sum())} rows have no {category!r} or {subcategory!r} label "
                f"(first at index {list(pairs.index[incomplete][:5])}); drop them first "
                "(fashion_hier.data.read_catalog leaves them out and reports them)"
            )
        rows = pairs.value_counts().rename("rows").reset_index()
        # most rows first, then alphabetical: the first row per subcategory is its parent
        rows = rows.sort_values(["subcategory", "rows", "category"], ascending=[True, False, True])
        parents = dict(rows.drop_duplicates("subcategory")[["subcategory", "category"]].to_numpy())
        per_sub = rows.groupby("subcategory")["category"].transform("size")
        conflicts: dict[str, dict[str, int]] = {}
        for sub, cat, count in rows.loc[per_sub > 1, ["subcategory", "category", "rows"]].to_numpy():
            conflicts.setdefault(sub, {})[cat] = int(count)
        attribute_names = sorted({name for names in row_attributes(df, columns) for name in names})
        return cls(
            sorted(pairs["category"].unique()),
            sorted(pairs["subcategory"].unique()),
            attribute_names,
            parents,
            columns=columns,
            conflicts=conflicts,
        )

    # ---- sizes and tree -------------------------------------------------------------------
    @property
    def num_categories(self) -> int:
        return len(self.categories)

    @property
    def num_subcategories(self) -> int:
        return len(self.subcategories)

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    @property
    def parent_index(self) -> np.ndarray:
        """(S,) int32: the category index of each subcategory."""
        category_index = self._index["category"]
        return np.array([category_index[self.parents[s]] for s in self.subcategories], dtype=np.int32)

    # ---- encoding --------------------------------------------------------------------------
    def unknown_labels(self, df: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Per level, the values of ``df`` this label space does not know, with row counts."""
        unknown: dict[str, dict[str, int]] = {}
        for level, column in (("category", self.columns.category), ("subcategory", self.columns.subcategory)):
            _require_columns(df, [column])
            texts = _level_texts(df, column).fillna(MISSING_LABEL)
            strays = texts[~texts.isin(list(self._index[level]))]
            unknown[level] = {str(k): int(v) for k, v in strays.value_counts().sort_index().items()}
        counts: dict[str, int] = {}
        for names in row_attributes(df, self.columns):
            for name in names:
                if name not in self._index["attributes"]:
                    counts[name] = counts.get(name, 0) + 1
        unknown["attributes"] = dict(sorted(counts.items()))
        return unknown

    def known_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows whose category and subcategory are both known."""
        mask = np.ones(len(df), dtype=bool)
        for level, column in (("category", self.columns.category), ("subcategory", self.columns.subcategory)):
            _require_columns(df, [column])
            mask &= _level_texts(df, column).isin(list(self._index[level])).to_numpy()
        return mask

    def encode(self, df: pd.DataFrame, *, one_hot: bool = False, unknown: str = "raise") -> dict[str, np.ndarray]:
        """Targets for the three levels.

        category/subcategory: int32 (N,), or float32 one-hot (N, C) with ``one_hot=True``;
        attributes: float32 multi-hot (N, A). ``unknown="raise"`` raises listing unknown labels;
        ``unknown="drop"`` removes rows with an unknown category/subcategory (see ``known_rows``),
        ignores unknown attribute values, and warns with counts.
        """
        if unknown not in ("raise", "drop"):
            raise ValueError(f"unknown must be 'raise' or 'drop', got {unknown!r}")
        strays = self.unknown_labels(df)
        if any(strays.values()):
            if unknown == "raise":
                listed = "; ".join(f"{level}: {values}" for level, values in strays.items() if values)
                raise ValueError(
                    f"labels not in the label space — {listed}. Rebuild the label space from data "
                    "that includes them, or pass unknown='drop' to leave those rows/values out"
                )
            known = self.known_rows(df)
            warnings.warn(
                f"encode dropped {int((~known).sum())} of {len(df)} rows with an unknown category or "
                f"subcategory and ignored {sum(strays['attributes'].values())} unknown attribute values "
                f"({ {level: values for level, values in strays.items() if values} })",
                stacklevel=2,
            )
            df = df.loc[known]
        encoded = {
            level: self._class_indices(df, level, column)
            for level, column in (("category", self.columns.category), ("subcategory", self.columns.subcategory))
        }
        if one_hot:
            encoded["category"] = np.eye(self.num_categories, dtype=np.float32)[encoded["category"]]
            encoded["subcategory"] = np.eye(self.num_subcategories, dtype=np.float32)[encoded["subcategory"]]
        encoded["attributes"] = self._multi_hot(row_attributes(df, self.columns))
        return encoded

    def _class_indices(self, df: pd.DataFrame, level: str, column: str) -> np.ndarray:
        return _level_texts(df, column).map(self._index[level]).to_numpy(dtype=np.int32)

    def _multi_hot(self, names_per_row: list[list[str]]) -> np.ndarray:
        index = self._index["attributes"]
        hits = [(row, index[name]) for row, names in enumerate(names_per_row) for name in names if name in index]
        multi_hot = np.zeros((len(names_per_row), self.num_attributes), dtype=np.float32)
        if hits:
            rows, cols = np.array(hits).T
            multi_hot[rows, cols] = 1.0
        return multi_hot

    # ---- decoding --------------------------------------------------------------------------
    def decode_category(self, idx: np.ndarray | Sequence[int]) -> list[str]:
        """Names of category indices (N,), or of the arg-max of scores (N, C)."""
        return self._decode_classes(idx, self.categories, "category")

    def decode_subcategory(self, idx: np.ndarray | Sequence[int]) -> list[str]:
        """Names of subcategory indices (N,), or of the arg-max of scores (N, S)."""
        return self._decode_classes(idx, self.subcategories, "subcategory")

    @staticmethod
    def _decode_classes(idx: np.ndarray | Sequence[int], names: list[str], level: str) -> list[str]:
        values = np.asarray(idx)
        if values.ndim == 2:
            if values.shape[1] != len(names):
                raise ValueError(f"{level} scores have {values.shape[1]} columns, expected {len(names)}")
            values = values.argmax(axis=1)
        if values.ndim != 1:
            raise ValueError(f"{level} indices must be (N,) or scores (N, {len(names)}), got shape {values.shape}")
        if values.size and (values.min() < 0 or values.max() >= len(names)):
            raise ValueError(f"{level} indices must lie in [0, {len(names) - 1}], got {values.min()}..{values.max()}")
        return [names[i] for i in values.astype(int)]

    def decode_attributes(self, scores: np.ndarray, threshold: float | np.ndarray = 0.5) -> list[list[str]]:
        """Names of the attributes scoring at or above ``threshold`` (one value or one per attribute)."""
        scores = np.asarray(scores, dtype=float)
        if scores.ndim != 2 or scores.shape[1] != self.num_attributes:
            raise ValueError(f"attribute scores must have shape (N, {self.num_attributes}), got {scores.shape}")
        threshold = np.asarray(threshold, dtype=float)
        if threshold.ndim not in (0, 1) or (threshold.ndim == 1 and threshold.shape != (self.num_attributes,)):
            raise ValueError(f"threshold must be a number or shape ({self.num_attributes},), got {threshold.shape}")
        chosen = scores >= threshold
        return [[self.attributes[j] for j in np.flatnonzero(row)] for row in chosen]

    # ---- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "columns": {**asdict(self.columns), "attributes": list(self.columns.attributes)},
            "categories": self.categories,
            "subcategories": self.subcategories,
            "attributes": self.attributes,
            "parents": self.parents,
            "conflicts": self.conflicts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelSpace":
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a saved LabelSpace (format {data.get('format')!r}, expected {_FORMAT!r})")
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"LabelSpace format version {data.get('version')} is not supported (expected {_FORMAT_VERSION})")
        return cls(
            data["categories"],
            data["subcategories"],
            data["attributes"],
            data["parents"],
            columns=LabelColumns(**data["columns"]),
            conflicts=data.get("conflicts", {}),
        )

    def save(self, path: str | Path) -> Path:
        """Write the label space as indented UTF-8 JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LabelSpace":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: cannot read a LabelSpace ({error}); write it with LabelSpace.save") from error

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSpace):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"LabelSpace({self.num_categories} categories, {self.num_subcategories} subcategories, "
            f"{self.num_attributes} attributes, {len(self.conflicts)} conflicts)"
        )
