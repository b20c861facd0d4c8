"""Helper threads: independent per-channel work (the t1c and t2f maps) on two threads, and
the pools the run reads ahead with.

The 3D stages after the network are numpy and scipy.ndimage, single-threaded, and most of
their time is spent in C code that releases the GIL: the two channels' maps, thresholds
and components then run side by side on a 2-core CPU (issue 18). Each channel's result is
computed exactly as it would be alone.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")


def leave_signals_to_the_main_thread() -> None:
    """Block SIGINT and SIGTERM in the calling (helper) thread, so that the kernel hands
    them to the main thread: a wait there (a lock, a future's result) is then cut short by
    the signal, and where no handler of ours is installed ``signals_deferred`` holds them
    back with the main thread's mask alone (``brats_goat.run.interrupt``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))


def helper_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads leave SIGINT and SIGTERM to the main thread."""
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=leave_signals_to_the_main_thread
    )


@functools.cache
def _pool(name: str) -> ThreadPoolExecutor:
    return helper_pool(2, f"brats-goat-{name}")


def channel_map(fn: Callable[[T], R], items: Iterable[T], pool: str = "channel") -> list[R]:
    """``[fn(item) for item in items]``, two at a time; an exception in one is raised."""
    with contextlib.closing(channel_results(fn, items, pool)) as results:
        return list(results)


def channel_results(
    fn: Callable[[T], R], items: Iterable[T], pool: str = "channel"
) -> Generator[R, None, None]:
    """``fn(item)`` for each item, two at a time, yielded in the items' order: the caller
    checks each result as it comes (an exception is raised at its item), and closing the
    iterator early cancels the items not yet started. ``pool`` names the two threads: the
    run reads files on its own pair (``file``), so that a read never queues the segmented
    case's channels behind it."""
    items = list(items)
    if len(items) < 2:
        return (fn(item) for item in items)
    # Executor.map submits every item now and returns a generator whose close() cancels the
    # items not yet started; typeshed calls it an Iterator, which has no close().
    return cast("Generator[R, None, None]", _pool(pool).map(fn, items))
