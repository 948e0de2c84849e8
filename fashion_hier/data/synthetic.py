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
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

KAGGLE_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season",
                  "year", "usage", "productDisplayName")
FIRST_ID = 10000
JPEG_QUALITY = 90
ZIPF_EXPONENT = 0.8  # class size of the k-th most common subcategory is proportional to k**-0.8

COLOURS = {  # baseColour -> RGB of the object's main fill
    "Black": (25, 25, 25),
    "Blue": (30, 60, 200),
    "Red": (200, 30, 30),
    "Green": (30, 150, 50),
    "Yellow": (230, 200, 30),
    "Purple": (120, 40, 150),
}
PATTERN_COLOUR = (245, 245, 245)  # stripes, dots and checks are near-white, so baseColour stays dominant
PATTERNS = ("Solid", "Striped", "Dotted", "Checked")
SEASONS = ("Spring", "Summer", "Fall", "Winter")
USAGES = ("Casual", "Formal", "Sports", "Party")
BACKGROUND_LEVELS = (110.0, 180.0)  # grey/beige backgrounds stay apart from every object colour and white


@dataclass(frozen=True)
class Article:
    """One subcategory: where it sits in the tree, its silhouette and its typical tags."""

    name: str                    # articleType
    category: str                # subCategory
    master: str                  # masterCategory
    shapes: tuple                # polygons in unit coordinates (x right, y down, within [-1, 1])
    season: str                  # the season most of its rows carry
    usage: str                   # the usage most of its rows carry
    gender: str = "Unisex"


def _arc(center, axes, start, end) -> list[tuple[float, float]]:
    """Points of an elliptic arc (degrees, clockwise from +x as in OpenCV) in unit coordinates."""
    angles = np.deg2rad(np.linspace(start, end, 24))
    return list(zip(center[0] + axes[0] * np.cos(angles), center[1] + axes[1] * np.sin(angles)))


# Ordered from most to least common (the Zipf rank), as in the Kaggle catalogue.
ARTICLES = (
    Article("Tshirts", "Topwear", "Apparel",
            ([(-0.35, -0.75), (-0.12, -0.75), (0, -0.62), (0.12, -0.75), (0.35, -0.75), (0.85, -0.45), (0.65, -0.15),
              (0.4, -0.3), (0.4, 0.8), (-0.4, 0.8), (-0.4, -0.3), (-0.65, -0.15), (-0.85, -0.45)],),
            "Summer", "Casual"),
    Article("Shirts", "Topwear", "Apparel",
            ([(-0.3, -0.85), (0, -0.55), (0.3, -0.85), (0.6, -0.7), (0.9, 0.6), (0.7, 0.65), (0.45, -0.2),
              (0.45, 0.85), (-0.45, 0.85), (-0.45, -0.2), (-0.7, 0.65), (-0.9, 0.6), (-0.6, -0.7)],),
            "Fall", "Formal", "Men"),
    Article("Casual Shoes", "Shoes", "Footwear",
            ([(-0.85, 0.05), (-0.3, 0.0), (0.0, -0.35), (0.45, -0.4), (0.55, -0.05), (0.85, 0.15), (0.85, 0.4),
              (-0.85, 0.4)],),
            "Summer", "Casual"),
    Article("Handbags", "Bags", "Accessories",
            ([(-0.6, -0.1), (0.6, -0.1), (0.85, 0.75), (-0.85, 0.75)],
             _arc((0, -0.1), (0.45, 0.6), 180, 360) + _arc((0, -0.1), (0.3, 0.45), 360, 180)),
            "Fall", "Casual", "Women"),
    Article("Tops", "Topwear", "Apparel",
            ([(-0.35, -0.85), (-0.22, -0.85), (-0.15, -0.45), (0.15, -0.45), (0.22, -0.85), (0.35, -0.85),
              (0.5, -0.25), (0.45, 0.85), (-0.45, 0.85), (-0.5, -0.25)],),
            "Summer", "Party", "Women"),
    Article("Jeans", "Bottomwear", "Apparel",
            ([(-0.45, -0.9), (0.45, -0.9), (0.5, 0.9), (0.1, 0.9), (0, -0.25), (-0.1, 0.9), (-0.5, 0.9)],),
            "Fall", "Casual"),
    Article("Watches", "Watches", "Accessories",
            ([(-0.2, -0.95), (0.2, -0.95), (0.2, 0.95), (-0.2, 0.95)], _arc((0, 0), (0.42, 0.42), 0, 360)),
            "Winter", "Formal"),
    Article("Heels", "Shoes", "Footwear",
            ([(-0.75, -0.35), (-0.5, -0.35), (0.2, 0.2), (0.85, 0.25), (0.85, 0.45), (0.1, 0.45), (-0.5, 0.0),
              (-0.55, 0.8), (-0.7, 0.8), (-0.75, 0.0)],),
            "Spring", "Party", "Women"),
    Article("Backpacks", "Bags", "Accessories",
            (_arc((0, -0.3), (0.55, 0.5), 180, 360) + [(0.55, 0.85), (-0.55, 0.85)],
             _arc((0, -0.8), (0.18, 0.15), 180, 360) + _arc((0, -0.8), (0.08, 0.06), 360, 180)),
            "Fall", "Sports"),
    Article("Shorts", "Bottomwear", "Apparel",
            ([(-0.6, -0.5), (0.6, -0.5), (0.7, 0.4), (0.08, 0.4), (0, -0.05), (-0.08, 0.4), (-0.7, 0.4)],),
            "Summer", "Sports"),
    Article("Caps", "Headwear", "Accessories",
            (_arc((-0.15, 0.25), (0.6, 0.6), 180, 360), [(0.35, 0.1), (0.95, 0.2), (0.95, 0.32), (0.35, 0.25)]),
            "Summer", "Sports"),
    Article("Skirts", "Bottomwear", "Apparel",
            ([(-0.3, -0.7), (0.3, -0.7), (0.75, 0.7), (-0.75, 0.7)],),
            "Spring", "Casual", "Women"),
    Article("Boots", "Shoes", "Footwear",
            ([(-0.5, -0.9), (0.05, -0.9), (0.05, 0.15), (0.75, 0.3), (0.75, 0.7), (-0.5, 0.7)],),
            "Winter", "Casual"),
    Article("Clutches", "Bags", "Accessories",
            ([(-0.85, -0.35), (0, 0.05), (0.85, -0.35), (0.85, 0.35), (-0.85, 0.35)],),
            "Winter", "Party", "Women"),
    Article("Hats", "Headwear", "Accessories",
            (_arc((0, 0.35), (0.95, 0.2), 0, 360), [(-0.45, 0.35), (-0.38, -0.45), (0.38, -0.45), (0.45, 0.35)]),
            "Spring", "Casual"),
)
MAIN_TAG_SHARE = 0.7  # share of an article's rows that carry its typical season (and usage)


def make_synthetic_catalog(out_dir: str | os.PathLike, n: int = 600, image_size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` JPEGs to ``out_dir/images/<id>.jpg`` and their labels to ``out_dir/styles.csv``.

    Returns the path of ``styles.csv``. Same ``seed`` and arguments: same bytes.
    """
    n, image_size, seed = _check_arguments(n, image_size, seed)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    articles = _assign_articles(n, seed)
    rows = []
    for row, article_index in enumerate(articles):
        rng = np.random.default_rng([seed, row])
        product_id = FIRST_ID + row
        record = _labels(product_id, ARTICLES[article_index], rng)
        image = draw_product(ARTICLES[article_index], record["baseColour"], record["pattern"], image_size, rng)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode synthetic image {product_id}")
        (image_dir / f"{product_id}.jpg").write_bytes(encoded.tobytes())
        rows.append(record)
    labels_csv = out_dir / "styles.csv"
    pd.DataFrame(rows, columns=[*KAGGLE_COLUMNS, "pattern"]).to_csv(labels_csv, index=False)
    return labels_csv


def _check_arguments(n, image_size, seed) -> tuple[int, int, int]:
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(n) or n < len(ARTICLES):
        raise ValueError(f"n must be an integer >= {len(ARTICLES)} (one image per subcategory at least), got {n!r}")
    if not is_int(image_size) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16 (pixels per side), got {image_size!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n), int(image_size), int(seed)


def class_sizes(n: int) -> np.ndarray:
    """Rows per article (``ARTICLES`` order): Zipf-like shares, at least one each, summing to ``n``."""
    shares = np.arange(1, len(ARTICLES) + 1, dtype=float) ** -ZIPF_EXPONENT
    shares /= shares.sum()
    sizes = np.maximum(1, np.floor(n * shares).astype(int))
    # hand the rounding remainder to the most common articles, one row each, in rank order
    for rank in range(n - sizes.sum()):
        sizes[rank % len(sizes)] += 1
    return sizes


def _assign_articles(n: int, seed: int) -> np.ndarray:
    """Article index of every row: ``class_sizes(n)`` rows each, in a seeded random order."""
    articles = np.repeat(np.arange(len(ARTICLES)), class_sizes(n))
    return np.random.default_rng([seed, n]).permutation(articles)


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


# ---- drawing --------------------------------------------------------------------------------

def draw_product(article: Article, colour: str, pattern: str, image_size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image: the article's silhouette, filled with ``colour`` and ``pattern``, on a noisy background."""
    size = image_size
    radius = size * rng.uniform(0.32, 0.44)           # half-extent of the unit square, in pixels
    angle = np.deg2rad(rng.uniform(-15, 15))
    center = size / 2 + rng.uniform(-0.07, 0.07, 2) * size
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    to_pixels = rotation * radius * np.array([mirror, 1.0])  # unit (x, y) -> pixel offset, columns x and y

    opacity = _silhouette(article.shapes, to_pixels, center, size)
    fill = _pattern_fill(pattern, colour, to_pixels, center, size, rng)
    image = _background(size, rng) * (1.0 - opacity) + fill * opacity
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.2, 0.7))
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _silhouette(shapes, to_pixels: np.ndarray, center: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage (size, size, 1) in 0..1 of the union of the article's polygons."""
    subpixel = 4  # fillPoly's fixed-point shift: polygon corners at 1/16 pixel
    mask = np.zeros((size, size), np.uint8)
    for polygon in shapes:
        points = np.asarray(polygon, dtype=float) @ to_pixels.T + center
        cv2.fillPoly(mask, [np.rint(points * (1 << subpixel)).astype(np.int32)], 255, cv2.LINE_AA, subpixel)
    return (mask.astype(np.float32) / 255.0)[:, :, None]


def _pattern_fill(pattern: str, colour: str, to_pixels: np.ndarray, center: np.ndarray, size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) float32 fill: the base colour (jittered), with near-white stripes, dots or checks.

    The pattern lives in the object's own frame, so it turns and mirrors with the silhouette.
    """
    base = np.clip(np.array(COLOURS[colour], np.float32) + rng.uniform(-12, 12, 3), 0, 255)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    offsets = np.stack([cols - center[0], rows - center[1]], axis=-1)
    unit = offsets @ np.linalg.inv(to_pixels).T           # pixel -> unit object coordinates
    period = rng.uniform(0.25, 0.35)                       # in unit coordinates (~1/7 of the object)
    u, v = unit[..., 0] / period, unit[..., 1] / period
    if pattern == "Solid":
        marked = np.zeros_like(u, dtype=bool)
    elif pattern == "Striped":
        marked = np.mod(v, 1.0) < 0.4
    elif pattern == "Dotted":
        marked = (np.mod(u, 1.0) - 0.5) ** 2 + (np.mod(v, 1.0) - 0.5) ** 2 < 0.32 ** 2
    elif pattern == "Checked":
        marked = (np.floor(u) + np.floor(v)) % 2 == 1
    else:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    return np.where(marked[:, :, None], np.array(PATTERN_COLOUR, np.float32), base).astype(np.float32)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) float32: a grey-to-beige tone with a smooth random texture."""
    level = rng.uniform(*BACKGROUND_LEVELS)
    tint = np.array([1.0, 0.97, 0.9]) if rng.random() < 0.5 else np.ones(3)  # beige or neutral grey
    texture = cv2.resize(rng.normal(0.0, 6.0, (4, 4)).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_CUBIC)
    return ((level + texture)[:, :, None] * tint).astype(np.float32)
