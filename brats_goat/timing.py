"""Seconds per stage: what the run report records for every case, and what moves a
case's progress bar (``run/case.py`` passes one; in memory there is none)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

from tqdm import tqdm


class Stage(StrEnum):
    """The pipeline's stages, in order. One name each for the segmenter, the timer, the
    read-ahead and the run report (whose ``timings_s`` keys are these values)."""

    READ = "read"
    NORMALISE = "normalise"
    RECONSTRUCT = "reconstruct"
    ANOMALY = "anomaly"
    THRESHOLD = "threshold"
    REFINE = "refine"
    LABELS = "labels"
    WRITE = "write"
    #: Not a stage of the method: the ``--qc-png`` picture, timed like one.
    QC = "qc"


#: The method's stages (every case passes each once; ``QC`` only when asked for).
STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s is not Stage.QC)


class StageTimer:
    """Collects seconds per stage and advances the case's progress bar; ``after`` maps a
    stage's name to what to start once it has ended (the run reads the next case then)."""

    def __init__(
        self, bar: tqdm | None = None, after: dict[Stage, Callable[[], object]] | None = None
    ) -> None:
        self.timings: dict[str, float] = {}
        self.bar = bar
        self.after = dict(after or {})

    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[str(name)] = round(time.perf_counter() - start, 3)
            if self.bar is not None:
                self.bar.update(1)
        if name in self.after:  # only after a stage that ended without an exception
            self.after.pop(name)()
