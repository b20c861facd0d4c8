"""``evaluate`` reads every reference ``predict`` reads (issue 27, item 13): BraTS 2021's
``<ID>_seg.nii.gz`` in case folders and flat, uncompressed ``.nii``, and a 4-D (X, Y, Z, 1)
label map."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.evaluation.evaluate import evaluate_folder
from brats_goat.evaluation.pairing import find_references
from brats_goat.io.grid import brats_affine


def labels() -> np.ndarray:
    data = np.zeros((24, 24, 24), np.uint8)
    data[6:14, 6:14, 6:14] = 2
    data[8:11, 8:11, 8:11] = 3
    return data


def save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, brats_affine()), path)
    return path


@pytest.mark.parametrize(
    "reference",
    [
        "BraTS2021_00001/BraTS2021_00001_seg.nii.gz",
        "BraTS2021_00001_seg.nii.gz",
        "BraTS2021_00001/BraTS2021_00001-seg.nii",
        "BraTS2021_00001_seg.nii",
        "BraTS2021_00001.nii",
    ],
)
def test_references_predict_accepts_are_scored(tmp_path: Path, reference: str) -> None:
    save(tmp_path / "pred" / "BraTS2021_00001.nii.gz", labels())
    save(tmp_path / "ref" / reference, labels())
    result = evaluate_folder(tmp_path / "pred", tmp_path / "ref")
    assert result.ok and not result.missing and not result.unpaired
    assert result.cases["BraTS2021_00001"]["WT"].dice == 1.0


def test_a_4d_reference_of_one_volume_is_scored(tmp_path: Path) -> None:
    save(tmp_path / "pred" / "A-1.nii.gz", labels())
    save(tmp_path / "ref" / "A-1-seg.nii.gz", labels()[..., None])
    result = evaluate_folder(tmp_path / "pred", tmp_path / "ref")
    assert result.ok, result.failed
    assert result.cases["A-1"]["ET"].dice == 1.0


def test_gzipped_and_seg_names_are_preferred(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    for name in ("A-1.nii", "A-1_seg.nii", "A-1_seg.nii.gz", "A-1-ref.nii.gz"):
        save(ref / name, labels())
    save(ref / "B-2" / "B-2_seg.nii", labels())
    save(ref / "B-2" / "B-2_seg.nii.gz", labels())
    save(ref / "C_t1.nii", labels())  # an image, never a reference
    assert find_references(ref) == {
        "A-1": ref / "A-1_seg.nii.gz",
        "B-2": ref / "B-2" / "B-2_seg.nii.gz",
    }


def test_a_case_named_like_an_anomaly_map_is_scored(tmp_path: Path) -> None:
    """A case ``X-anomaly-t2f`` (legal, and written by predict without --save-maps) was
    taken for an anomaly map and scored as an empty prediction; maps are still passed over."""
    save(tmp_path / "pred" / "X-anomaly-t2f.nii.gz", labels())
    save(tmp_path / "pred" / "Y.nii.gz", labels())
    save(tmp_path / "pred" / "Y-anomaly-t2f.nii.gz", labels().astype(np.float32))
    save(tmp_path / "ref" / "X-anomaly-t2f" / "X-anomaly-t2f-seg.nii.gz", labels())
    save(tmp_path / "ref" / "Y" / "Y-seg.nii.gz", labels())
    result = evaluate_folder(tmp_path / "pred", tmp_path / "ref")
    assert result.ok and not result.missing and not result.unpaired
    assert result.cases["X-anomaly-t2f"]["WT"].dice == 1.0
