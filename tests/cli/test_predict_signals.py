"""SIGTERM and SIGINT sent to a real ``python -m brats_goat.cli predict`` process.

Three phantoms, the middle one large enough (about 3 s with ``--method intensity``) that
the signal, sent as soon as the report shows the first case done, lands inside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_case

ROOT = Path(__file__).resolve().parents[2]


def wait_for_first_case(report: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the report (written atomically after every case) counts one case done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if report.exists() and json.loads(report.read_text())["cases_done"] >= 1:
            return
        time.sleep(0.02)
    raise AssertionError("the first case was not done in time")


def as_in_a_terminal() -> None:
    """The child's SIGINT and SIGTERM at their defaults, as for a command typed in a
    terminal: a shell starts background jobs with SIGINT ignored, and ``predict`` rightly
    keeps an inherited SIG_IGN, so a CI run started in the background would not see it."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_marks_the_running_case_and_leaves_a_true_report(
    tmp_path: Path, signum: signal.Signals
) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(inp, "B-2", shape=(160, 160, 96))
    write_case(inp, "C-3")
    cmd = [sys.executable, "-m", "brats_goat.cli", "predict", inp, out, "--quiet"]
    cmd += ["--method", "intensity", "--refine", "none", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=as_in_a_terminal,
    )
    try:
        wait_for_first_case(out / "report.json", proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum == {"SIGTERM": 143, "SIGINT": 130}[name]
    assert sorted(p.name for p in out.iterdir()) == ["A-1.nii.gz", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert (report["state"], report["stopped_by"]) == ("interrupted", name)
    assert (report["cases_total"], report["cases_done"]) == (3, 1)
    a, b = report["cases"]
    assert (a["case_id"], a["status"]) == ("A-1", "ok")
    assert (b["case_id"], b["status"], b["output"]) == ("B-2", "interrupted", None)
    assert b["error"].startswith(f"case B-2: interrupted by {name} during ")
    progress = "1 of 3 cases done, 1 interrupted, 1 not started"
    assert f"run interrupted ({name}): {progress}; exit {128 + signum}" in stderr
    assert "Traceback" not in stderr


def test_the_read_ahead_thread_leaves_signals_to_the_main_thread() -> None:
    """A helper thread blocks SIGINT and SIGTERM, so that the kernel delivers them to the
    main thread, where ``signals_deferred`` can hold them back."""
    import threading

    from brats_goat.parallel import leave_signals_to_the_main_thread

    seen: list[set[int]] = []

    def helper() -> None:
        leave_signals_to_the_main_thread()
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # main untouched


def test_a_signal_taken_by_another_thread_waits_for_the_deferred_block() -> None:
    """``signals_deferred`` holds a signal back whichever thread the kernel gave it to (here
    a helper thread sends it to the process while the main thread is in the block)."""
    import threading

    from brats_goat.run.interrupt import (
        RunInterrupted,
        _Signals,
        signals_deferred,
        stop_on_signals,
    )

    steps: list[str] = []
    with pytest.raises(RunInterrupted) as caught, stop_on_signals():
        with signals_deferred():
            sender = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM))
            sender.start()
            sender.join()
            # Python runs the handler in the main thread at its next check, whichever thread
            # the kernel gave the signal to: wait until it has (and held the signal back),
            # however loaded the machine, instead of guessing a time.
            deadline = time.monotonic() + 60
            while _Signals.pending is None:
                assert time.monotonic() < deadline, "the handler never ran"
                time.sleep(0.001)
            assert _Signals.pending == signal.SIGTERM
            steps.append("block finished")
        steps.append("after the block")  # never: the signal is raised as the block ends
    assert steps == ["block finished"] and caught.value.name == "SIGTERM"


def test_a_signal_between_two_cases_marks_the_next_one(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal just after one case's report was written, before the next began, marks the
    next case interrupted (the report says which case the run stopped at, in any timing)."""
    from brats_goat.run import predict as run_predict
    from brats_goat.run.interrupt import RunInterrupted

    for k in (1, 2, 3):
        case_writer(f"Case-{k}", seed=k)
    real_save = run_predict.save_report

    def save_then_signal(report, folder):
        real_save(report, folder)
        if report.state == "running" and report.n_done == 1:
            raise RunInterrupted(signal.SIGTERM)

    monkeypatch.setattr(run_predict, "save_report", save_then_signal)
    inp, out = tmp_path / "in", tmp_path / "out"
    with pytest.raises(RunInterrupted):
        run_predict.predict(inp, out, weights=tiny_weights, quiet=True)
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "interrupted" and report["cases_done"] == 1
    assert [(c["case_id"], c["status"]) for c in report["cases"]] == [
        ("Case-1", "ok"),
        ("Case-2", "interrupted"),
    ]
    assert report["cases"][1]["error"] == "case Case-2: interrupted by SIGTERM during start"
