"""A small synthetic product catalogue in the Kaggle *Fashion Product Images* schema.

The embedded default for the demo, the notebooks' quickstart and the tests (nothing can be
downloaded). Each subcategory (``articleType``) is its own drawn silhouette, grouped under
categories (``subCategory``) as in a real catalogue, with uneven (Zipf-like) class sizes. What
the image shows is in the CSV: ``baseColour`` is the object's dominant colour and the extra
``pattern`` column (Solid/Striped/Dotted/Checked) its fill; ``season`` and ``usage`` are tags
drawn from per-subcategory preferences, correlated with the subcategory but not visible, like
real tags. Position, scale, rotation, mirroring, background tone/texture, colour jitter and
blur vary per image. Every image comes from its own seeded generator, so a seed gives the same
bytes, whatever ``n``.

``schema="meesho"`` writes the other catalogue shape, per-category attribute columns with many
empty cells (``synthetic_meesho``); both draw with ``synthetic_products``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.data.synthetic_meesho import make_meesho_catalog
from fashion_hier.data.synthetic_products import (ARTICLES, COLOURS, FIRST_ID, PATTERNS, SEASONS, USAGES, Article,
                                                  assign_articles, check_arguments, class_sizes, draw_product,
                                                  write_jpeg)

__all__ = ["ARTICLES", "Article", "KAGGLE_COLUMNS", "SCHEMAS", "class_sizes", "draw_product", "make_synthetic_catalog"]
KAGGLE_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season",
                  "year", "usage", "productDisplayName")
MAIN_TAG_SHARE = 0.7  # share of an article's rows that carry its typical season (and usage)


def make_synthetic_catalog(out_dir: str | os.PathLike, n: int = 600, image_size: int = 64, seed: int = 0,
                           schema: str = "kaggle") -> Path:
    """Write ``n`` JPEGs to ``out_dir/images/<id>.jpg`` and their labels to ``out_dir/styles.csv``.

    ``schema``: ``"kaggle"`` (the *Fashion Product Images* columns) or ``"meesho"`` (``category``,
    ``subcategory``, per-category ``attr_1..attr_5`` with empty cells, ``tags``; see ``synthetic_meesho``).
    Returns the path of ``styles.csv``. Same ``seed`` and arguments: same bytes.
    """
    if not isinstance(schema, str) or schema not in SCHEMAS:
        raise ValueError(f"schema must be one of {', '.join(map(repr, SCHEMAS))} (the catalogue shape), got {schema!r}")
    return SCHEMAS[schema](out_dir, n, image_size, seed)


def _make_kaggle_catalog(out_dir: str | os.PathLike, n: int, image_size: int, seed: int) -> Path:
    """The Kaggle shape: one row per product with ``KAGGLE_COLUMNS`` and ``pattern``."""
    n, image_size, seed = check_arguments(n, image_size, seed)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    articles = assign_articles(n, seed)
    rows = []
    for row, article_index in enumerate(articles):
        rng = np.random.default_rng([seed, row])
        product_id = FIRST_ID + row
        record = _labels(product_id, ARTICLES[article_index], rng)
        image = draw_product(ARTICLES[article_index], record["baseColour"], record["pattern"], image_size, rng)
        write_jpeg(image, image_dir / f"{product_id}.jpg")
        rows.append(record)
    labels_csv = out_dir / "styles.csv"
    pd.DataFrame(rows, columns=[*KAGGLE_COLUMNS, "pattern"]).to_csv(labels_csv, index=False)
    return labels_csv


SCHEMAS = {"kaggle": _make_kaggle_catalog, "meesho": make_meesho_catalog}  # schema name -> catalogue writer


def _preferred(values: tuple[str, ...], main: str, rng: np.random.Generator) -> str:
    """``main`` with probability MAIN_TAG_SHARE, else one of the other values uniformly."""
    if rng.random() < MAIN_TAG_SHARE:
        return main
    others = [value for value in values if value != main]
    return others[rng.integers(len(others))]


def _labels(product_id: int, article: Article, rng: np.random.Generator) -> dict:
    """The CSV row of one product."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    gender = article.gender if article.gender != "Unisex" else ("Men", "Women", "Unisex")[rng.integers(3)]
    return {
        "id": product_id, "gender": gender, "masterCategory": article.master, "subCategory": article.category,
        "articleType": article.name, "baseColour": colour,
        "season": _preferred(SEASONS, article.season, rng), "year": int(rng.integers(2011, 2019)),
        "usage": _preferred(USAGES, article.usage, rng),
        "productDisplayName": f"Synthetic {gender} {colour} {pattern} {article.name}", "pattern": pattern,
    }
