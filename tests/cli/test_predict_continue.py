"""`brats-goat predict --continue` (issue 27): a case whose label map an earlier run left
valid in OUTPUT is not segmented again, and says so in the report; anything else in its
place (a placeholder, a truncated file, another grid, other values) is segmented again.

The intensity method (no weights) keeps these runs fast; what they test is the same for both.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

import brats_goat.run.predict as predict_module
from brats_goat.cli.main import main
from brats_goat.io.discover import discover_cases
from brats_goat.run.interrupt import RunInterrupted
from brats_goat.run.placeholder import is_placeholder, write_placeholder
from brats_goat.run.predict import predict as run_predict
from brats_goat.run.report import RunReport
from tests.conftest import write_case

INTENSITY = ("--method", "intensity", "--refine", "none")


def predict(inp: Path, out: Path, *extra: str):
    args = ["predict", str(inp), str(out), *INTENSITY, *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def cases(out: Path) -> dict[str, dict]:
    return {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}


def test_continue_keeps_valid_label_maps_and_reruns_the_rest(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    for i, case_id in enumerate(("A-1", "B-2", "C-3")):
        write_case(inp, case_id, seed=i)
    assert predict(inp, out, "--quiet").exit_code == 0
    first = cases(out)
    kept = (out / "A-1.nii.gz").stat()
    # B-2 failed in the earlier run (its placeholder), C-3's file was cut short, D-4 is new
    # and E-5 fails in this run.
    (b,) = discover_cases(inp / "B-2")
    write_placeholder(b, out)
    data = (out / "C-3.nii.gz").read_bytes()
    (out / "C-3.nii.gz").write_bytes(data[: len(data) // 2])
    write_case(inp, "D-4", seed=3)
    broken = write_case(inp, "E-5", seed=4)
    for modality in ("t1c", "t2f"):  # a case fails when no readable t1c or t2f is left
        (broken / f"E-5-{modality}.nii.gz").write_bytes(b"not nifti")

    result = predict(inp, out, "--continue")
    assert result.exit_code == 1, result.output  # E-5 failed: the exit code stays truthful
    assert "--continue: 1 of 5 cases have a valid label map" in result.output
    assert "1 of them skipped (--continue): the label map of an earlier run is valid: A-1" in (
        result.output
    )
    second = cases(out)
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {"cases": 5, "succeeded": 4, "failed": 1}
    assert (report["cases_total"], report["cases_done"], report["state"]) == (5, 5, "finished")
    a = second["A-1"]
    assert a["status"] == "ok" and "not segmented again" in a["skipped"]
    assert a["output"] == str(out / "A-1.nii.gz") and a["timings_s"] == {}
    assert a["voxels_per_label"] == first["A-1"]["voxels_per_label"]
    after = (out / "A-1.nii.gz").stat()
    assert (after.st_ino, after.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    for case_id in ("B-2", "C-3", "D-4"):
        assert second[case_id]["status"] == "ok" and second[case_id]["skipped"] is None
        assert "read" in second[case_id]["timings_s"]
    assert "placeholder of a failed case" in second["B-2"]["warnings"][0]
    assert not is_placeholder(out / "B-2.nii.gz")
    assert "cannot be read" in second["C-3"]["warnings"][0]
    assert second["C-3"]["voxels_per_label"] == first["C-3"]["voxels_per_label"]
    assert not any("--continue" in w for w in second["D-4"]["warnings"])
    assert second["E-5"]["status"] == "failed" and second["E-5"]["skipped"] is None


def relabel(path: Path, change: Callable[[np.ndarray, nib.Nifti1Image], nib.Nifti1Image]) -> None:
    image = nib.load(path)
    nib.save(change(np.asarray(image.dataobj), image), path)


DAMAGE = {
    "label 7": (
        lambda d, im: nib.Nifti1Image(np.where(d == 0, d, 7).astype(np.uint8), im.affine),
        "values other than the labels 0-3",
    ),
    "int16": (
        lambda d, im: nib.Nifti1Image(d.astype(np.int16), im.affine),
        "its voxels are int16, not uint8",
    ),
    "another grid": (
        lambda d, im: nib.Nifti1Image(d[:, :, :-2], im.affine),
        "is not the input's",
    ),
    "shifted": (
        lambda d, im: nib.Nifti1Image(d, im.affine + np.pad(np.ones((3, 1)), ((0, 1), (3, 0)))),
        "its affine is not the input's",
    ),
}


@pytest.mark.parametrize("damage", [*DAMAGE, "maps missing"])
def test_continue_segments_an_invalid_label_map_again(tmp_path: Path, damage: str) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    assert predict(inp, out, "--quiet").exit_code == 0
    first = cases(out)["A-1"]
    extra = ()
    if damage == "maps missing":  # kept only with the maps this run is to write
        extra, expected = ("--save-maps",), "A-1-anomaly-t1c.nii.gz, A-1-anomaly-t2f.nii.gz missing"
    else:
        change, expected = DAMAGE[damage]
        relabel(out / "A-1.nii.gz", change)
    result = predict(inp, out, "--quiet", "--continue", *extra)
    assert result.exit_code == 0, result.output
    case = cases(out)["A-1"]
    assert case["skipped"] is None and "read" in case["timings_s"]
    assert case["warnings"][0].startswith("--continue: segmented again")
    assert expected in case["warnings"][0]
    assert case["voxels_per_label"] == first["voxels_per_label"]
    image = nib.load(out / "A-1.nii.gz")
    assert image.get_data_dtype() == np.uint8 and image.shape == (48, 48, 20)


def test_signal_between_cases_marks_the_next_case_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results --continue keeps come first in the report: a signal between two cases
    still marks the case that was due next (it used to count the kept ones as run)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for i, case_id in enumerate(("A-1", "B-2", "C-3")):
        write_case(inp, case_id, seed=i)
    assert predict(inp, out, "--quiet").exit_code == 0
    (out / "B-2.nii.gz").unlink()
    (out / "C-3.nii.gz").unlink()
    saves = []
    save_report = predict_module.save_report

    def save(report: RunReport, folder: Path) -> None:  # the signal lands once B-2 is saved
        saves.append(len(report.cases))
        save_report(report, folder)
        if len(saves) == 2:
            raise RunInterrupted(signal.SIGTERM)

    monkeypatch.setattr(predict_module, "save_report", save)
    with pytest.raises(RunInterrupted) as info:
        run_predict(inp, out, method="intensity", quiet=True, resume=True)
    report = info.value.report
    assert report is not None and report.state == "interrupted"
    assert [(c.case_id, c.status) for c in report.cases] == [
        ("A-1", "ok"),
        ("B-2", "ok"),
        ("C-3", "interrupted"),
    ]
    assert report.cases[0].skipped and report.progress_line().endswith("1 interrupted")


def file_counts(path: Path) -> dict[str, int]:
    counts = np.bincount(np.asarray(nib.load(path).dataobj).ravel(), minlength=4)
    return {str(k): int(counts[k]) for k in (1, 2, 3)}


def test_a_resampled_case_reports_the_counts_of_its_file_in_both_runs(tmp_path: Path) -> None:
    """Probe round 3, F4: a case off the 1 mm grid reported the 1 mm frame's voxel counts
    (a 0.5 mm case a quarter of its file's), and --continue then the file's: the numbers
    changed between two runs of one label map. Both now count the file as written."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "H-1", affine=np.diag([-2.0, -2.0, 2.0, 1.0]) @ np.eye(4))
    assert predict(inp, out, "--quiet").exit_code == 0
    first = cases(out)["H-1"]
    assert first["resampled"] and sum(first["voxels_per_label"].values()) > 0
    assert first["voxels_per_label"] == file_counts(out / "H-1.nii.gz")
    assert predict(inp, out, "--quiet", "--continue").exit_code == 0
    second = cases(out)["H-1"]
    assert second["skipped"] and second["voxels_per_label"] == first["voxels_per_label"]


def test_continue_segments_again_a_case_whose_input_changed_after_its_label_map(
    tmp_path: Path,
) -> None:
    """Probe round 3, F5: a case's t2f replaced after the run (another patient's) kept the
    earlier label map under --continue. An input file newer than the label map (or a link
    to one, retargeted) now has the case segmented again, saying which file."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(inp, "B-2", seed=1)
    assert predict(inp, out, "--quiet").exit_code == 0
    later = (out / "A-1.nii.gz").stat().st_mtime + 5
    changed = inp / "A-1" / "A-1-t2f.nii.gz"
    os.utime(changed, (later, later))
    result = predict(inp, out, "--continue")
    assert result.exit_code == 0, result.output
    second = cases(out)
    assert second["B-2"]["skipped"]
    a = second["A-1"]
    assert a["skipped"] is None and "read" in a["timings_s"]
    assert a["warnings"][0].startswith("--continue: segmented again")
    assert f"its input {changed} was changed (written, replaced or moved)" in a["warnings"][0]
    assert (out / "A-1.nii.gz").stat().st_mtime > later - 5


def test_continue_segments_again_a_case_whose_input_was_moved_in_after_it(
    tmp_path: Path,
) -> None:
    """F5 as the probe did it: another patient's t2f put in place of the case's. Moved in
    (``mv``), the file keeps its modification time from before the run: its change time
    says it is new."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(tmp_path / "other", "Z-9", seed=5)
    assert predict(inp, out, "--quiet").exit_code == 0
    moved = tmp_path / "other" / "Z-9" / "Z-9-t2f.nii.gz"
    assert moved.stat().st_mtime < (out / "A-1.nii.gz").stat().st_mtime
    os.replace(moved, inp / "A-1" / "A-1-t2f.nii.gz")
    assert predict(inp, out, "--quiet", "--continue").exit_code == 0
    a = cases(out)["A-1"]
    assert a["skipped"] is None and "A-1-t2f.nii.gz was changed" in a["warnings"][0]
