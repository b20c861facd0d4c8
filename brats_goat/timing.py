"""Seconds per stage: what the run report records for every case, and what moves a
case's progress bar (``run/predict.py`` passes one; in memory there is none)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class StageTimer:
    """Collects seconds per stage and advances the case's progress bar."""

    def __init__(self, bar: tqdm | None = None) -> None:
        self.timings: dict[str, float] = {}
        self.bar = bar

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            if self.bar is not None:
                self.bar.update(1)
