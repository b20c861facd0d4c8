"""Checks between a case's modalities: one grid, one brain, distinct images.

Each file can be a valid scan and the case still wrong: a sequence on another grid or
moved against the others puts its residual, and so the labels, in the wrong place; one
file copied under two names gives labels unrelated to the tumour. These refuse such a case
with a ``CaseError`` naming the files.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from brats_goat.io.errors import CaseError

#: Pearson correlation over the brain above which two modalities are one image rescaled
#: (a copy saved with another scaling or type, or with noise added). Distinct sequences of
#: the 31 development cases correlate at most 0.88 (MS-PAT19's t1c and t1n;
#: ``scripts/measure_skull_strip.py --correlations``); a copy of BrainLes-example's t2f with
#: 3% noise, 0.997 (it gave 125,001 ET voxels, "ok", at the former limit of 0.9999).
SAME_IMAGE_CORRELATION = 0.98
#: Dice of two modalities' brain masks (non-zero voxels) below which they are not one
#: co-registered, skull-stripped scan: at least 0.961 on the development cases
#: (BraTS-MET-00110-000), 0.953 with t1c shifted by 3 mm, 0.908 by 6 mm (which gave
#: labels "ok" on the misplaced enhancement).
MIN_MASK_DICE = 0.93
#: Every n-th voxel enters the comparison (enough for four decimals, and cheap).
CORRELATION_STRIDE = 7


def affine_gap(image: nib.Nifti1Image, reference: nib.Nifti1Image, atol: float) -> str:
    """How far two voxel-to-world matrices are apart, for a message: the largest
    difference of an entry and of a voxel's position (mm), against the tolerance."""
    gap = float(np.abs(image.affine - reference.affine).max())
    if gap <= atol:
        return "affines equal"
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in image.shape[:3]])).reshape(3, -1)
    moved = nib.affines.apply_affine(image.affine, corners.T)
    moved -= nib.affines.apply_affine(reference.affine, corners.T)
    shift = float(np.linalg.norm(moved, axis=1).max())
    return (
        f"affines differ by up to {gap:.3g} in an entry, a voxel placed up to {shift:.3g} mm "
        f"apart; tolerance {atol:g}"
    )


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, atol: float) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=atol)


def same_image(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal voxel for voxel, or a linear function of each other where both have brain, up
    to noise (``SAME_IMAGE_CORRELATION``)."""
    if np.array_equal(a, b):
        return True
    x, y = a.ravel()[::CORRELATION_STRIDE], b.ravel()[::CORRELATION_STRIDE]
    inside = (x != 0) & (y != 0)
    x, y = x[inside].astype(np.float64), y[inside].astype(np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) > SAME_IMAGE_CORRELATION


def check_overlap(case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]) -> None:
    """``CaseError`` when two modalities' brains do not overlap as one co-registered,
    skull-stripped scan's do (``MIN_MASK_DICE``): a sequence moved against the others
    puts its residual, and so the labels, in the wrong place without any other sign."""
    masks = {m: a != 0 for m, a in arrays.items()}
    sizes = {m: int(np.count_nonzero(v)) for m, v in masks.items()}
    present = list(arrays)
    for i, first in enumerate(present):
        for other in present[i + 1 :]:
            total = sizes[first] + sizes[other]
            both = int(np.count_nonzero(masks[first] & masks[other]))
            overlap = 2 * both / total if total else 1.0
            if overlap < MIN_MASK_DICE:
                raise CaseError(
                    f"case {case_id}: the brains of {first} file {files[first]} and {other} "
                    f"file {files[other]} overlap by Dice {overlap:.3f} only (one co-registered, "
                    f"skull-stripped scan: >= {MIN_MASK_DICE}): co-register the sequences "
                    "and strip them with one brain mask (the BraTS preprocessing)"
                )


def check_distinct(case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]) -> None:
    """``CaseError`` when two modalities hold the same image: one file copied under two
    names (a t1c that is the t2f gave 12x the normal ET; four copies of one file, labels
    unrelated to the tumour), also when saved with another scaling. No two real sequences
    of a scan are one image."""
    present = list(arrays)
    for i, first in enumerate(present):
        same = [m for m in present[i + 1 :] if same_image(arrays[first], arrays[m])]
        if same:
            names = ", ".join(f"{m} file {files[m]}" for m in [first, *same])
            raise CaseError(
                f"case {case_id}: {names} hold the same image (voxel for voxel, or up to a "
                "scale, offset and noise): one file copied under several sequences' names. Put "
                "each sequence's own image in its file (or leave a sequence out: t2f or "
                "t1c is enough)"
            )
