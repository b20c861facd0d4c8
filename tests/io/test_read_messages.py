"""What a refused input's message says (issue 27, item 18): how far apart two grids are,
a tiny voxel that is no zero one, and a gzipped file named ``.nii``."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from tests.conftest import load_error


def test_grids_a_hundredth_of_a_mm_apart_say_by_how_much(case_writer) -> None:
    folder = case_writer("G-1")
    path = folder / "G-1-t2w.nii.gz"
    image = nib.load(path)
    affine = image.affine.copy()
    affine[0, 3] += 0.01
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), path)
    message = load_error(folder)
    assert "t2w file" in message and "different grid than t1c" in message
    assert (
        "affines differ by up to 0.01 in an entry, a voxel placed up to 0.01 mm apart; "
        "tolerance 0.001); co-register the modalities first"
    ) in message


def test_a_tiny_voxel_is_not_called_zero(case_writer) -> None:
    folder = case_writer("V-1", affine=np.diag([0.001, 0.001, 0.001, 1.0]))
    message = load_error(folder)
    assert "zero" not in message
    assert "voxels of 0.001, 0.001, 0.001 mm (1e-09 mm^3; a scan's are at least 1e-06" in message


def test_a_gzipped_file_named_nii_says_to_rename_it(case_writer) -> None:
    folder = case_writer("Z-2", ext=".nii")
    path = folder / "Z-2-t1c.nii"
    path.write_bytes(gzip.compress(path.read_bytes()))
    message = load_error(folder)
    assert str(path) in message
    assert "gzip-compressed but named .nii; rename it to end in .nii.gz (or gunzip it)" in message
