"""The empty label map written in place of a failed case (``--on-case-failure placeholder``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.io.discover import discover_cases
from brats_goat.run.placeholder import PLACEHOLDER_DESCRIP, is_placeholder, write_placeholder
from tests.conftest import write_case


def test_geometry_comes_from_the_first_readable_header(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "CASE-1", affine=np.diag([-1.0, -1.0, 2.0, 1.0]))
    (folder / "CASE-1-t1n.nii.gz").write_bytes(b"garbage")  # the first modality is unreadable
    (case,) = discover_cases(tmp_path / "in")
    path = write_placeholder(case, tmp_path / "out")
    assert path == tmp_path / "out" / "CASE-1.nii.gz"
    image, ref = nib.load(path), nib.load(folder / "CASE-1-t1c.nii.gz")
    assert image.shape == ref.shape and image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.affine, ref.affine)
    assert int(image.header["qform_code"]) == int(ref.header["qform_code"]) == 1
    assert not np.asarray(image.dataobj).any()
    assert image.header["descrip"].item().decode() == PLACEHOLDER_DESCRIP
    assert is_placeholder(path)
    assert not is_placeholder(folder / "CASE-1-t1c.nii.gz")


def test_no_readable_header_writes_nothing(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "CASE-1")
    for path in folder.glob("CASE-1-t*.nii.gz"):
        path.write_bytes(b"garbage")
    (case,) = discover_cases(tmp_path / "in")
    assert write_placeholder(case, tmp_path / "out") is None
    assert not (tmp_path / "out").exists()
