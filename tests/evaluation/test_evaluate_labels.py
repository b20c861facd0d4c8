"""``evaluate`` refuses label maps that are not BraTS 2023 label maps (issue 17, item 7):
a legacy ET = 4 used to score ET Dice 0 with exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.evaluate import evaluate
from brats_goat.evaluation.evaluate import evaluate_folder, score_pair
from brats_goat.evaluation.label_maps import LabelError

SHAPE = (32, 32, 32)


def labels_2023() -> np.ndarray:
    """SNFH around ET around NETC: every BraTS 2023 label present."""
    x, y, z = np.indices(SHAPE)
    r2 = (x - 16) ** 2 + (y - 16) ** 2 + (z - 16) ** 2
    labels = np.zeros(SHAPE, np.uint8)
    labels[r2 <= 100] = 2
    labels[r2 <= 36] = 3
    labels[r2 <= 4] = 1
    return labels


def save(data: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def with_netc_as(value: int, dtype: type) -> np.ndarray:
    """The label map with NETC (1) replaced by ``value``, stored as ``dtype``."""
    labels = labels_2023().astype(dtype)
    labels[labels == 1] = value
    return labels


def legacy(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == 3, 4, labels).astype(np.uint8)


def cli(*args: str | Path):
    return CliRunner().invoke(evaluate, [str(a) for a in args], catch_exceptions=False)


def test_legacy_reference_fails_its_case_naming_file_and_label(tmp_path: Path) -> None:
    pred = save(labels_2023(), tmp_path / "pred" / "A.nii.gz")
    ref = save(legacy(labels_2023()), tmp_path / "ref" / "A-seg.nii.gz")
    save(labels_2023(), tmp_path / "pred" / "B.nii.gz")
    save(labels_2023(), tmp_path / "ref" / "B-seg.nii.gz")
    result = cli(pred.parent, ref.parent)
    assert result.exit_code == 1
    assert f"FAILED A: LabelError: {ref} holds labels 4 outside 0, 1, 2, 3" in result.output
    assert "--legacy-et4" in result.output
    assert "1 case(s) scored" in result.output  # B still scored


def test_legacy_et4_reads_label_4_as_et(tmp_path: Path) -> None:
    pred = save(legacy(labels_2023()), tmp_path / "pred" / "A.nii.gz")
    ref = save(legacy(labels_2023()), tmp_path / "ref" / "A-seg.nii.gz")
    result = cli(pred.parent, ref.parent, "--legacy-et4", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "label 4 (legacy ET) read as ET, 3 (--legacy-et4)" in result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["legacy_et4"] is True
    regions = metrics["cases"]["A"]["regions"]
    assert regions["ET"]["dice"] == pytest.approx(1.0) and regions["ET"]["n_ref_lesions"] == 1


def test_legacy_et4_matches_the_converted_maps(tmp_path: Path) -> None:
    """Reading 4 as 3 scores exactly as a map written with 3 does."""
    shifted = np.roll(labels_2023(), 2, axis=0)
    old = score_pair(
        save(legacy(shifted), tmp_path / "p.nii.gz"),
        save(legacy(labels_2023()), tmp_path / "r.nii.gz"),
        legacy_et4=True,
    )
    new = score_pair(
        save(shifted, tmp_path / "p3.nii.gz"), save(labels_2023(), tmp_path / "r3.nii.gz")
    )
    assert {k: v.as_row() for k, v in old.items()} == {k: v.as_row() for k, v in new.items()}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (lambda: with_netc_as(5, np.int16), "labels 5"),
        (lambda: with_netc_as(-1, np.int16), "labels -1"),
        # int16 would wrap 65539 round to 3 (a valid label) if it were cast before the check
        (lambda: with_netc_as(65539, np.int32), "labels 65539"),
        (lambda: labels_2023().astype(np.float32) * 0.3, "not whole numbers (0.3, 0.6, 0.9"),
        (lambda: np.where(labels_2023() == 1, np.nan, labels_2023()).astype(np.float32), "nan"),
    ],
    ids=["label-5", "negative", "int32-wrap", "probabilities", "nan"],
)
def test_prediction_outside_the_labels_fails_even_with_legacy_et4(
    tmp_path: Path, data, expected: str
) -> None:
    pred = save(data(), tmp_path / "pred" / "A.nii.gz")
    save(labels_2023(), tmp_path / "ref" / "A-seg.nii.gz")
    result = evaluate_folder(pred.parent, tmp_path / "ref", legacy_et4=True)
    assert not result.ok and not result.cases
    assert result.failed["A"].startswith(f"LabelError: {pred}") and expected in result.failed["A"]


def test_float_map_with_header_rounding_is_still_a_label_map(tmp_path: Path) -> None:
    labels = labels_2023()
    pred = save(labels.astype(np.float32) + 1e-5, tmp_path / "p.nii.gz")
    scores = score_pair(pred, save(labels, tmp_path / "r.nii.gz"))
    assert scores["ET"].dice == pytest.approx(1.0)


def test_label_error_is_a_value_error() -> None:
    """Callers that caught the old ValueErrors of a bad label map still catch this one."""
    assert issubclass(LabelError, ValueError)
