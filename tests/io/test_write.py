"""Atomic writes: a full disk or a signal never leaves a partial or temporary file, and the
temporary files a killed run leaves are recognised by their names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io import write as write_module
from brats_goat.io.write import (
    find_temp_files,
    write_atomic,
    write_nifti_atomic,
    write_text_atomic,
)
from brats_goat.run.interrupt import RunInterrupted


def disk_full(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_at_flush_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where space runs out only when the data reach the disk (delayed allocation), fsync
    raises: the rename never happens, the previous file stays whole."""
    target = tmp_path / "report.json"
    write_text_atomic('{"old": true}\n', target)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic('{"new": true}\n', target)
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_signal_during_a_write_removes_the_temp_file(tmp_path: Path) -> None:
    seen: list[str] = []

    def interrupted(name: str) -> None:
        Path(name).write_bytes(b"half a file")
        seen.append(name)
        raise RunInterrupted(15)

    with pytest.raises(RunInterrupted):
        write_atomic(tmp_path / "CASE-1.nii.gz", interrupted, suffix=".tmp.nii.gz")
    assert seen and not Path(seen[0]).exists()
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_complete_and_readable_by_everyone(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), np.eye(4))
    path = write_nifti_atomic(image, tmp_path / "sub" / "CASE-1.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), image.get_fdata())
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["CASE-1.nii.gz"]


@pytest.mark.parametrize(
    ("target", "suffix"),
    [("CASE-1.nii.gz", ".tmp.nii.gz"), ("report-shard-2-of-4.json", ".tmp"), ("X.png", ".tmp.png")],
)
def test_temp_names_of_a_killed_write_are_found(tmp_path: Path, target: str, suffix: str) -> None:
    """The very name ``write_atomic`` used, recreated as a SIGKILL would have left it."""
    names: list[str] = []

    def killed(name: str) -> None:
        names.append(Path(name).name)
        raise OSError("stop here")

    with pytest.raises(OSError):
        write_atomic(tmp_path / target, killed, suffix=suffix)
    leftover = tmp_path / names[0]
    leftover.write_bytes(b"")
    for name in (".notes.txt", "CASE-1.tmp", ".CASE-1.nii.gz.tmp", "CASE-2.nii.gz"):
        (tmp_path / name).write_bytes(b"")  # not ours: never taken for a temporary file
    assert find_temp_files(tmp_path) == [(leftover, target)]
    assert find_temp_files(tmp_path / "missing") == []


def test_nifti_writer_goes_through_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(write_module, "_fsync", synced.append)
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    write_nifti_atomic(image, tmp_path / "A.nii.gz")
    assert len(synced) == 1 and Path(synced[0]).name.startswith(".A.nii.gz.")
