"""Messages instead of tracebacks (issue 27, item 10): an output folder that cannot be
written, for ``evaluate``, ``merge-reports`` and ``synth``, and a seed out of range.

The tests run as root, whom a read-only folder does not stop: the failures are made
another way (a path under a regular file, a folder where a file must go), and the
read-only folder itself is tried in a child without root's file-mode override
(``tests/unprivileged.py``), skipped where that cannot be had.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io.grid import brats_affine
from brats_goat.stages.sam_backends import SAM_CHECKPOINT_ENV, BackendError, sam_checkpoint_path
from tests.conftest import write_case
from tests.run.test_merge_reports import write_shard
from tests.unprivileged import ROOT, requires_file_modes, run_unprivileged


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def label_map(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((20, 20, 20), np.uint8)
    data[5:10, 5:10, 5:10] = 2
    nib.save(nib.Nifti1Image(data, brats_affine()), path)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A prediction folder and a reference folder with one case each."""
    label_map(tmp_path / "pred" / "A-1.nii.gz")
    label_map(tmp_path / "ref" / "A-1-seg.nii.gz")
    return tmp_path / "pred", tmp_path / "ref"


def assert_message(result, code: int, *parts: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.exc_info[0] is SystemExit
    for part in parts:
        assert part in result.output


def test_evaluate_into_a_folder_that_cannot_be_created(tmp_path: Path, pair) -> None:
    pred, ref = pair
    (tmp_path / "file").write_text("")
    result = run("evaluate", pred, ref, "-o", tmp_path / "file" / "metrics")
    assert_message(result, 2, f"cannot create the output folder {tmp_path}/file/metrics")
    assert_message(result, 2, "Not a directory; give -o another folder")
    assert_message(run("evaluate", pred, ref, "-o", "/proc/x"), 2, "cannot create", "/proc/x")


def test_evaluate_with_metrics_json_a_folder(pair) -> None:
    pred, ref = pair
    (pred / "metrics.json").mkdir()
    result = run("evaluate", pred, ref)
    assert_message(result, 2, f"{pred / 'metrics.json'} exists and is not a file (a folder?)")
    assert_message(result, 2, "remove it, or give -o a folder you can write")


@requires_file_modes
def test_evaluate_with_a_read_only_prediction_folder(pair) -> None:
    pred, ref = pair
    pred.chmod(0o555)
    try:
        done = run_unprivileged(["-m", "brats_goat.cli", "evaluate", str(pred), str(ref)])
    finally:
        pred.chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot write in PRED_DIR, the default output folder," in done.stderr
    assert "give -o a folder you can write" in done.stderr


def test_merge_reports_that_cannot_write_its_report(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 1, {"A": "ok"}, total=1)
    (tmp_path / "report.json").mkdir()  # what stops even root from writing the report
    result = run("merge-reports", tmp_path)
    assert_message(result, 2, f"cannot write the merged report {tmp_path / 'report.json'}")


@requires_file_modes
def test_merge_reports_in_a_read_only_folder(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 1, {"A": "ok"}, total=1)
    tmp_path.chmod(0o555)
    try:
        done = run_unprivileged(["-m", "brats_goat.cli", "merge-reports", str(tmp_path)])
    finally:
        tmp_path.chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Permission denied; give the user running merge-reports write" in done.stderr


def test_synth_into_a_folder_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("synth", tmp_path / "file" / "out", "--cases", 1, "--quiet")
    assert_message(result, 2, f"OUT {tmp_path}/file/out is not a folder you can write")


@requires_file_modes
def test_synth_into_a_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        args = ["-m", "brats_goat.cli", "synth", str(tmp_path / "out"), "--cases", "1"]
        done = run_unprivileged(args)
    finally:
        tmp_path.chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Permission denied" in done.stderr and not (tmp_path / "out").exists()


def test_synth_with_a_negative_seed_is_a_usage_error(tmp_path: Path) -> None:
    result = run("synth", tmp_path / "out", "--cases", 1, "--seed", -1)
    assert_message(result, 2, "--seed", "-1 is not in the range x>=0")
    assert not (tmp_path / "out").exists()


def test_sam_checkpoint_that_is_no_regular_file_is_named_as_such(monkeypatch) -> None:
    """Issue 27, item 18: ``BRATS_GOAT_SAM_CHECKPOINT=/dev/null`` was said not to exist."""
    monkeypatch.setenv(SAM_CHECKPOINT_ENV, "/dev/null")
    with pytest.raises(BackendError) as info:
        sam_checkpoint_path(None)
    assert str(info.value).startswith(
        "SAM checkpoint /dev/null is not a regular file (it is a device, pipe or other "
        "special file): give the checkpoint file itself"
    )


def predict_cmd(inp: Path, out: Path) -> list[str]:
    args = ["predict", str(inp), str(out), "--method", "intensity", "--device", "cpu"]
    return [sys.executable, "-m", "brats_goat.cli", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BRATS_GOAT_REFINE": "none"}


def test_a_successful_run_whose_stdout_fails_exits_0_and_says_why(tmp_path: Path) -> None:
    """Issue 27, item 18: with stdout gone (a closed pipe, a full device) a run whose cases
    all succeeded exited 1 without a word, or with a traceback."""
    write_case(tmp_path / "in", "A-1")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            predict_cmd(tmp_path / "in", tmp_path / "out1"), stdout=full, stderr=subprocess.PIPE,
            text=True, env=child_env(), timeout=300, check=False,
        )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert (
        "WARNING: cannot print to stdout: No space left on device; the report is "
        f"{tmp_path / 'out1' / 'report.json'}"
    ) in done.stderr
    child = subprocess.Popen(
        predict_cmd(tmp_path / "in", tmp_path / "out2"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    assert child.stdout is not None
    child.stdout.close()  # the reader went away before the summary came
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 0 and "Traceback" not in stderr
    assert "WARNING: cannot print to stdout: Broken pipe" in stderr
    assert (tmp_path / "out2" / "A-1.nii.gz").is_file()
