"""The synthetic products both catalogue shapes draw, and how one is rendered to pixels.

Subcategory silhouettes (``ARTICLES``, in Zipf rank order) with their typical tags, the colours
and fill patterns, the seeded rendering (``draw_product``), the uneven class sizes and the JPEG
writer. ``synthetic`` (the Kaggle shape) and ``synthetic_meesho`` (per-category attribute
columns) differ only in which labels they write and which details they ask to be drawn.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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


def check_arguments(n, image_size, seed, articles: tuple[Article, ...] = ARTICLES) -> tuple[int, int, int]:
    """``n``, ``image_size`` and ``seed`` as ints, or a ValueError naming the argument."""
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(n) or n < len(articles):
        raise ValueError(f"n must be an integer >= {len(articles)} (one image per subcategory at least), got {n!r}")
    if not is_int(image_size) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16 (pixels per side), got {image_size!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n), int(image_size), int(seed)


def class_sizes(n: int, count: int = len(ARTICLES)) -> np.ndarray:
    """Rows per article of ``count`` (in rank order): Zipf-like shares, at least one each, summing to ``n``."""
    shares = np.arange(1, count + 1, dtype=float) ** -ZIPF_EXPONENT
    shares /= shares.sum()
    sizes = np.maximum(1, np.floor(n * shares).astype(int))
    # hand the rounding remainder to the most common articles, one row each, in rank order
    for rank in range(n - sizes.sum()):
        sizes[rank % len(sizes)] += 1
    return sizes


def assign_articles(n: int, seed: int, count: int = len(ARTICLES)) -> np.ndarray:
    """Article index (of ``count`` in rank order) of every row: ``class_sizes`` rows each, in a seeded random order."""
    articles = np.repeat(np.arange(count), class_sizes(n, count))
    return np.random.default_rng([seed, n]).permutation(articles)


def write_jpeg(image: np.ndarray, path: Path) -> None:
    """Encode an RGB uint8 image as a JPEG at ``JPEG_QUALITY`` and write it to ``path``."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode synthetic image {path.name}")
    path.write_bytes(encoded.tobytes())


# ---- drawing --------------------------------------------------------------------------------

def draw_product(article: Article, colour: str, pattern: str, image_size: int,
                 rng: np.random.Generator, trim: tuple = ()) -> np.ndarray:
    """One RGB uint8 image: the article's silhouette, filled with ``colour`` and ``pattern``, on a noisy background.

    ``trim``: polygons (unit coordinates, inside the silhouette) painted near-white over the fill, for a
    detail such as a sole or a waistband; drawing none consumes no randomness, so images without stay as they were.
    """
    size = image_size
    radius = size * rng.uniform(0.32, 0.44)           # half-extent of the unit square, in pixels
    angle = np.deg2rad(rng.uniform(-15, 15))
    center = size / 2 + rng.uniform(-0.07, 0.07, 2) * size
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    to_pixels = rotation * radius * np.array([mirror, 1.0])  # unit (x, y) -> pixel offset, columns x and y

    opacity = _silhouette(article.shapes, to_pixels, center, size)
    fill = _pattern_fill(pattern, colour, to_pixels, center, size, rng)
    if trim:
        marks = _silhouette(trim, to_pixels, center, size)
        fill = fill * (1.0 - marks) + np.array(PATTERN_COLOUR, np.float32) * marks
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
