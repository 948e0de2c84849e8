"""The record of images a loader skipped because they could not be read, and its CSV report.

Loaders never stop on a bad image: they drop it from its batch (with its labels and weights) and
add ``(path, reason)`` here. One record can be shared by several loaders and worker threads (or
processes); each path is kept once, with the first reason seen.
"""
from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from fashion_hier.atomic import atomic_open
from fashion_hier.labels import IMAGE_PATH

logger = logging.getLogger(__name__)
REPORT_COLUMNS = (IMAGE_PATH, "reason")


class UnreadableImage(NamedTuple):
    """One image a loader could not decode, and why."""

    path: str
    reason: str


class UnreadableImages:
    """Thread-safe, de-duplicated record of skipped images: iterate it for ``UnreadableImage`` rows.

    ``across_processes=True`` keeps the record in a ``multiprocessing.Manager`` so that loader
    worker processes (``use_multiprocessing=True``) add to the parent's record; otherwise a lock
    guards a plain dict (thread workers and tf.data).
    """

    def __init__(self, records: Iterable[tuple[str, str]] = (), *, across_processes: bool = False) -> None:
        self._manager = None
        if across_processes:
            self._manager = multiprocessing.Manager()
            self._lock, self._records = self._manager.Lock(), self._manager.dict()
        else:
            self._lock, self._records = threading.Lock(), {}
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

    def _items(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._records.items())  # the Manager's dict keeps insertion order too

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self._items()]

    def __iter__(self) -> Iterator[UnreadableImage]:
        return iter([UnreadableImage(path, reason) for path, reason in self._items()])

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return os.fspath(path) in self._records  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"UnreadableImages({len(self)} images)"

    # loader workers with multiprocessing pickle the loader: a thread lock cannot travel (a copy starts
    # over), Manager proxies can (and keep writing to the parent's record); the Manager stays with the parent
    def __getstate__(self) -> dict:
        if isinstance(self._records, dict):
            with self._lock:
                return {"records": dict(self._records)}
        return {"records": self._records, "lock": self._lock}

    def __setstate__(self, state: dict) -> None:
        self._manager = None
        self._records = state["records"]
        self._lock = state.get("lock") or threading.Lock()


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
