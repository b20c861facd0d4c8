"""Writing a stored calibration result: its values, the settings it was made with, the
command that makes it again and its data, in one layout for every file
(``brats_goat.calibrated`` reads them back and checks the settings)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from brats_goat.calibrated import RESULTS

#: The package's own folder: ``--write`` replaces the shipped file there.
#: The package folder the shipped results live in (this module is two levels below it).
PACKAGE = Path(__file__).resolve().parent.parent


def shipped_path(name: str) -> Path:
    """Where the shipped file of ``RESULTS[name]`` lives (in a source checkout: the tree)."""
    return PACKAGE / RESULTS[name].file


def make_record(
    name: str,
    about: str,
    values: dict[str, Any],
    settings: dict[str, Any],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """``about``, the measured ``values``, the ``settings`` block and the provenance, which
    starts with the command that makes the record again."""
    return {
        "about": about,
        **values,
        "settings": settings,
        "provenance": {"command": RESULTS[name].command(settings), **provenance},
    }


def write_record(path: Path, record: dict[str, Any]) -> None:
    """``record`` as the shipped files are written (2-space JSON, a final newline)."""
    path.write_text(json.dumps(record, indent=2) + "\n")


def source_commit() -> str:
    """The short commit of the checkout the package runs from ('' outside git)."""
    found = subprocess.run(
        ["git", "-C", str(PACKAGE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else ""
