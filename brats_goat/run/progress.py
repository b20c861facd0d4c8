"""The line a run prints on stderr as each case starts: which case of how many, the time
so far and an estimate of the time left, so that a long run (hundreds of cases, minutes
each) says when it will end. Logs get it too: the per-stage bars show only on a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class RunProgress:
    """Cases started so far out of ``total``; the estimate is the mean time of the cases
    done so far times the cases left (``clock``: seconds, monotonic; tests pass their own)."""

    total: int
    clock: Callable[[], float] = time.monotonic
    started: float | None = field(default=None, init=False)

    def line(self, index: int, case_id: str) -> str:
        """``[3/10] ID (elapsed 2:04, ETA 7:14)`` for case ``index`` (from 1) starting now;
        the first case has no estimate yet."""
        now = self.clock()
        if self.started is None:
            self.started = now
        head = f"[{index}/{self.total}] {case_id}"
        done = index - 1
        if done == 0:
            return f"{head} (ETA after the first case)"
        elapsed = now - self.started
        left = elapsed / done * (self.total - done)
        return f"{head} (elapsed {duration(elapsed)}, ETA {duration(left)})"
