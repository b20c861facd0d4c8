"""Stored calibration results: each records its settings, and a file whose settings are not
what ``brats-goat calibrate <name>`` uses now warns once, naming how it was made."""

from __future__ import annotations

import dataclasses
import json
import warnings
from importlib import resources

import pytest

from brats_goat import calibrated
from brats_goat.calibrated import (
    RESULTS,
    CalibrationSettingsWarning,
    check_settings,
    settings_message,
    stored_result,
)


def shipped(name: str) -> dict:
    return json.loads(resources.files("brats_goat").joinpath(RESULTS[name].file).read_text())


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_shipped_files_record_todays_settings_and_do_not_warn(name: str) -> None:
    record = shipped(name)
    assert record["settings"] == RESULTS[name].defaults
    assert record["provenance"]["command"] == RESULTS[name].command(record["settings"])
    calibrated._read.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationSettingsWarning)
        assert stored_result(name) == record


def test_a_changed_setting_warns_naming_the_file_the_setting_and_the_command() -> None:
    record = shipped("enhancement")
    record["settings"]["percentile"] = 99.0
    with pytest.warns(CalibrationSettingsWarning) as caught:
        check_settings(record, RESULTS["enhancement"], "site/enhancement.json")
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("site/enhancement.json was made with other settings")
    assert "percentile=99.0 (default now 99.5)" in message
    assert "grow_percentile" not in message.split(";")[0]  # only what differs
    command = "brats-goat calibrate enhancement HEALTHY --percentile 99 --grow-percentile 85"
    assert f"`{command} --write`" in message
    assert "healthy-real: MS-PAT07" in message  # the data it was made on


def test_a_file_without_settings_warns() -> None:
    record = shipped("tumour")
    del record["settings"]
    message = settings_message(record, RESULTS["tumour"], "tumour.json")
    assert message is not None
    assert "t2w_percentile=None (default now 50.0)" in message
    assert "records no settings" in message


def test_the_shipped_file_warns_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dataclasses.replace(RESULTS["tumour"], defaults={"t2w_percentile": 60.0})
    monkeypatch.setitem(RESULTS, "tumour", changed)
    calibrated._read.cache_clear()
    with pytest.warns(CalibrationSettingsWarning) as caught:
        first = stored_result("tumour")
        first["thresholds"]["t2w_z_p50"] = 9.0  # a copy: the next reader is unaffected
        second = stored_result("tumour")
    calibrated._read.cache_clear()
    assert len(caught) == 1 and "brats_goat/tumour.json" in str(caught[0].message)
    assert second["thresholds"]["t2w_z_p50"] == shipped("tumour")["thresholds"]["t2w_z_p50"]
    assert "t1c_percentile=10.0 (default now None)" in str(caught[0].message)
