"""Per-channel work on two threads: the same results, in order, errors raised."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.parallel import channel_map


def test_channel_map_gives_each_result_in_order_on_two_threads() -> None:
    rng = np.random.default_rng(0)
    volumes = [rng.random((30, 30, 20)) > 0.6 for _ in range(4)]
    labelled = channel_map(lambda v: ndimage.label(v)[0], volumes)
    for got, volume in zip(labelled, volumes, strict=True):
        np.testing.assert_array_equal(got, ndimage.label(volume)[0])
    names = set(channel_map(lambda _: threading.current_thread().name, range(8)))
    assert any(name.startswith("brats-goat-channel") for name in names)
    assert channel_map(lambda _: threading.current_thread().name, [0]) == [
        threading.current_thread().name
    ]  # one item: no thread


def test_channel_map_raises_a_channels_error() -> None:
    def fail_on_two(k: int) -> int:
        if k == 2:
            raise ValueError("channel 2 failed")
        return k

    with pytest.raises(ValueError, match="channel 2"):
        channel_map(fail_on_two, [1, 2, 3])


def test_helper_threads_leave_signals_to_the_main_thread() -> None:
    """The channel threads, like the read-ahead one, block SIGINT and SIGTERM."""
    masks = channel_map(lambda _: set(signal.pthread_sigmask(signal.SIG_BLOCK, [])), range(4))
    for mask in masks:
        assert {signal.SIGINT, signal.SIGTERM} <= mask


def test_channel_results_come_in_order_on_the_named_pair_and_stop_early() -> None:
    """Results are yielded in the items' order, on the pair of threads ``pool`` names; an
    error is raised at its item, and closing the iterator there cancels what is queued.

    No sleeps: items after the first two wait for ``release``, set only once the iterator
    is closed, so at most items 0-3 (one per thread after 0 and 1) can have started by
    then; two barrier items queued behind them show when the pair has drained the queue."""
    import contextlib

    from brats_goat.parallel import _pool, channel_results

    started: list[int] = []
    release = threading.Event()

    def work(k: int) -> tuple[int, str]:
        started.append(k)
        if k == 1:
            raise ValueError("item 1 failed")
        if k >= 2:
            assert release.wait(timeout=60), "never released"
        return k, threading.current_thread().name

    with contextlib.closing(channel_results(work, range(8), pool="test")) as results:
        first = next(results)
        assert first[0] == 0 and first[1].startswith("brats-goat-test")
        with pytest.raises(ValueError, match="item 1"):
            next(results)
    release.set()
    # Both threads inside the barrier: every item queued before it has run or was dropped.
    barrier = threading.Barrier(2, timeout=60)
    drained = [_pool("test").submit(barrier.wait) for _ in range(2)]
    for future in drained:
        future.result(timeout=60)
    assert {0, 1} <= set(started) <= {0, 1, 2, 3}, f"queued items were not cancelled: {started}"
