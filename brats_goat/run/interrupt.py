"""SIGTERM and SIGINT during a run: stop at once, but leave a true report behind.

``docker stop``, a Kubernetes eviction or Ctrl-C end a run in the middle of a case. Python's
default would die on SIGTERM without a word and turn SIGINT into a traceback; either way
the report would say "2 cases, 0 failed" for an input of 3. Here the first signal raises
``RunInterrupted`` in the main thread wherever it is; the runner marks the case it was on
as ``interrupted``, writes the report with ``"state": "interrupted"``, removes its
temporary files and lock, and the command exits with the shell's code for that signal
(128 + signal number: 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from brats_goat.run.report import CaseResult, RunReport

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """A signal stopped the run. A ``BaseException``, like ``KeyboardInterrupt``, so that
    the per-case ``except Exception`` never mistakes it for a failure of that case."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        #: The case that was running, marked ``interrupted`` (set by the case runner).
        self.result: CaseResult | None = None
        #: The run's report as written after the interruption (set by the folder runner).
        self.report: RunReport | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class _Signals:
    """What the handler of ``stop_on_signals`` knows: whether it has raised, and whether a
    ``signals_deferred`` block is open (then it keeps the signal for the block's end)."""

    installed = False
    raised = False
    deferring = 0
    pending: int | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    if _Signals.raised:
        return
    if _Signals.deferring:
        _Signals.pending = _Signals.pending or signum
        return
    _Signals.raised = True
    raise RunInterrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``RunInterrupted`` inside the block (main thread only).

    Only the first signal raises: a second one while the report and the lock are being
    cleaned up is ignored, so that the cleanup finishes. A signal that the process
    inherited as ignored (a background job's SIGINT, ``nohup``) stays ignored. The
    previous handlers are restored on leaving the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _handler)
    _Signals.installed, _Signals.raised, _Signals.pending = True, False, None
    try:
        yield
    finally:
        _Signals.installed = False
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back during the block; one that arrives meanwhile is
    delivered (and raises) when the block ends. For the few steps that must not be cut in
    two: taking and releasing the folder lock, writing the final report.

    The handler itself holds the signal back (not a thread's signal mask): the kernel may
    hand a signal to any thread (torch's workers, the read-ahead thread), and Python runs
    the handler in the main thread whichever took it.
    """
    if not _Signals.installed:  # no handler of ours: hold them in the main thread's mask
        with _masked():
            yield
        return
    _Signals.deferring += 1
    try:
        yield
    finally:
        _Signals.deferring -= 1
        pending, _Signals.pending = _Signals.pending, None
        if pending is not None and _Signals.deferring:
            _Signals.pending = pending  # still inside an outer block
        elif pending is not None and not _Signals.raised:
            _Signals.raised = True
            raise RunInterrupted(pending)


@contextmanager
def _masked() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
