"""A small synthetic catalogue shaped like the Meesho *Visual Taxonomy* challenge (2024).

Per-category attribute columns ``attr_1..attr_5`` whose meaning depends on the row's category
(``attr_2`` is the pattern of a top, the fit of a bottom, the sole of a shoe, the size of a bag),
many empty cells, and a multi-valued ``tags`` column. It exists to measure what such catalogues
need: whether an empty cell is better read as *unknown* than as *no*, and whether focal loss or
weighting helps the rare values (each attribute has some on purpose).

Every attribute is drawn so a model can learn it (colour, pattern fill, sleeves, a cropped hem,
width, size, a near-white sole, waistband or hem band). Within the categories an attribute applies
to, a seeded 35-55% of its cells are blank; the image still shows the true value, as when a seller
never entered it. Cells of an attribute that does not apply to the category are always blank.
The subcategories are the Kaggle shape's silhouettes of Topwear, Bottomwear, Shoes and Bags, with
the same uneven class sizes; every image comes from its own seeded generator.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.data.synthetic_products import (ARTICLES, COLOURS, FIRST_ID, PATTERNS, SEASONS, USAGES, Article,
                                                  assign_articles, check_arguments, draw_product, write_jpeg)

__all__ = ["ATTRIBUTE_COLUMNS", "MEESHO_ARTICLES", "MEESHO_COLUMNS", "TAG_SEPARATOR", "make_meesho_catalog",
           "meesho_attribute_map", "meesho_attribute_values", "meesho_empty_shares"]
ATTRIBUTE_COLUMNS = tuple(f"attr_{k}" for k in range(1, 6))
TAG_SEPARATOR = "|"
MEESHO_COLUMNS = ("id", "category", "subcategory", *ATTRIBUTE_COLUMNS, "tags")
EMPTY_SHARE_RANGE = (0.35, 0.55)  # inside a real catalogue's 30-60%, away from its ends so that every
                                  # (category, attribute) pair's realised share stays in that band at n ~ 600
_EMPTY_SHARE_STREAM = 2**32 - 1   # generator key [seed, this]: apart from the per-row keys [seed, row]

# How each attribute value is drawn (unit coordinates of synthetic_products.ARTICLES: x right, y down).
TORSO_HALF_WIDTH = 0.42           # a top with its own sleeves cut off at |x| <= this
SLEEVES = {                       # sleeve_length -> the right sleeve (mirrored for the left one)
    "Short Sleeves": [(0.3, -0.78), (0.45, -0.8), (0.85, -0.45), (0.65, -0.15), (0.3, -0.3)],
    "Long Sleeves": [(0.3, -0.8), (0.55, -0.75), (0.9, 0.6), (0.7, 0.65), (0.4, -0.2), (0.3, -0.3)],
    "Sleeveless": [],
}
LENGTHS = {"Regular": 1.0, "Cropped": 0.5}             # length -> factor on the part below the chest (y > 0)
FITS = {"Regular": 1.0, "Slim": 0.7, "Wide": 1.3}      # fit -> width factor
SIZES = {"Medium": 0.75, "Small": 0.55, "Large": 1.0}  # size -> scale; apart from the drawing's own 0.32-0.44 jitter
TRIMS = ("Matching", "White")                          # sole / waistband / hem: "White" paints a near-white band
BAND_DEPTH = 0.15                                      # a waistband's or hem's height
SOLE_LINE = {"Casual Shoes": 0.24, "Heels": 0.3, "Boots": 0.52}  # a shoe's sole is its outline below this y
TAG_COUNT_SHARES = (0.15, 0.4, 0.3, 0.15)              # share of rows with 0, 1, 2, 3 tags
PREFERRED_TAG_WEIGHT = 4.0                             # an article's own season and usage, against 1 for the others


@dataclass(frozen=True)
class MeeshoAttribute:
    """One attribute column of one category: what it means, its values and how often each is true."""

    column: str
    meaning: str
    values: tuple[str, ...]
    shares: tuple[float, ...]  # share of the category's products with each value (some rare on purpose)

    def __post_init__(self) -> None:
        if len(self.values) != len(self.shares) or not np.isclose(sum(self.shares), 1.0):
            raise ValueError(f"{self.meaning}: {len(self.shares)} shares {self.shares} for {len(self.values)} values "
                             f"{self.values}; give one share per value, summing to 1")


def _attribute(column: str, meaning: str, values, shares: tuple[float, ...]) -> MeeshoAttribute:
    return MeeshoAttribute(column, meaning, tuple(values), shares)


_COLOUR_SHARES = (0.25, 0.25, 0.2, 0.15, 0.11, 0.04)  # of COLOURS: Black ... Purple (rare)
ATTRIBUTES = {  # category -> its attribute columns; a column not listed does not apply to the category
    "Topwear": (
        _attribute("attr_1", "colour", COLOURS, _COLOUR_SHARES),
        _attribute("attr_2", "pattern", PATTERNS, (0.5, 0.25, 0.2, 0.05)),
        _attribute("attr_3", "sleeve_length", SLEEVES, (0.56, 0.38, 0.06)),
        _attribute("attr_4", "length", LENGTHS, (0.85, 0.15)),
        _attribute("attr_5", "hem", TRIMS, (0.9, 0.1)),
    ),
    "Bottomwear": (
        _attribute("attr_1", "colour", COLOURS, _COLOUR_SHARES),
        _attribute("attr_2", "fit", FITS, (0.6, 0.32, 0.08)),
        _attribute("attr_3", "pattern", ("Solid", "Checked", "Striped"), (0.7, 0.2, 0.1)),
        _attribute("attr_4", "waistband", TRIMS, (0.75, 0.25)),
    ),
    "Shoes": (
        _attribute("attr_1", "colour", COLOURS, _COLOUR_SHARES),
        _attribute("attr_2", "sole", TRIMS, (0.6, 0.4)),
    ),
    "Bags": (
        _attribute("attr_1", "colour", COLOURS, _COLOUR_SHARES),
        _attribute("attr_2", "size", SIZES, (0.5, 0.44, 0.06)),
        _attribute("attr_3", "pattern", PATTERNS, (0.6, 0.2, 0.15, 0.05)),
    ),
}
MEESHO_ARTICLES = tuple(article for article in ARTICLES if article.category in ATTRIBUTES)  # Zipf rank order
TAGS = (*SEASONS, *USAGES)


def meesho_attribute_map() -> dict[str, dict[str, str]]:
    """``{category: {attr column: meaning}}``, only the columns that apply to the category.

    >>> meesho_attribute_map()["Shoes"]
    {'attr_1': 'colour', 'attr_2': 'sole'}
    """
    return {category: {a.column: a.meaning for a in attributes} for category, attributes in ATTRIBUTES.items()}


def meesho_attribute_values() -> dict[str, dict[str, tuple[str, ...]]]:
    """``{category: {attr column: its values}}``, most common first, only the columns that apply."""
    return {category: {a.column: a.values for a in attributes} for category, attributes in ATTRIBUTES.items()}


def meesho_empty_shares(seed: int = 0) -> dict[str, dict[str, float]]:
    """``{category: {attr column: chance its cell is blank}}`` for ``seed``, drawn in ``EMPTY_SHARE_RANGE``."""
    rng = np.random.default_rng([seed, _EMPTY_SHARE_STREAM])
    return {category: {a.column: float(rng.uniform(*EMPTY_SHARE_RANGE)) for a in attributes}
            for category, attributes in ATTRIBUTES.items()}


def make_meesho_catalog(out_dir: str | os.PathLike, n: int = 600, image_size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` JPEGs to ``out_dir/images/<id>.jpg`` and their labels (``MEESHO_COLUMNS``) to ``out_dir/styles.csv``.

    ``make_synthetic_catalog(..., schema="meesho")`` calls this. Returns the path of ``styles.csv``.
    Same ``seed`` and arguments: same bytes.
    """
    n, image_size, seed = check_arguments(n, image_size, seed, MEESHO_ARTICLES)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    empty_shares = meesho_empty_shares(seed)
    rows = []
    for row, article_index in enumerate(assign_articles(n, seed, len(MEESHO_ARTICLES))):
        rng = np.random.default_rng([seed, row])
        article = MEESHO_ARTICLES[article_index]
        truth = _true_values(article, rng)
        record = {"id": FIRST_ID + row, "category": article.category, "subcategory": article.name,
                  **_cells(article.category, truth, empty_shares[article.category], rng), "tags": _tags(article, rng)}
        drawn, trim = _styled(article, truth)
        image = draw_product(drawn, truth["colour"], truth.get("pattern", "Solid"), image_size, rng, trim)
        write_jpeg(image, image_dir / f"{record['id']}.jpg")
        rows.append(record)
    labels_csv = out_dir / "styles.csv"
    pd.DataFrame(rows, columns=list(MEESHO_COLUMNS)).to_csv(labels_csv, index=False)
    return labels_csv


def _true_values(article: Article, rng: np.random.Generator) -> dict[str, str]:
    """``{meaning: value}`` of one product, each value drawn with its share."""
    return {a.meaning: a.values[rng.choice(len(a.values), p=np.asarray(a.shares) / sum(a.shares))]
            for a in ATTRIBUTES[article.category]}


def _cells(category: str, truth: dict[str, str], empty_shares: dict[str, float],
           rng: np.random.Generator) -> dict[str, str | None]:
    """The ``attr_*`` cells: the true value, or blank (never entered, or the column does not apply)."""
    cells: dict[str, str | None] = dict.fromkeys(ATTRIBUTE_COLUMNS)
    for attribute in ATTRIBUTES[category]:
        if rng.random() >= empty_shares[attribute.column]:
            cells[attribute.column] = truth[attribute.meaning]
    return cells


def _tags(article: Article, rng: np.random.Generator) -> str:
    """0-3 tags ``|``-joined, favouring the article's season and usage (correlated with it, not visible)."""
    count = rng.choice(len(TAG_COUNT_SHARES), p=TAG_COUNT_SHARES)
    weights = np.array([PREFERRED_TAG_WEIGHT if tag in (article.season, article.usage) else 1.0 for tag in TAGS])
    chosen = rng.choice(len(TAGS), size=count, replace=False, p=weights / weights.sum())
    return TAG_SEPARATOR.join(TAGS[i] for i in sorted(chosen))


# ---- drawing the attributes ------------------------------------------------------------------

def _styled(article: Article, truth: dict[str, str]) -> tuple[Article, list[np.ndarray]]:
    """The article with the shape its attributes give it, and the near-white trim polygons to paint on it."""
    body = [np.asarray(polygon, float) for polygon in article.shapes]
    sleeve = None
    if "sleeve_length" in truth:  # the silhouette's own sleeves give way to the drawn ones
        body = _clipped(_clipped(body, 0, TORSO_HALF_WIDTH, keep="below"), 0, -TORSO_HALF_WIDTH, keep="above")
        sleeve = np.asarray(SLEEVES[truth["sleeve_length"]], float).reshape(-1, 2)
    if "length" in truth:
        body = [_stretch_below_chest(polygon, LENGTHS[truth["length"]]) for polygon in body]
    trim: list[np.ndarray] = []
    if truth.get("hem") == "White":
        trim += _clipped(body, 1, _extent(body, 1)[1] - BAND_DEPTH, keep="above")
    if truth.get("waistband") == "White":
        trim += _clipped(body, 1, _extent(body, 1)[0] + BAND_DEPTH, keep="below")
    if truth.get("sole") == "White":
        trim += _clipped(body, 1, SOLE_LINE[article.name], keep="above")
    shapes = body if sleeve is None or not len(sleeve) else [*body, sleeve, sleeve * [-1.0, 1.0]]
    scale = SIZES[truth.get("size", "Large")] * np.array([FITS[truth.get("fit", "Regular")], 1.0])
    return replace(article, shapes=tuple(shape * scale for shape in shapes)), [polygon * scale for polygon in trim]


def _stretch_below_chest(polygon: np.ndarray, factor: float) -> np.ndarray:
    """``polygon`` with every y > 0 multiplied by ``factor`` (a cropped top's shorter body)."""
    return np.column_stack([polygon[:, 0], np.where(polygon[:, 1] > 0, polygon[:, 1] * factor, polygon[:, 1])])


def _extent(polygons: list[np.ndarray], axis: int) -> tuple[float, float]:
    coordinates = np.concatenate([polygon[:, axis] for polygon in polygons])
    return float(coordinates.min()), float(coordinates.max())


def _clipped(polygons: list[np.ndarray], axis: int, bound: float, keep: str) -> list[np.ndarray]:
    """The parts of ``polygons`` with coordinate ``axis`` above (or below) ``bound`` (Sutherland-Hodgman, one edge).

    A concave polygon cut into pieces stays one polygon joined along the cut line, which fills the same pixels.
    """
    sign = 1.0 if keep == "above" else -1.0
    pieces = []
    for polygon in polygons:
        inside = sign * (polygon[:, axis] - bound) >= 0
        points = []
        for start, end, start_in, end_in in zip(polygon, np.roll(polygon, -1, axis=0), inside, np.roll(inside, -1)):
            if start_in:
                points.append(start)
            if start_in != end_in:
                t = (bound - start[axis]) / (end[axis] - start[axis])
                points.append(start + t * (end - start))
        if len(points) >= 3:
            pieces.append(np.array(points))
    return pieces
