"""Self-contained HTML pages: images embedded as data URIs, styles and scripts inline.

A report must open from an e-mail attachment or a Colab download with no folder beside it, so
nothing is linked: PNG plots and JPEG thumbnails are base64 ``data:`` URIs. Every text that comes
from data (labels, paths) goes through ``escape``.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { width: 180px; border: 1px solid #ccc; border-radius: 4px; padding: 0.4em; font-size: 0.8em; }
.card img { width: 100%; height: auto; display: block; }
.given { color: #b00; } .suggested { color: #070; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
"""


def escape(text: object) -> str:
    """``text`` safe inside HTML element content and quoted attributes."""
    return html.escape(str(text), quote=True)


def png_data_uri(path: str | os.PathLike) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def jpeg_data_uri(pixels: np.ndarray, quality: int = 85) -> str:
    """RGB pixels (0..255) as a ``data:image/jpeg;base64,...`` URI."""
    rgb = np.clip(np.asarray(pixels, dtype=np.float32), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a thumbnail as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def thumbnail_uri(path: str | os.PathLike, size: int = 160, resize: str = "pad") -> str | None:
    """A JPEG thumbnail of the image at ``path``, or None when it cannot be read (the card says so)."""
    from fashion_hier.data import load_image

    try:
        return jpeg_data_uri(load_image(path, (size, size), resize=resize))
    except Exception:  # an unreadable image must not stop a report; the card shows "no image"
        return None


def image_tag(uri: str | None, alt: str) -> str:
    """An ``<img>`` for a data URI, or a placeholder when there is no image."""
    if uri is None:
        return f'<div class="note">no image ({escape(alt)})</div>'
    return f'<img src="{uri}" alt="{escape(alt)}">'


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, table_id: str | None = None) -> str:
    """An HTML table; cells are escaped."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    id_attribute = f' id="{escape(table_id)}"' if table_id else ""
    return f"<table{id_attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, *, script: str = "") -> str:
    """A complete HTML5 document with the shared style and an optional inline script."""
    script_tag = f"<script>\n{script}\n</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n<h1>{escape(title)}</h1>\n{body}\n{script_tag}\n</body></html>\n")
