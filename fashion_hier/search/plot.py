"""The picture of a query image beside its nearest neighbours (``fashion-hier similar --plot``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from fashion_hier.atomic import atomic_path
from fashion_hier.data.images import load_image


def plot_neighbours(query_path: str, neighbours: pd.DataFrame, out_path: str | Path, *, size: int = 160) -> Path:
    """A PNG of the query (left, framed) beside its neighbours in rank order, each titled with its distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(query_path, "query")] + [(row.image_path, f"#{row.rank}  d={row.distance:.3f}")
                                        for row in neighbours.itertuples()]
    figure, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 2.0), squeeze=False)
    for axis, (path, title) in zip(axes[0], panels):
        axis.imshow(load_image(path, size, resize="pad").astype("uint8"))
        axis.set_title(title, fontsize=7)
        axis.set_xticks([]), axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("tab:red" if title == "query" else "lightgrey")
            spine.set_linewidth(2 if title == "query" else 0.5)
    figure.tight_layout()
    with atomic_path(out_path) as target:
        figure.savefig(target, dpi=100, format="png")
    plt.close(figure)
    return Path(out_path)
