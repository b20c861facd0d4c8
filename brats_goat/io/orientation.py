"""The storage order the model works in, and the flips and swaps to and from it.

The model was trained on axial slices in the BraTS storage order (LPS). Cases stored in
another order (BraTS-MET-00110-000 is RAS) are reoriented on read and oriented back on
write, so results never depend on how the array happens to be stored.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    io_orientation,
    ornt_transform,
)

#: Storage order the model works in (that of BraTS 2023 releases).
CANONICAL_AXCODES: tuple[str, str, str] = ("L", "P", "S")


def canonical_transform(image: nib.Nifti1Image) -> np.ndarray:
    """The axis flips and swaps that take ``image``'s stored order to the canonical one."""
    return ornt_transform(io_orientation(image.affine), axcodes2ornt(CANONICAL_AXCODES))


def stored_transform(image: nib.Nifti1Image) -> np.ndarray:
    """The flips and swaps that take the canonical order back to ``image``'s stored one."""
    return ornt_transform(axcodes2ornt(CANONICAL_AXCODES), io_orientation(image.affine))


def in_order_of(transform: np.ndarray, canonical: np.ndarray, image: nib.Nifti1Image) -> np.ndarray:
    """``canonical`` (``image`` in its own canonical order) in the order ``transform`` (the
    case's reference file's) gives. The two agree unless the affines, equal within the
    grid tolerance, sit on an orientation's edge (an oblique scan near 45 degrees)."""
    own = canonical_transform(image)
    if np.array_equal(own, transform):
        return canonical
    return reoriented(apply_orientation(canonical, stored_transform(image)), transform)


def reoriented(array: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(apply_orientation(array, transform), dtype=np.float32)
