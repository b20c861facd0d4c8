"""QC pictures: the PNG written by ``predict --qc-png`` and the choice of slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.run.qc import qc_slices


def run(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_qc_png_written_with_reference(tmp_path: Path, case_writer) -> None:
    folder = case_writer("QC-1")
    out = tmp_path / "out"
    args = ["predict", folder, out, "--method", "intensity", "--qc-png", "--quiet"]
    assert run(args).exit_code == 0
    png = out / "qc" / "QC-1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert "qc" in case["timings_s"] and not case["warnings"]


def test_qc_slices_pick_largest_tumour_area() -> None:
    labels = np.zeros((10, 10, 30), np.uint8)
    labels[2:8, 2:8, 20] = 2
    labels[4:6, 4:6, 5] = 1
    assert qc_slices(labels, None) == [5, 20]
    assert qc_slices(np.zeros_like(labels), None) == [15]
