"""A case refused by the memory it needs, from its headers, before it is read (issue 27,
item 7): one huge case fails alone with the figures instead of the OOM killer ending the
whole run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io import budget
from brats_goat.io.budget import LIMIT_ENV, MemoryBudget
from brats_goat.io.discover import discover_cases
from brats_goat.io.grid import brats_affine
from brats_goat.io.read import load_case
from tests.conftest import load_error, write_case

#: Voxels of the tiny case (48 x 48 x 20) and of the larger one below (64 x 64 x 40).
TINY, LARGER = 48 * 48 * 20, 64 * 64 * 40


def test_case_over_the_limit_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path / "in", "SMALL")
    write_case(tmp_path / "in", "LARGE", shape=(64, 64, 40))
    per_voxel = MemoryBudget().bytes_per_voxel
    limit_gb = (TINY + LARGER) / 2 * per_voxel / 1e9  # between the two cases' needs
    monkeypatch.setenv(LIMIT_ENV, f"{limit_gb:.9f}")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "in"), str(out), "--method", "intensity", "--quiet"]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 1
    cases = {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}
    assert cases["SMALL"]["status"] == "ok"
    error = cases["LARGE"]["error"]
    assert "LARGE-t1c.nii.gz has 163,840 voxels (64, 64, 40)" in error
    assert f"more than ${LIMIT_ENV}" in error and f"raise ${LIMIT_ENV}" in error


def test_estimate_comes_from_the_header_before_any_voxel_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header claiming the 0.4 mm case's 600 x 600 x 388 voxels, with no voxels behind
    it: refused by its size (3.49 GB needed against 1 GB), never read (it is truncated)."""
    folder = write_case(tmp_path, "FINE")
    header = nib.Nifti1Header()
    header.set_data_shape((600, 600, 388))
    header.set_data_dtype(np.int16)
    header.set_qform(brats_affine(), 1)
    header.set_sform(brats_affine(), 1)
    header["vox_offset"] = 352
    (folder / "FINE-t2f.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    monkeypatch.setenv(LIMIT_ENV, "1")
    message = load_error(folder, allow_missing=True)
    assert "FINE-t2f.nii.gz has 139,680,000 voxels (600, 600, 388)" in message
    assert "about 3.49 GB" in message and "(1.00 GB)" in message


def test_default_limit_is_the_memory_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    monkeypatch.setattr(budget, "available_memory", lambda: TINY * 10)
    assert "more than the memory available" in load_error(
        write_case(tmp_path, "C-1"), allow_missing=True
    )
    monkeypatch.setattr(budget, "available_memory", lambda: TINY * 100)
    (case,) = discover_cases(tmp_path / "C-1")
    load_case(case)  # 25 bytes per voxel fit


def test_no_known_memory_is_no_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    monkeypatch.setattr(budget, "available_memory", lambda: None)
    (case,) = discover_cases(write_case(tmp_path, "C-1"))
    load_case(case)


@pytest.mark.parametrize("value", ["lots", "0", "-3", "inf", "nan"])
def test_bad_limit_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(LIMIT_ENV, value)
    assert f"${LIMIT_ENV}={value!r} is not a positive number of GB" in load_error(
        write_case(tmp_path, "C-1"), allow_missing=True
    )


def test_available_memory_reads_the_system() -> None:
    available = budget.available_memory()
    assert available is None or available > 0
