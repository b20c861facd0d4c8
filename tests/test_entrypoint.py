"""The container's entry point (entrypoint.sh at the repository root) run directly, without Docker.

Its argument mapping, messages and exit codes, on tiny cases with the tiny checkpoint; the
real image is exercised by ``make container-test``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats_goat.run.placeholder import is_placeholder
from brats_goat.run.report import REPORT_BEGIN, REPORT_END
from tests.cli.test_predict_signals import wait_for_first_case
from tests.conftest import write_case

ENTRYPOINT = Path(__file__).resolve().parents[1] / "entrypoint.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def entrypoint(
    *args: str, weights: Path | None = None, **env_vars: str
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("BRATS_GOAT_REPORT_DIR", "BRATS_GOAT_STRICT"):
        env.pop(name, None)
    env.update(env_vars)
    if weights is not None:
        env["BRATS_GOAT_WEIGHTS"] = str(weights)
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_documents_every_form() -> None:
    result = entrypoint("--help")
    assert result.returncode == 0
    for text in ("--network none", "infer --data_path", "--shard K/N", "merge-reports"):
        assert text in result.stdout


def report_in_log(log: str) -> dict:
    """The full report printed between the marker lines."""
    begin, end = log.index(REPORT_BEGIN), log.index(REPORT_END)
    return json.loads(log[begin + len(REPORT_BEGIN) : end])


def test_mlcube_infer_maps_paths_and_leaves_only_label_maps(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    case_writer("GOOD-1")
    case_writer("BAD-2", skip=("t2f", "t1c"))  # neither residual channel: cannot be segmented
    out = tmp_path / "out"
    out.mkdir()
    result = entrypoint(
        "infer",
        f"--data_path={tmp_path / 'in'}",
        "--output_path",
        str(out),
        "--parameters_file=/mlcube_io3/parameters.yaml",
        weights=tiny_weights,
    )
    log = result.stdout + result.stderr
    # Every input case has its file, so exit 0 (what the orchestrator needs to keep them)...
    assert result.returncode == 0, log
    assert "ignoring MLCube argument --parameters_file" in log
    assert sorted(p.name for p in out.iterdir()) == ["BAD-2.nii.gz", "GOOD-1.nii.gz"]
    # ... and the failure is loud in the log, in the report and in the file's header.
    assert "FAILED BAD-2" in log and "missing modality t1c, t2f" in log
    assert "1 of 2 cases FAILED: BAD-2" in log
    # One ordered stream once segmentation starts: a message written after the report (the
    # FAILED count, the exit line) cannot land inside its JSON where a log joins both.
    after_report = result.stdout.split(REPORT_END, 1)[1]
    assert "1 of 2 cases FAILED" in after_report and "exit 0: every input" in after_report
    assert "FAILED" not in result.stderr
    assert is_placeholder(out / "BAD-2.nii.gz") and not is_placeholder(out / "GOOD-1.nii.gz")
    assert not np.asarray(nib.load(out / "BAD-2.nii.gz").dataobj).any()
    report = report_in_log(log)
    assert report["device"] == "cpu"
    status = {c["case_id"]: c for c in report["cases"]}
    assert status["BAD-2"]["status"] == "failed"
    assert status["BAD-2"]["placeholder"] == str(out / "BAD-2.nii.gz")
    assert status["GOOD-1"]["status"] == "ok" and status["GOOD-1"]["placeholder"] is None
    assert report["summary"] == {"cases": 2, "succeeded": 1, "failed": 1}


def test_strict_switch_keeps_failures_out_and_exits_1(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    case_writer("GOOD-1")
    case_writer("BAD-2", skip=("t2f", "t1c"))
    out, reports = tmp_path / "out", tmp_path / "reports"
    out.mkdir()
    reports.mkdir()
    args = ("infer", f"--data_path={tmp_path / 'in'}", f"--output_path={out}")
    result = entrypoint(
        *args, weights=tiny_weights, BRATS_GOAT_STRICT="1", BRATS_GOAT_REPORT_DIR=str(reports)
    )
    log = result.stdout + result.stderr
    assert result.returncode == 1, log
    assert "some cases FAILED" in log and "FAILED BAD-2" in log
    assert sorted(p.name for p in out.iterdir()) == ["GOOD-1.nii.gz"]
    assert sorted(p.name for p in reports.iterdir()) == ["report.json"]
    report = json.loads((reports / "report.json").read_text())
    assert report == report_in_log(log)
    assert [c["status"] for c in report["cases"]] == ["failed", "ok"]


def test_report_folder_must_exist(tmp_path: Path, case_writer) -> None:
    case_writer("GOOD-1")
    out = tmp_path / "out"
    out.mkdir()
    args = ("infer", f"--data_path={tmp_path / 'in'}", f"--output_path={out}")
    result = entrypoint(*args, BRATS_GOAT_REPORT_DIR=str(tmp_path / "nope"))
    assert result.returncode == 2
    assert f"BRATS_GOAT_REPORT_DIR={tmp_path / 'nope'} is not a folder" in result.stderr
    assert not any(out.iterdir())


def test_no_gpu_warns_and_runs_on_cpu(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("GOOD-1")
    out = tmp_path / "out"
    out.mkdir()
    args = ("infer", f"--data_path={tmp_path / 'in'}", f"--output_path={out}")
    result = entrypoint(*args, weights=tiny_weights)
    assert result.returncode == 0, result.stderr
    if not torch.cuda.is_available():
        assert "WARNING: no GPU visible" in result.stdout
    assert "exit 0: every input case has its label map" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("infer", "--data_path=/nonexistent-input", "--output_path=/tmp"), "no input folder"),
        (("segment",), "unknown command 'segment'"),
        (("infer", "stray"), "unexpected argument 'stray'"),
    ],
)
def test_usage_errors_exit_2_with_a_reason(args: tuple[str, ...], message: str) -> None:
    result = entrypoint(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_output_folder_is_usage_error(tmp_path: Path, case_writer) -> None:
    case_writer("GOOD-1")
    args = ("infer", f"--data_path={tmp_path / 'in'}", f"--output_path={tmp_path / 'nope'}")
    result = entrypoint(*args)
    assert result.returncode == 2 and "no output folder" in result.stderr


@pytest.mark.slow
def test_docker_stop_leaves_an_interrupted_report_and_exits_143(tmp_path: Path) -> None:
    """``docker stop`` sends SIGTERM to the entry point (PID 1), which passes it on: the
    case that was running is marked, the report says interrupted, nothing else is left."""
    inp, out, reports = tmp_path / "in", tmp_path / "out", tmp_path / "reports"
    write_case(inp, "A-1")
    write_case(inp, "B-2", shape=(160, 160, 96))
    write_case(inp, "C-3")
    out.mkdir()
    reports.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("BRATS_GOAT_STRICT", None)
    env["BRATS_GOAT_REPORT_DIR"] = str(reports)
    args = ["infer", f"--data_path={inp}", f"--output_path={out}", "--method", "intensity"]
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for_first_case(reports / "report.json", proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "stopped by a signal" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["A-1.nii.gz"]
    report = json.loads((reports / "report.json").read_text())
    assert report == report_in_log(stdout + stderr)
    assert (report["state"], report["stopped_by"], report["cases_done"]) == (
        "interrupted",
        "SIGTERM",
        1,
    )
    assert [c["status"] for c in report["cases"]] == ["ok", "interrupted"]
