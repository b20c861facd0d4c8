"""Independent per-channel work (the t1c and t2f maps) on two threads.

The 3D stages after the network are numpy and scipy.ndimage, single-threaded, and most of
their time is spent in C code that releases the GIL: the two channels' maps, thresholds
and components then run side by side on a 2-core CPU (issue 18). Each channel's result is
computed exactly as it would be alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="brats-goat-channel")


def channel_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, two at a time; an exception in one is raised."""
    items = list(items)
    if len(items) < 2:
        return [fn(item) for item in items]
    return list(_pool().map(fn, items))
