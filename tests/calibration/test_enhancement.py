"""``brats-goat calibrate enhancement``: the ET thresholds of ``enhancement.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.calibrated import RESULTS, settings_message
from brats_goat.calibration.healthy_levels import healthy_pool
from brats_goat.calibration.records import shipped_path
from brats_goat.cli.main import main
from tests.conftest import REAL_DATA

HEALTHY_REAL = REAL_DATA.parent / "healthy-real"


def test_the_command_stores_healthy_t1c_percentiles_with_its_settings(
    tmp_path: Path, case_writer
) -> None:
    for i in range(2):
        case_writer(f"H-{i}", seed=30 + i, lesion=False)
    out = tmp_path / "enhancement.json"
    args = ["calibrate", "enhancement", str(tmp_path / "in"), "--percentile", "99", "-o", out]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    values = np.concatenate(list(healthy_pool(tmp_path / "in", "t1c").values()))
    assert record["et_threshold_z"] == round(float(np.percentile(values, 99.0)), 2)
    assert record["et_grow_z"] == round(float(np.percentile(values, 85.0)), 2)
    assert record["settings"] == {"percentile": 99.0, "grow_percentile": 85.0}
    assert record["provenance"]["data"] == "in: H-0, H-1 (their lesion masks left out)"
    assert "percentile=99.0 (default now 99.5)" in str(
        settings_message(record, RESULTS["enhancement"], "x")
    )


def test_growth_above_the_threshold_is_a_usage_error(tmp_path: Path, case_writer) -> None:
    case_writer("H-0", lesion=False)
    args = ["calibrate", "enhancement", str(tmp_path / "in"), "--grow-percentile", "99.9"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "must not exceed --percentile" in result.output


@pytest.mark.slow
@pytest.mark.real
def test_defaults_on_the_real_healthy_subjects_reproduce_the_shipped_file(tmp_path: Path) -> None:
    if not HEALTHY_REAL.is_dir():
        pytest.skip(f"real healthy subjects not found at {HEALTHY_REAL}")
    out = tmp_path / "enhancement.json"
    result = CliRunner().invoke(
        main, ["calibrate", "enhancement", str(HEALTHY_REAL), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == shipped_path("enhancement").read_bytes()
