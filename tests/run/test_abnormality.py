"""How abnormal a case is against healthy variation (issue 27, item 9): tumour-free
brains got large "tumours" with no flag. The report now gives, per present channel, the
case's 99.9th residual percentile over its calibrated threshold (the healthy subjects'
median of that percentile): about 1 on a healthy brain, well above with a tumour. The
labels themselves are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.segmenter import make_segmenter
from brats_goat.stages.anomaly import channel_scores
from tests.conftest import write_case


def report_cases(out: Path) -> dict[str, dict]:
    return {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}


def test_report_tells_a_tumour_from_a_healthy_brain(tmp_path: Path) -> None:
    write_case(tmp_path / "in", "TUMOUR")
    write_case(tmp_path / "in", "HEALTHY", lesion=False, seed=1)
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "in"), str(out), "--method", "intensity", "--quiet"]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    cases = report_cases(out)
    tumour, healthy = cases["TUMOUR"]["abnormality"], cases["HEALTHY"]["abnormality"]
    assert set(tumour) == set(healthy) == {"t2f", "t1c"}
    assert healthy["t2f"] < 1.5 < 2.0 < tumour["t2f"]
    assert tumour["t2f"] > 2 * healthy["t2f"]


def test_abnormality_is_the_percentile_over_the_threshold(tmp_path: Path) -> None:
    (case,) = discover_cases(write_case(tmp_path, "C-1", skip=("t1c",)))
    volumes = load_case(case, allow_missing=True)
    segmenter = make_segmenter("intensity")
    cand = segmenter.candidates(volumes)
    seg = segmenter.segment(load_case(case, allow_missing=True))
    threshold = segmenter.thresholds(volumes.present)["t2f"]
    assert set(seg.abnormality) == {"t2f"}  # no t1c, no t1c figure
    expected = np.percentile(cand.maps["t2f"][cand.brain], 99.9) / threshold
    assert seg.abnormality["t2f"] == round(float(expected), 3)


def test_channel_scores_of_an_empty_brain_are_zero() -> None:
    maps = {"t2f": np.ones((4, 4, 4), np.float32)}
    assert channel_scores(maps, np.zeros((4, 4, 4), bool)) == {"t2f": 0.0}
