"""`brats-goat predict` against faults: a full disk, a report that cannot be written, files
left by killed runs, and a second run into the same OUTPUT.

The full disk is injected at the lowest level the writer has: the NIfTI or report bytes go
to the temporary file, then ``ENOSPC`` is raised there, as the kernel would. Everything else
(discovery, loading, the model, the report) is the real code.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import nibabel as nib
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io import write as write_module
from brats_goat.run import lock
from brats_goat.run.lock import LOCK_NAME, lock_folders
from brats_goat.run.report import REPORT_BEGIN, REPORT_END


def run(args: list[object]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def predict_args(inp: Path, out: Path, weights: Path, *extra: object) -> list[object]:
    return ["predict", inp, out, "--weights", weights, "--quiet", *extra]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def three_cases(tmp_path: Path, case_writer) -> Path:
    for case_id in ("A-1", "B-2", "C-3"):
        case_writer(case_id)
    return tmp_path / "in"


def test_full_disk_fails_only_the_case_that_could_not_be_written(
    tmp_path: Path, three_cases: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = nib.save

    def save(image: nib.Nifti1Image, filename: str) -> None:
        if Path(filename).name.startswith(".B-2.nii.gz."):
            Path(filename).write_bytes(b"\x1f\x8b partial")  # what got out before ENOSPC
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(image, filename)

    monkeypatch.setattr(nib, "save", save)
    out = tmp_path / "out"
    result = run(predict_args(three_cases, out, tiny_weights))
    assert result.exit_code == 1
    assert listing(out) == ["A-1.nii.gz", "C-3.nii.gz", "report.json"], "no temp, no lock"
    report = json.loads((out / "report.json").read_text())
    assert (report["state"], report["cases_total"], report["cases_done"]) == ("finished", 3, 3)
    cases = {c["case_id"]: c for c in report["cases"]}
    assert cases["A-1"]["status"] == cases["C-3"]["status"] == "ok"
    assert cases["B-2"]["status"] == "failed"
    assert cases["B-2"]["error"] == (
        f"case B-2: cannot write {out / 'B-2.nii.gz'}: [Errno 28] No space left on device"
    )
    assert "FAILED B-2: case B-2: cannot write" in result.output


def test_full_disk_with_maps_leaves_no_half_case(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maps were written, the label map was not: the case fails and leaves nothing."""
    folder = case_writer("A-1")
    real_save = nib.save

    def save(image: nib.Nifti1Image, filename: str) -> None:
        if Path(filename).name.startswith(".A-1.nii.gz."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(image, filename)

    monkeypatch.setattr(nib, "save", save)
    out = tmp_path / "out"
    result = run(predict_args(folder, out, tiny_weights, "--save-maps"))
    assert result.exit_code == 1
    assert listing(out) == ["report.json"]


class FailingReport:
    """``ENOSPC`` from fsync on the report's temporary file, at the chosen writes (1 = the
    write before the first case, then one per case, then the final one)."""

    def __init__(self, failing: set[int]) -> None:
        self.failing, self.count = failing, 0
        self.real = write_module._fsync

    def __call__(self, name: str) -> None:
        if Path(name).name.startswith(".report.json."):
            self.count += 1
            if self.count in self.failing:
                raise OSError(errno.ENOSPC, "No space left on device")
        self.real(name)


def test_report_that_cannot_be_written_is_removed_and_exits_3(
    tmp_path: Path, three_cases: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes 4 (after the last case) and 5 (the final state) fail: the report of write 3
    would say 2 of 3 cases and "running"; a stale report is removed, not left to be read."""
    monkeypatch.setattr(write_module, "_fsync", FailingReport({4, 5}))
    out = tmp_path / "out"
    result = run(predict_args(three_cases, out, tiny_weights, "--print-report"))
    assert result.exit_code == 3
    assert listing(out) == ["A-1.nii.gz", "B-2.nii.gz", "C-3.nii.gz"]
    error = f"cannot write the report {out / 'report.json'}: [Errno 28] No space left on device"
    assert f"ERROR: {error}; the out-of-date report there was removed" in result.stderr
    assert f"exit 3: {error}" in result.stderr
    printed = json.loads(result.stdout.split(REPORT_BEGIN)[1].split(REPORT_END)[0])
    assert printed["report_file_error"] == error
    assert (printed["state"], printed["cases_done"]) == ("finished", 3)


def test_report_recovers_after_one_failed_write(
    tmp_path: Path, three_cases: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_module, "_fsync", FailingReport({3}))
    out = tmp_path / "out"
    result = run(predict_args(three_cases, out, tiny_weights))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert (report["state"], report["cases_done"], report["report_file_error"]) == (
        "finished",
        3,
        None,
    )


STALE = [
    ".A-1.nii.gz.abcd1234.tmp.nii.gz",
    ".A-1-anomaly-t2f.nii.gz.x_y_z_99.tmp.nii.gz",
    ".report.json.zz_99xyz.tmp",
    "qc/.A-1.png.k2k2k2k2.tmp.png",
    ".brats-goat-write-test.4242",
    ".brats-goat.shard-2-of-4.lock",
]
NOT_OURS = ["notes.txt", ".hidden.tmp", ".A-1.nii.gz.tmp", "qc/other.png"]


def plant(out: Path, names: list[str]) -> None:
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"")


def test_files_left_by_killed_runs_are_removed_and_reported(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    folder = case_writer("A-1")
    out = tmp_path / "out"
    plant(out, STALE + NOT_OURS)
    result = run(predict_args(folder, out, tiny_weights))
    assert result.exit_code == 0, result.output
    assert listing(out) == sorted(["A-1.nii.gz", "qc", "report.json", *NOT_OURS])
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["stale_files_removed"]) == sorted(str(out / n) for n in STALE)
    assert f"removed {len(STALE)} file(s) left by an earlier run" in result.stderr


def test_a_shard_removes_only_its_own_stale_files(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Other shards may be writing into the same OUTPUT right now: their files stay."""
    case_writer("A-1")
    case_writer("B-2")
    out = tmp_path / "out"
    own = [".A-1.nii.gz.aaaaaaaa.tmp.nii.gz", ".report-shard-1-of-2.json.cccccccc.tmp"]
    others = [
        ".B-2.nii.gz.bbbbbbbb.tmp.nii.gz",
        ".report-shard-2-of-2.json.dddddddd.tmp",
        ".brats-goat-write-test.17",
    ]
    plant(out, own + others)
    result = run(predict_args(tmp_path / "in", out, tiny_weights, "--shard", "1/2"))
    assert result.exit_code == 0, result.output
    assert listing(out) == sorted(["A-1.nii.gz", "report-shard-1-of-2.json", *others])
    report = json.loads((out / "report-shard-1-of-2.json").read_text())
    assert sorted(report["stale_files_removed"]) == sorted(str(out / n) for n in own)


def test_second_run_into_a_busy_output_is_refused(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other run holds OUTPUT's lock (a separate open file, as another process's):
    exit 2 naming the folder and the PID, and nothing of the other run is touched."""
    monkeypatch.setattr(lock, "RETRY_S", 0.2)
    folder = case_writer("A-1")
    out = tmp_path / "out"
    plant(out, ["report.json", ".A-1.nii.gz.abcd1234.tmp.nii.gz"])
    with lock_folders([("OUTPUT", out)], None):
        before = listing(out)
        result = run(predict_args(folder, out, tiny_weights))
        assert result.exit_code == 2
        assert f"OUTPUT {out} is in use by another brats-goat run" in result.output
        assert f"PID {os.getpid()} on host" in result.output
        assert listing(out) == before
    result = run(predict_args(folder, out, tiny_weights))
    assert result.exit_code == 0, result.output
    assert LOCK_NAME not in listing(out)
