"""Image folder layout: spread a flat folder of images into numbered sub-folders.

Google Drive (as mounted in Colab) times out listing or reading folders that hold many thousands
of files; the Kaggle *Fashion Product Images* folder holds ~44k. ``read_catalog`` finds images by
id recursively, so a spread-out folder is read exactly like the flat one.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from fashion_hier.data.catalog import IMAGE_EXTENSIONS


def spread_into_subfolders(image_dir: str | os.PathLike, out_dir: str | os.PathLike, per_folder: int = 1000, *,
                           move: bool = False, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> dict[str, int]:
    """Copy (or move) the images of ``image_dir`` into ``out_dir/0000``, ``out_dir/0001``, ... of ``per_folder`` each.

    Images are taken in sorted name order, so a run again after an interruption puts every image in the
    same sub-folder and skips those already there with the same size. Only files directly in
    ``image_dir`` with one of ``extensions`` (any case) are spread.

    Returns:
        counts: ``{"images", "folders", "copied" (or moved), "skipped"}``.
    """
    image_dir, out_dir = Path(image_dir), Path(out_dir)
    if isinstance(per_folder, bool) or not isinstance(per_folder, int) or per_folder < 1:
        raise ValueError(f"per_folder must be a positive integer (images per sub-folder), got {per_folder!r}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist; pass the folder holding the images")
    if out_dir.resolve() == image_dir.resolve():
        raise ValueError(f"out_dir {out_dir} is image_dir itself; pass a new folder (e.g. {image_dir}_spread)")
    suffixes = {extension.lower() for extension in extensions}
    images = sorted(path for path in image_dir.iterdir() if path.is_file() and path.suffix.lower() in suffixes)
    transfer = shutil.move if move else shutil.copy2
    done = skipped = 0
    for index, source in enumerate(images):
        target = out_dir / f"{index // per_folder:04d}" / source.name
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            skipped += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        transfer(str(source), str(target))
        done += 1
    folders = (len(images) + per_folder - 1) // per_folder
    return {"images": len(images), "folders": folders, "moved" if move else "copied": done, "skipped": skipped}
