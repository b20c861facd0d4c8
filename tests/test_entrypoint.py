"""The container's entry point (entrypoint.sh at the repository root) run directly, without Docker.

Its argument mapping, messages and exit codes, on tiny cases with the tiny checkpoint; the
real image is exercised by ``make container-test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ENTRYPOINT = Path(__file__).resolve().parents[1] / "entrypoint.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def entrypoint(*args: str, weights: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
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


def test_mlcube_infer_maps_paths_and_reports_a_broken_case(
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
    assert result.returncode == 1, log
    assert "ignoring MLCube argument --parameters_file" in log
    assert "FAILED BAD-2" in log and "missing modality t1c, t2f" in log
    assert "some cases FAILED" in log
    assert sorted(p.name for p in out.iterdir()) == ["GOOD-1.nii.gz", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["device"] == "cpu"


def test_no_gpu_warns_and_runs_on_cpu(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("GOOD-1")
    out = tmp_path / "out"
    out.mkdir()
    args = ("infer", f"--data_path={tmp_path / 'in'}", f"--output_path={out}")
    result = entrypoint(*args, weights=tiny_weights)
    assert result.returncode == 0, result.stderr
    if not torch.cuda.is_available():
        assert "WARNING: no GPU visible" in result.stderr
    assert "done: every case segmented" in result.stderr


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
