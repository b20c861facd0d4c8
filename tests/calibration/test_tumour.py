"""``brats-goat calibrate tumour``: the healthy levels of ``tumour.json``."""

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


def test_the_command_stores_pooled_t2w_and_t1c_levels(tmp_path: Path, case_writer) -> None:
    case_writer("H-0", seed=40, lesion=False)
    case_writer("H-1", seed=41, lesion=False, skip=("t1c",))
    out = tmp_path / "tumour.json"
    result = CliRunner().invoke(main, ["calibrate", "tumour", str(tmp_path / "in"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    t2w = np.concatenate(list(healthy_pool(tmp_path / "in", "t2w").values()))
    t1c = healthy_pool(tmp_path / "in", "t1c")["H-0"]
    assert record["thresholds"] == {
        "t2w_z_p50": round(float(np.percentile(t2w, 50)), 2),
        "t1c_z_p10": round(float(np.percentile(t1c, 10)), 2),
    }
    assert record["provenance"]["data"]["t1c"] == "in: H-0 (lesion masks left out)"
    assert settings_message(record, RESULTS["tumour"], "x") is None  # made with the defaults


@pytest.mark.slow
@pytest.mark.real
def test_defaults_on_the_real_healthy_subjects_reproduce_the_shipped_file(tmp_path: Path) -> None:
    if not HEALTHY_REAL.is_dir():
        pytest.skip(f"real healthy subjects not found at {HEALTHY_REAL}")
    out = tmp_path / "tumour.json"
    result = CliRunner().invoke(main, ["calibrate", "tumour", str(HEALTHY_REAL), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == shipped_path("tumour").read_bytes()
