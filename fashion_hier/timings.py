"""Seconds per stage of one training command (extraction, head, fine-tune, calibration), kept as RUN/timings.json.

A run's wall time is mostly a few long stages; ``timings.json`` says which, so a user (or a benchmark) reads where
the time went instead of parsing logs. The figures are this command's: a resumed run counts only what it did.
"""
from __future__ import annotations

import contextlib
import json
import time
from typing import Iterator

from fashion_hier.atomic import atomic_write_text
from fashion_hier.rundir import RunDir


class StageTimer:
    """Wall-clock seconds per named stage, in the order the stages first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (added to it when the same stage runs again)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def record(self) -> dict:
        """``{"stages": {name: seconds}, "other": seconds, "total": seconds}`` (other: reading, splitting, saving)."""
        total = time.perf_counter() - self._started
        stages = {name: round(seconds, 2) for name, seconds in self.seconds.items()}
        return {"stages": stages, "other": round(total - sum(self.seconds.values()), 2), "total": round(total, 2)}

    def write(self, run: RunDir) -> None:
        atomic_write_text(run.timings, json.dumps(self.record(), indent=2) + "\n")
