"""Progress per case with an estimate of the time left (issue 27): on stderr, in logs too,
never with ``--quiet``."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.run.progress import RunProgress, duration
from tests.conftest import write_case


def test_duration() -> None:
    assert [duration(s) for s in (0, 9.6, 75, 3725)] == ["0:00", "0:10", "1:15", "1:02:05"]


def test_eta_is_the_mean_case_time_times_the_cases_left() -> None:
    times = iter([100.0, 130.0, 160.0, 250.0])
    progress = RunProgress(4, clock=lambda: next(times))
    assert progress.line(1, "A") == "[1/4] A (ETA after the first case)"
    assert progress.line(2, "B") == "[2/4] B (elapsed 0:30, ETA 1:30)"
    assert progress.line(3, "C") == "[3/4] C (elapsed 1:00, ETA 1:00)"
    assert progress.line(4, "D") == "[4/4] D (elapsed 2:30, ETA 0:50)"


def test_predict_prints_each_case_with_an_eta_unless_quiet(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    for i, case_id in enumerate(("A-1", "B-2", "C-3")):
        write_case(inp, case_id, seed=i)

    def predict(out: str, *extra: str):
        args = ["predict", str(inp), str(tmp_path / out), "--method", "intensity", *extra]
        return CliRunner().invoke(main, args)

    result = predict("out")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "[1/3] A-1 (ETA after the first case)" in lines
    for head in ("[2/3] B-2", "[3/3] C-3"):
        (line,) = [x for x in lines if x.startswith(head)]
        assert re.fullmatch(re.escape(head) + r" \(elapsed \d+:\d\d, ETA \d+:\d\d\)", line)
    quiet = predict("quiet", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""
