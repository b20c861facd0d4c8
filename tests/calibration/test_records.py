"""The common layout of stored calibration results."""

from __future__ import annotations

import json
from pathlib import Path

from brats_goat.calibrated import RESULTS
from brats_goat.calibration.records import make_record, shipped_path, write_record


def test_records_carry_settings_and_the_command_that_makes_them(tmp_path: Path) -> None:
    settings = {"percentile": 99.0, "grow_percentile": 80.0}
    record = make_record("enhancement", "why", {"et_threshold_z": 2.0}, settings, {"data": "d"})
    assert list(record) == ["about", "et_threshold_z", "settings", "provenance"]
    assert record["provenance"] == {
        "command": "brats-goat calibrate enhancement HEALTHY --percentile 99 "
        "--grow-percentile 80 --write",
        "data": "d",
    }
    write_record(tmp_path / "x.json", record)
    assert json.loads((tmp_path / "x.json").read_text()) == record


def test_shipped_paths_are_the_package_files() -> None:
    for name, spec in RESULTS.items():
        path = shipped_path(name)
        assert path.name == spec.file and path.parent.name == "brats_goat" and path.is_file()
