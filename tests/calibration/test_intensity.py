"""``brats-goat calibrate intensity``: the intensity baseline's ``intensity_baseline.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_goat.calibrated import RESULTS
from brats_goat.calibration.intensity import baseline_segmenter
from brats_goat.calibration.records import shipped_path
from brats_goat.calibration.tissue import TissueCalibrationConfig, calibrate_on_tissue
from brats_goat.cli.main import main
from brats_goat.io.discover import discover_cases
from brats_goat.training.config import TrainConfig
from tests.conftest import REAL_DATA

HEALTHY_REAL = REAL_DATA.parent / "healthy-real"


def test_the_defaults_are_the_tissue_calibrations_own() -> None:
    cfg = TissueCalibrationConfig()
    assert RESULTS["intensity"].defaults == {
        "percentile": cfg.percentile,
        "lesion_margin": cfg.lesion_margin,
        "tumour_margin": cfg.selection.healthy_margin,
        "min_brain_voxels": cfg.selection.min_brain_voxels,
    }


def test_the_command_stores_the_tissue_calibration_with_its_settings(
    tmp_path: Path, case_writer
) -> None:
    for i in range(2):
        case_writer(f"H-{i}", seed=50 + i, lesion=False)
    out = tmp_path / "baseline.json"
    args = ["calibrate", "intensity", str(tmp_path / "in"), "--min-brain-voxels", "200"]
    result = CliRunner().invoke(main, [*args, "--percentile", "99", "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    cfg = TissueCalibrationConfig(percentile=99.0, selection=TrainConfig(min_brain_voxels=200))
    post, info = calibrate_on_tissue(baseline_segmenter(), discover_cases(tmp_path / "in"), [], cfg)
    assert record["postprocess"]["threshold_t2f"] == post.threshold_t2f
    assert record["postprocess"]["et_min_voxels_by_subset"] == post.et_min_voxels_by_subset
    assert record["settings"] == {
        "percentile": 99.0,
        "lesion_margin": 2,
        "tumour_margin": 5,
        "min_brain_voxels": 200,
    }
    assert record["provenance"]["voxels"] == info["data"]


def test_without_healthy_subjects_or_phantoms_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["calibrate", "intensity"])
    assert result.exit_code == 2 and "HEALTHY is needed" in result.output


@pytest.mark.slow
@pytest.mark.real
def test_defaults_on_the_real_data_reproduce_the_shipped_file(tmp_path: Path) -> None:
    if not HEALTHY_REAL.is_dir():
        pytest.skip(f"real healthy subjects not found at {HEALTHY_REAL}")
    out = tmp_path / "baseline.json"
    args = ["calibrate", "intensity", str(HEALTHY_REAL), "--tumour-cases", str(REAL_DATA)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    made, ships = json.loads(out.read_text()), json.loads(shipped_path("intensity").read_text())
    # The commit it was measured at is the one record that names when, not how.
    assert made["provenance"].pop("measured_at_commit")
    ships["provenance"].pop("measured_at_commit")
    assert made == ships
