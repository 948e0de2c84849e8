"""The label space: class names per level, the category -> subcategory tree, attribute names.

Built once from training data, saved as JSON beside every model, and used to turn catalogue
rows into model targets (``encode``) and model outputs back into names (``decode_*``).
Only numpy and pandas here: no TensorFlow, so reading labels stays cheap.

The attribute level comes in two shapes. The paper's **flat tag set** (``LabelColumns.attributes``):
the values of the listed columns become one set of sigmoid labels, an empty cell meaning "none of
them". Or a shop's **attribute columns** (``LabelColumns.groups``, from 0.3): each column is a group,
``single`` (one value per product, a softmax over its values) or ``multi`` (a delimited list,
sigmoids); an empty cell is *unknown*, never "no", and a group applies to some categories only.
Both lay their values side by side on one attribute axis; each group is a slice of it
(``LabelSpace.groups``), and a target of ``UNKNOWN`` (-1) marks the entries no loss or metric counts.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from fashion_hier.atomic import atomic_write_text
from fashion_hier.jsonio import to_json_data

LEVELS = ("category", "subcategory", "attributes")
GROUP_KINDS = ("single", "multi")
UNKNOWN = -1.0  # an attribute target nobody knows: an empty cell, or a group that does not apply to the row
DEFAULT_MIN_KNOWN_SHARE = 0.1  # a group applies to a category when this share of its training rows has a value
IMAGE_PATH = "image_path"  # the column naming each row's photo: catalogue frames, split files, predictions
RESERVED_GROUP_NAMES = (IMAGE_PATH, "category", "category_score", "subcategory", "subcategory_score", "attributes",
                        "attribute_scores", "needs_review", "error", "id")  # the prediction table's other columns

MISSING_LABEL = "<missing>"  # how a missing category/subcategory is named in unknown-label reports
_FORMAT = "fashion_hier.LabelSpace"
_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # 1: 0.1/0.2 label spaces (flat attributes only)


def check_layout(layout: Sequence[Sequence]) -> tuple[tuple[str, int], ...]:
    """``layout`` as ``((kind, size), ...)``, each kind ``single``/``multi`` and size >= 1."""
    checked = []
    for entry in layout:
        kind, size = entry
        if kind not in GROUP_KINDS or isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"attribute_layout entries must be (kind, size) with kind in "
                             f"{GROUP_KINDS} and size >= 1, got {tuple(entry)!r}")
        checked.append((str(kind), int(size)))
    if not checked:
        raise ValueError("attribute_layout must name at least one group")
    return tuple(checked)


def group_counts(y_attributes) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute value: rows where it is present, and rows where it is known (target 0 or 1, not -1)."""
    y = np.asarray(y_attributes)
    if y.ndim != 2 or not np.isin(y, (-1, 0, 1)).all():
        raise ValueError(f"attribute targets must be (samples, values) holding -1 (unknown), 0 and 1, "
                         f"got shape {y.shape}")
    return (y == 1).sum(axis=0).astype(np.int64), (y >= 0).sum(axis=0).astype(np.int64)


@dataclass(frozen=True)
class AttributeGroup:
    """One attribute column of a catalogue, as configured (``data.columns.groups`` in YAML).

    ``kind``: ``single`` (one value per product) or ``multi`` (a ``separator``-delimited list).
    ``column``: the CSV column (default: ``name``). ``applies_to``: the categories the group applies
    to; ``None`` learns them from the training rows (``LabelColumns.min_known_share``).
    """

    name: str
    kind: Literal["single", "multi"] = "single"
    column: str | None = None
    separator: str | None = None
    applies_to: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"attribute group name must be a non-empty string, got {self.name!r}")
        if self.name in RESERVED_GROUP_NAMES:
            raise ValueError(f"attribute group name {self.name!r} is taken by a prediction column; rename the "
                             f"group (reserved: {', '.join(RESERVED_GROUP_NAMES)})")
        if self.kind not in GROUP_KINDS:
            raise ValueError(f"attribute group {self.name!r}: kind must be one of {GROUP_KINDS}, got {self.kind!r}")
        if self.separator == "" or (self.kind == "multi") != (self.separator is not None):
            raise ValueError(f"attribute group {self.name!r}: a 'multi' group needs a non-empty separator "
                             f"(e.g. '|') and a 'single' group takes none; got kind {self.kind!r}, "
                             f"separator {self.separator!r}")
        if self.applies_to is not None:
            applies_to = (self.applies_to,) if isinstance(self.applies_to, str) else tuple(self.applies_to)
            object.__setattr__(self, "applies_to", applies_to)

    @property
    def source(self) -> str:
        """The CSV column the group reads."""
        return self.column or self.name


@dataclass(frozen=True)
class GroupSlice:
    """A learned attribute group: its values, where they sit on the attribute axis, where it applies.

    ``values_by_category``: per category it applies to, the values its training rows had there (a column
    whose meaning depends on the category, like Meesho's ``attr_2``, then never answers another category's
    value); None allows every value everywhere it applies.
    """

    name: str
    kind: str
    values: tuple[str, ...]
    start: int
    applies_to: tuple[str, ...]
    values_by_category: dict[str, tuple[str, ...]] | None = None

    @property
    def stop(self) -> int:
        return self.start + len(self.values)

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class LabelColumns:
    """Which CSV columns feed each level.

    The flat tag set (the paper's): ``attributes`` lists columns whose values are attribute names;
    with ``attribute_separator`` set, each of those columns holds a delimited list (``"Summer|Casual"``).
    Attribute columns (0.3): ``groups``, one ``AttributeGroup`` per column; ``attributes`` must then be
    empty (it defaults to ``()`` with groups and to ``("season", "usage")`` without).
    ``missing_values``: cell texts that mean "not entered" besides empty and NaN (e.g. ``NA``, ``dummy``).
    ``min_known_share``: a group applies to a category when at least this share of the category's
    training rows has a value (groups without ``applies_to``).
    """

    category: str = "subCategory"
    subcategory: str = "articleType"
    attributes: tuple[str, ...] | None = None
    attribute_separator: str | None = None
    groups: tuple[AttributeGroup, ...] = ()
    missing_values: tuple[str, ...] = ()
    min_known_share: float = DEFAULT_MIN_KNOWN_SHARE

    def __post_init__(self) -> None:
        groups = tuple(AttributeGroup(**g) if isinstance(g, dict) else g for g in self.groups)
        object.__setattr__(self, "groups", groups)
        if self.attributes is None:
            attributes: tuple[str, ...] = () if groups else ("season", "usage")
        else:
            attributes = (self.attributes,) if isinstance(self.attributes, str) else tuple(self.attributes)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "missing_values", tuple(str(v).strip() for v in self.missing_values))
        if self.attribute_separator == "":
            raise ValueError("attribute_separator must be a non-empty string or None")
        if groups and attributes:
            raise ValueError(f"columns.attributes {list(attributes)} (the flat tag set) and columns.groups "
                             "(attribute columns) are two shapes of the attribute level; give one of them "
                             "(attributes: [] with groups)")
        names = [g.name for g in groups]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns.groups: group names must be unique; repeated: {repeated}")
        clashes = sorted(n for n in names if f"{n}_score" in names)
        if clashes:
            raise ValueError(f"columns.groups: {[f'{n}_score' for n in clashes]} would be both a group and the score "
                             f"column of group {clashes}; rename one")
        if not 0 < float(self.min_known_share) <= 1:
            raise ValueError(f"columns.min_known_share must lie in (0, 1], got {self.min_known_share!r}")

    @property
    def required(self) -> tuple[str, str]:
        """Columns every usable row needs a value in."""
        return (self.category, self.subcategory)

    @property
    def attribute_sources(self) -> tuple[str, ...]:
        """The columns the attribute level reads (each once)."""
        return tuple(dict.fromkeys([*self.attributes, *(g.source for g in self.groups)]))

    @property
    def all(self) -> tuple[str, ...]:
        """Every column the label space reads, required ones first."""
        return (*self.required, *self.attribute_sources)

    def cell_text(self, value: Any) -> str | None:
        """One attribute cell as text, None when missing (empty, NaN or one of ``missing_values``)."""
        text = label_text(value)
        return None if text is None or text in self.missing_values else text


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
            text = columns.cell_text(value)
            if text is None:
                continue
            parts = text.split(columns.attribute_separator) if columns.attribute_separator else [text]
            for part in (p.strip() for p in parts):
                if part and part not in names and part not in columns.missing_values:
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


def group_cell_values(columns: LabelColumns, group: AttributeGroup, value: Any) -> list[str]:
    """The values one cell of ``group``'s column holds: [] when missing, one for ``single``, a list for ``multi``."""
    text = columns.cell_text(value)
    if text is None:
        return []
    if group.kind == "single":
        return [text]
    parts = (part.strip() for part in text.split(group.separator))
    return list(dict.fromkeys(part for part in parts if part and part not in columns.missing_values))


def _learn_group(df: pd.DataFrame, columns: LabelColumns, group: AttributeGroup,
                 row_categories: pd.Series) -> dict[str, Any]:
    """A group's values and the categories it applies to (declared, or learned from the share of rows with a value)."""
    cells = [group_cell_values(columns, group, value) for value in df[group.source].tolist()]
    categories = sorted(row_categories.unique())
    if group.applies_to is None:
        share = pd.Series([bool(c) for c in cells], index=row_categories.index).groupby(row_categories).mean()
        applies_to = [c for c in categories if share[c] >= columns.min_known_share]
    else:
        absent = sorted(set(group.applies_to) - set(categories))
        if absent:
            warnings.warn(f"attribute group {group.name!r}: applies_to names categories with no training row "
                          f"{absent}; they are left out", stacklevel=3)
        applies_to = [c for c in categories if c in set(group.applies_to)]
    in_scope = row_categories.isin(applies_to).to_numpy()
    values = sorted({v for cell, ok in zip(cells, in_scope) if ok for v in cell})
    seen: dict[str, set[str]] = {category: set() for category in applies_to}
    for cell, category, ok in zip(cells, row_categories.tolist(), in_scope):
        if ok:
            seen[category].update(cell)
    if not values:
        raise ValueError(f"attribute group {group.name!r}: column {group.source!r} has no value in the training rows "
                         f"of the categories it applies to ({applies_to or 'none'}); check the column, "
                         f"missing_values and min_known_share ({columns.min_known_share})")
    return {"name": group.name, "kind": group.kind, "values": values, "applies_to": applies_to,
            "values_by_category": {category: sorted(seen[category]) or values for category in applies_to}}


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
        groups: Sequence[GroupSlice | dict] | None = None,
    ) -> None:
        """``groups`` (attribute columns only): per ``columns.groups`` entry its learned ``values`` and
        ``applies_to``; the attribute names are then ``"group=value"`` and ``attributes`` may be empty."""
        self.categories = list(categories)
        self.subcategories = list(subcategories)
        self.parents = {sub: parents[sub] for sub in self.subcategories if sub in parents}
        self.columns = columns
        self.conflicts = {sub: dict(rows) for sub, rows in (conflicts or {}).items()}
        if columns.groups:
            self.groups = self._group_slices(groups)
            self.attributes = [f"{g.name}={v}" for g in self.groups for v in g.values]
            if attributes and list(attributes) != self.attributes:
                raise ValueError("attributes must be empty or the groups' 'group=value' names, in order")
        else:
            if groups:
                raise ValueError("groups given but columns.groups is empty; pass the LabelColumns they come from")
            self.attributes = list(attributes)
            self.groups = (GroupSlice("attributes", "multi", tuple(self.attributes), 0, tuple(self.categories)),)
        self._check()
        self._index = {
            "category": {name: i for i, name in enumerate(self.categories)},
            "subcategory": {name: i for i, name in enumerate(self.subcategories)},
            "attributes": {name: i for i, name in enumerate(self.attributes)},
        }

    def _group_slices(self, groups: Sequence[GroupSlice | dict] | None) -> tuple[GroupSlice, ...]:
        """The learned groups, checked against ``columns.groups``, laid side by side on the attribute axis."""
        entries = [g if isinstance(g, dict) else {"name": g.name, "kind": g.kind, "values": g.values,
                                                   "applies_to": g.applies_to,
                                                   "values_by_category": g.values_by_category} for g in (groups or ())]
        expected = [(g.name, g.kind) for g in self.columns.groups]
        if [(e.get("name"), e.get("kind")) for e in entries] != expected:
            raise ValueError(f"groups {[(e.get('name'), e.get('kind')) for e in entries]} do not match "
                             f"columns.groups {expected} (name, kind), in order")
        slices, start = [], 0
        for entry in entries:
            values, applies_to = tuple(entry["values"]), tuple(entry["applies_to"])
            if not values or len(set(values)) != len(values):
                raise ValueError(f"attribute group {entry['name']!r}: values must be non-empty and unique")
            strangers = sorted(set(applies_to) - set(self.categories))
            if strangers:
                raise ValueError(f"attribute group {entry['name']!r} applies to unknown categories {strangers}")
            by_category = entry.get("values_by_category")
            if by_category is not None:
                by_category = {c: tuple(by_category.get(c, values)) for c in applies_to}
                unknown = sorted({v for vs in by_category.values() for v in vs} - set(values))
                if unknown:
                    raise ValueError(f"attribute group {entry['name']!r}: values_by_category names unknown values {unknown}")
            slices.append(GroupSlice(entry["name"], entry["kind"], values, start, applies_to, by_category))
            start += len(values)
        return tuple(slices)

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
        attributes: str | Sequence[str] | None = None,
        attribute_separator: str | None = None,
        groups: Sequence[AttributeGroup | dict] = (),
        missing_values: Sequence[str] = (),
        min_known_share: float = DEFAULT_MIN_KNOWN_SHARE,
    ) -> "LabelSpace":
        """Every label seen in ``df``, in sorted order, and the tree between the two levels.

        The arguments are ``LabelColumns``' fields (``from_columns`` takes the object). A subcategory
        seen under several categories is recorded in ``conflicts`` and given the category with the most
        rows as its parent (ties: alphabetically first). Attribute groups learn their values and the
        categories they apply to from the rows.
        """
        columns = LabelColumns(category, subcategory, attributes, attribute_separator, tuple(groups),
                               tuple(missing_values), min_known_share)
        return cls.from_columns(df, columns)

    @classmethod
    def from_columns(cls, df: pd.DataFrame, columns: LabelColumns) -> "LabelSpace":
        """``from_frame`` with the columns as one ``LabelColumns``."""
        category, subcategory = columns.category, columns.subcategory
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
        if columns.groups:
            attribute_names: list[str] = []
            groups = [_learn_group(df, columns, group, pairs["category"]) for group in columns.groups]
        else:
            attribute_names = sorted({name for names in row_attributes(df, columns) for name in names})
            groups = None
        return cls(
            sorted(pairs["category"].unique()),
            sorted(pairs["subcategory"].unique()),
            attribute_names,
            parents,
            columns=columns,
            conflicts=conflicts,
            groups=groups,
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
    def grouped(self) -> bool:
        """True for attribute columns (``columns.groups``), False for the paper's flat tag set."""
        return bool(self.columns.groups)

    def group(self, name: str) -> GroupSlice:
        """The attribute group called ``name``."""
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"no attribute group {name!r}; groups: {[g.name for g in self.groups]}")

    @property
    def attribute_layout(self) -> tuple[tuple[str, int], ...] | None:
        """``(kind, size)`` per group for the model's attribute output; None for the flat tag set (all sigmoid)."""
        return tuple((g.kind, len(g.values)) for g in self.groups) if self.grouped else None

    def value_mask(self) -> np.ndarray:
        """(C, A) bool: the attribute values each category can be answered (its groups' values seen with it)."""
        if not self.grouped:
            return np.ones((self.num_categories, self.num_attributes), dtype=bool)
        mask = np.zeros((self.num_categories, self.num_attributes), dtype=bool)
        for group in self.groups:
            index = {value: group.start + i for i, value in enumerate(group.values)}
            for category in group.applies_to:
                allowed = group.values if group.values_by_category is None else group.values_by_category[category]
                mask[self._index["category"][category], [index[v] for v in allowed]] = True
        return mask

    def applicability(self) -> np.ndarray:
        """(C, G) bool: whether each group applies to each category."""
        matrix = np.zeros((self.num_categories, len(self.groups)), dtype=bool)
        for j, group in enumerate(self.groups):
            matrix[[self._index["category"][c] for c in group.applies_to], j] = True
        return matrix

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
        for names in self._attribute_names(df):
            for name in names:
                if name not in self._index["attributes"]:
                    counts[name] = counts.get(name, 0) + 1
        unknown["attributes"] = dict(sorted(counts.items()))
        return unknown

    def _attribute_names(self, df: pd.DataFrame) -> list[list[str]]:
        """Per row, the attribute names its cells hold (``group=value`` for attribute columns)."""
        if not self.grouped:
            return row_attributes(df, self.columns)
        _require_columns(df, self.columns.attribute_sources)
        per_row: list[list[str]] = [[] for _ in range(len(df))]
        for config in self.columns.groups:
            for names, value in zip(per_row, df[config.source].tolist()):
                names += [f"{config.name}={v}" for v in group_cell_values(self.columns, config, value)]
        return per_row

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
        attributes: float32 (N, A), multi-hot for the flat tag set; for attribute columns each group's
        slice is one-hot (``single``) or multi-hot (``multi``), or all ``UNKNOWN`` (-1) where the cell is
        missing (or a single value unseen) or the group does not apply to the row's category.
        ``unknown="raise"`` raises listing unknown labels;
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
        encoded["attributes"] = (self._group_targets(df) if self.grouped
                                 else self._multi_hot(row_attributes(df, self.columns)))
        return encoded

    def _group_targets(self, df: pd.DataFrame) -> np.ndarray:
        targets = np.zeros((len(df), self.num_attributes), dtype=np.float32)
        categories = _level_texts(df, self.columns.category).tolist()
        for config, group in zip(self.columns.groups, self.groups):
            block = targets[:, group.slice]
            index = {value: i for i, value in enumerate(group.values)}
            applies = set(group.applies_to)
            for row, (value, category) in enumerate(zip(df[config.source].tolist(), categories)):
                names = group_cell_values(self.columns, config, value)
                known = [index[name] for name in names if name in index]
                if category not in applies or not names or (group.kind == "single" and not known):
                    block[row] = UNKNOWN
                else:
                    block[row, known] = 1.0
        return targets

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
        data = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "columns": to_json_data(asdict(self.columns)),
            "categories": self.categories,
            "subcategories": self.subcategories,
            "attributes": self.attributes,
            "parents": self.parents,
            "conflicts": self.conflicts,
        }
        if self.grouped:
            data["groups"] = [{"name": g.name, "kind": g.kind, "values": list(g.values),
                               "applies_to": list(g.applies_to),
                               "values_by_category": None if g.values_by_category is None else
                               {c: list(vs) for c, vs in g.values_by_category.items()}} for g in self.groups]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelSpace":
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a saved LabelSpace (format {data.get('format')!r}, expected {_FORMAT!r})")
        if data.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"LabelSpace format version {data.get('version')} is not supported "
                             f"(this library reads {list(_READABLE_VERSIONS)})")
        columns = LabelColumns(**{**data["columns"], "groups": tuple(data["columns"].get("groups", ()))})
        return cls(
            data["categories"],
            data["subcategories"],
            [] if columns.groups else data["attributes"],
            data["parents"],
            columns=columns,
            conflicts=data.get("conflicts", {}),
            groups=data.get("groups"),
        )

    def save(self, path: str | Path) -> Path:
        """Write the label space as indented UTF-8 JSON; returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
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
        groups = (f" in {len(self.groups)} groups ({', '.join(f'{g.name}: {g.kind}' for g in self.groups)})"
                  if self.grouped else "")
        return (
            f"LabelSpace({self.num_categories} categories, {self.num_subcategories} subcategories, "
            f"{self.num_attributes} attributes{groups}, {len(self.conflicts)} conflicts)"
        )
