"""The record of images a loader skipped because they could not be read, and its CSV report.

Loaders never stop on a bad image: they drop it from its batch (with its labels and weights) and
add ``(path, reason)`` here. One record can be shared by several loaders and worker threads;
each path is kept once, with the first reason seen, in the order found.
"""
from __future__ import annotations

import csv
import logging
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from fashion_hier.atomic import atomic_open

logger = logging.getLogger(__name__)
REPORT_COLUMNS = ("image_path", "reason")


class UnreadableImage(NamedTuple):
    """One image a loader could not decode, and why."""

    path: str
    reason: str


class UnreadableImages:
    """Thread-safe, de-duplicated record of skipped images: iterate it for ``UnreadableImage`` rows.

    With ``use_multiprocessing=True`` each worker process fills its own copy; those images are
    logged by the worker but not recorded here (thread workers and tf.data record them all).
    """

    def __init__(self, records: Iterable[tuple[str, str]] = ()) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, str] = {}
        for path, reason in records:
            self.add(path, reason)

    def add(self, path: str | os.PathLike, reason: str) -> bool:
        """Record ``path``; True (and a warning logged) the first time it is seen."""
        path = os.fspath(path)
        with self._lock:
            if path in self._records:
                return False
            self._records[path] = reason
        logger.warning("skipped unreadable image %s: %s", path, reason)
        return True

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return list(self._records)

    def __iter__(self) -> Iterator[UnreadableImage]:
        with self._lock:
            return iter([UnreadableImage(path, reason) for path, reason in self._records.items()])

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return os.fspath(path) in self._records  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"UnreadableImages({len(self)} images)"

    # a lock cannot be pickled (PyDataset workers with multiprocessing pickle the loader)
    def __getstate__(self) -> dict:
        with self._lock:
            return {"records": dict(self._records)}

    def __setstate__(self, state: dict) -> None:
        self._lock = threading.Lock()
        self._records = dict(state["records"])


def write_unreadable_report(records: Iterable[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write ``image_path,reason`` rows (one per skipped image) to the CSV ``path``, atomically.

    ``records`` is an ``UnreadableImages`` or any iterable of ``(path, reason)`` pairs. The file is
    written even when there is nothing to report (header only), so "no unreadable images" is on disk too.
    """
    rows = [(str(image), str(reason)) for image, reason in records]
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(rows)
    return Path(path)
