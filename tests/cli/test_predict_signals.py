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
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
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

    from brats_goat.run.interrupt import leave_signals_to_the_main_thread

    seen: list[set[int]] = []

    def helper() -> None:
        leave_signals_to_the_main_thread()
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join()
    assert {signal.SIGINT, signal.SIGTERM} <= seen[0]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # main untouched
