"""Run a command for which file modes apply, even when the tests run as root.

A ``chmod 000`` file stops a normal user but not root, who holds CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH; CI containers run as root. ``setpriv`` drops both capabilities from
the bounding set of the child, so the real permission checks happen there, on real files.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Capabilities that let root ignore file modes.
BYPASS_CAPS = "-dac_override,-dac_read_search"


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, f"--bounding-set={BYPASS_CAPS}"] if setpriv else []


@functools.cache
def file_modes_apply() -> bool:
    """Whether a child started by ``run_unprivileged`` is stopped by a ``chmod 000``."""
    if os.geteuid() != 0:
        return True
    if not _prefix():
        return False
    probe = subprocess.run([*_prefix(), "true"], capture_output=True, check=False)
    return probe.returncode == 0


requires_file_modes = pytest.mark.skipif(
    not file_modes_apply(), reason="running as root without setpriv: file modes do not apply"
)


def run_unprivileged(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``python args...`` with this checkout importable, under real file permission checks."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [*_prefix(), sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def brats_goat(*args: str | Path) -> subprocess.CompletedProcess:
    """The ``brats-goat`` command line, run by ``run_unprivileged``."""
    return run_unprivileged(["-m", "brats_goat.cli", *map(str, args)])
