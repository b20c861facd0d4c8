"""``scripts/gpu_check.py`` in its CPU mode (``--device cpu --quick``): every section runs
its real code small, so the script is known to work before it meets a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_quick_on_cpu(tmp_path: Path) -> None:
    write_case(tmp_path / "in", "TINY-1", shape=(48, 48, 16))
    write_case(tmp_path / "in", "TINY-2", shape=(48, 48, 16), seed=1, lesion=False)
    out = tmp_path / "gpu-check.json"
    cmd = [sys.executable, "-m", "scripts.gpu_check", "--device", "cpu", "--quick"]
    cmd += ["--data", str(tmp_path / "in"), "--out", str(out)]
    env = {**os.environ, "BRATS_GOAT_REFINE": "none"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["pass"] is True and result["failed_sections"] == []
    assert result["cases"] == ["TINY-1", "TINY-2"]
    assert result["environment"]["torch"] == __import__("torch").__version__
    predict = result["predict"]
    assert predict["compared"] == "device_cold vs cpu"
    assert set(predict["comparison"]) == {"TINY-1", "TINY-2"}
    # The same device twice in float32: the labels must agree exactly.
    assert predict["min_wt_dice"] == 1.0
    assert predict["runs"]["device_cold"]["precision"] == "float32"
    bf16 = predict["bfloat16_vs_cpu_float32"]
    assert predict["runs"]["device_bfloat16"]["precision"] == "bfloat16"
    assert set(bf16["cases"]) == {"TINY-1", "TINY-2"} and set(bf16["lowest"]) == {"WT", "TC", "ET"}
    assert predict["comparison"]["TINY-1"]["wt_voxels_cpu"] > 0
    stages = predict["runs"]["cpu"]["cases"]["TINY-1"]["stages_s"]
    assert {"read", "normalise", "reconstruct", "anomaly", "labels", "write"} <= set(stages)
    sam = result["sam"]["backend"]
    assert sam["backend"] == "sam" and sam["scores_finite"] and sam["masks_shape"] == [1, 48, 48]
    lite = result["litemedsam"]
    assert lite["backend"]["backend"] == "litemedsam" and lite["backend"]["scores_finite"]
    training = result["training"]
    assert training["architecture"] == "tiny" and training["steps"] == 2
    assert training["losses_finite"]
    assert training["autocast_bf16"] is False and training["forward_output_dtypes"] == [
        "torch.float32"
    ]
    assert training["healthy_slices"] > 0


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal cannot be seen here")
    cmd = [sys.executable, "-m", "scripts.gpu_check", "--out", str(tmp_path / "x.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "x.json").exists()
