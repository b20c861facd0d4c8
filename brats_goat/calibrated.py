"""The calibration results that ship as data, and the settings each was made with.

Each JSON file holds measured values, a ``settings`` block (what ``brats-goat calibrate
<name>`` was run with) and its provenance. Reading one through :func:`stored_result` warns
once per process when its settings are not what the command would use today: then the file
is not what rerunning the command gives, and the warning says how to reproduce it.

The defaults live here, not in ``brats_goat.calibration``, so that the stages can check a
file without importing calibration code; the calibration commands take their defaults
from ``RESULTS``.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Any

#: The placeholder the recorded commands use for their data folder(s).
HEALTHY = "HEALTHY"
TUMOUR_CASES = "TUMOUR_CASES"
#: The intensity baseline is measured on healthy subjects and the far slices of tumours.
TISSUE_DATA = f"{HEALTHY} --tumour-cases {TUMOUR_CASES}"


@dataclass(frozen=True)
class ResultSpec:
    """One stored result: its file in the package and the subcommand that writes it."""

    #: Subcommand of ``brats-goat calibrate`` (also the key of ``RESULTS``).
    name: str
    #: File name inside the ``brats_goat`` package.
    file: str
    #: The subcommand's positional arguments and fixed options, as recorded.
    data: str
    #: Setting -> the value the subcommand uses by default (its option is ``--<setting>``
    #: with ``_`` as ``-``).
    defaults: dict[str, float | int]

    def command(self, settings: dict[str, Any]) -> str:
        """The command line that makes this file with ``settings``."""
        options = " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in settings.items())
        return f"brats-goat calibrate {self.name} {self.data} {options} --write"


RESULTS: dict[str, ResultSpec] = {
    spec.name: spec
    for spec in (
        ResultSpec("enhancement", "enhancement.json", HEALTHY, {
            "percentile": 99.5,
            "grow_percentile": 85.0,
        }),
        ResultSpec("tumour", "tumour.json", HEALTHY, {
            "t2w_percentile": 50.0,
            "t1c_percentile": 10.0,
        }),
        ResultSpec("intensity", "intensity_baseline.json", TISSUE_DATA, {
            "percentile": 99.9,
            "lesion_margin": 2,
            "tumour_margin": 5,
            "min_brain_voxels": 2000,
        }),
    )
}  # fmt: skip


class CalibrationSettingsWarning(UserWarning):
    """A stored calibration result was made with settings other than today's defaults."""


def changed_settings(record: dict[str, Any], spec: ResultSpec) -> dict[str, tuple[Any, Any]]:
    """Setting -> (stored, default) for every setting where ``record`` and the defaults of
    ``spec`` differ (a setting the record lacks is stored as None)."""
    stored = record.get("settings", {})
    keys = list(spec.defaults) + [k for k in stored if k not in spec.defaults]
    return {
        k: (stored.get(k), spec.defaults.get(k))
        for k in keys
        if stored.get(k) != spec.defaults.get(k)
    }


def settings_message(record: dict[str, Any], spec: ResultSpec, where: str) -> str | None:
    """What the warning says about ``record`` (read from ``where``); None: nothing differs."""
    changed = changed_settings(record, spec)
    if not changed:
        return None
    differ = ", ".join(f"{k}={old} (default now {new})" for k, (old, new) in changed.items())
    stored = record.get("settings")
    data = record.get("provenance", {}).get("data")
    again = f"made by `{spec.command(stored)}`" if stored else "one that records no settings"
    return (
        f"{where} was made with other settings than `brats-goat calibrate {spec.name}` "
        f"uses now: {differ}; it is {again}" + (f" (data: {data})" if data else "")
    )


def check_settings(record: dict[str, Any], spec: ResultSpec, where: str) -> None:
    """Warn (``CalibrationSettingsWarning``) when ``record``'s settings are not today's."""
    message = settings_message(record, spec, where)
    if message is not None:
        warnings.warn(message, CalibrationSettingsWarning, stacklevel=2)


@functools.cache
def _read(name: str) -> dict[str, Any]:
    """The shipped file of ``RESULTS[name]``, checked once per process."""
    spec = RESULTS[name]
    record = json.loads(resources.files("brats_goat").joinpath(spec.file).read_text())
    check_settings(record, spec, f"brats_goat/{spec.file}")
    return record


def stored_result(name: str) -> dict[str, Any]:
    """The shipped result ``name`` (a key of ``RESULTS``), a copy the caller may change."""
    return copy.deepcopy(_read(name))
