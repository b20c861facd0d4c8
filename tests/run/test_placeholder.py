"""The empty label map written in place of a failed case (``--on-case-failure placeholder``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io.discover import discover_cases
from brats_goat.io.grid import BRATS_SHAPE, brats_affine
from brats_goat.run.placeholder import PLACEHOLDER_DESCRIP, is_placeholder, write_placeholder
from tests.conftest import rewrite_header_raw, write_case


def test_geometry_comes_from_the_first_readable_header(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "CASE-1", affine=np.diag([-1.0, -1.0, 2.0, 1.0]))
    (folder / "CASE-1-t1n.nii.gz").write_bytes(b"garbage")  # the first modality is unreadable
    (case,) = discover_cases(tmp_path / "in")
    path, on_brats_grid = write_placeholder(case, tmp_path / "out")
    assert path == tmp_path / "out" / "CASE-1.nii.gz" and not on_brats_grid
    image, ref = nib.load(path), nib.load(folder / "CASE-1-t1c.nii.gz")
    assert image.shape == ref.shape and image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.affine, ref.affine)
    assert int(image.header["qform_code"]) == int(ref.header["qform_code"]) == 1
    assert not np.asarray(image.dataobj).any()
    assert image.header["descrip"].item().decode() == PLACEHOLDER_DESCRIP
    assert is_placeholder(path)
    assert not is_placeholder(folder / "CASE-1-t1c.nii.gz")


def test_no_readable_header_gives_the_brats_grid(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "CASE-1")
    for path in folder.glob("CASE-1-t*.nii.gz"):
        path.write_bytes(b"garbage")
    (case,) = discover_cases(tmp_path / "in")
    path, on_brats_grid = write_placeholder(case, tmp_path / "out")
    assert on_brats_grid and is_placeholder(path)
    image = nib.load(path)
    assert image.shape == BRATS_SHAPE and image.header.get_zooms() == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(image.affine, brats_affine())


def claim_shape(path: Path, shape: tuple[int, int, int]) -> None:
    """Make ``path``'s header claim ``shape`` (its voxel data stays as it is)."""

    def edit(header: nib.Nifti1Header) -> None:
        header["dim"][1:4] = shape

    rewrite_header_raw(path, edit)


def zero_voxel_size(path: Path) -> None:
    def edit(header: nib.Nifti1Header) -> None:
        header["srow_x"][:3] = 0
        header["pixdim"][1] = 0

    rewrite_header_raw(path, edit)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda p: claim_shape(p, (4000, 4000, 4000)), id="4000^3-voxels"),
        pytest.param(lambda p: claim_shape(p, (2000, 2000, 2000)), id="2000^3-voxels"),
        pytest.param(lambda p: claim_shape(p, (48, 48, 1)), id="one-slice"),
        pytest.param(zero_voxel_size, id="zero-voxel-size"),
    ],
)
def test_a_header_the_case_is_refused_for_is_passed_over(tmp_path: Path, corrupt) -> None:
    """Issue 27, item 5: the placeholder took the first header nibabel could parse, even
    the one the case failed for: 4000^3 voxels gave a MemoryError and no placeholder,
    2000^3 an 8-gigavoxel empty map. It takes the next usable header instead."""
    folder = write_case(tmp_path / "in", "CASE-1", affine=np.diag([-1.0, -1.0, 2.0, 1.0]))
    corrupt(folder / "CASE-1-t1c.nii.gz")  # t1c: the first modality, the reference
    (case,) = discover_cases(tmp_path / "in")
    path, on_brats_grid = write_placeholder(case, tmp_path / "out")
    image, ref = nib.load(path), nib.load(folder / "CASE-1-t1n.nii.gz")
    assert not on_brats_grid and image.shape == ref.shape
    np.testing.assert_allclose(image.affine, ref.affine)


def test_every_header_refused_gives_the_brats_grid(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "CASE-1")
    for path in folder.glob("CASE-1-t*.nii.gz"):
        claim_shape(path, (2000, 2000, 2000))
    (case,) = discover_cases(tmp_path / "in")
    path, on_brats_grid = write_placeholder(case, tmp_path / "out")
    assert on_brats_grid and nib.load(path).shape == BRATS_SHAPE
