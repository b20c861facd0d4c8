"""Small helpers on binary masks, one of each, for reading, the stages, training and scoring.

The bottom layer of the package: numpy and scipy only, nothing from ``brats_goat``, so that
any module may use them without an import running upwards. Each one had grown a copy in
several modules; the copies differed only in what they returned for an empty mask, which
the one helper here returns in a form every caller can use as it did.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: The 3x3x3 cube: 26-connected components, the connectivity of the BraTS lesion-wise
#: metric and of every 3D component the stages keep or drop.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding ``mask``'s non-zero voxels, grown by ``margin``
    on each side and clipped to the array (stops exclusive, as slicing wants them).

    The whole array (``slice(None)`` per axis) when ``mask`` is empty: cropping to it then
    changes nothing, so a caller needs no special case for an empty mask.
    """
    inside = mask if mask.dtype == bool else mask != 0
    box = []
    for axis in range(inside.ndim):
        others = tuple(a for a in range(inside.ndim) if a != axis)
        hit = np.flatnonzero(inside.any(axis=others))
        if hit.size == 0:
            return (slice(None),) * inside.ndim
        lo = max(int(hit[0]) - margin, 0)
        hi = min(int(hit[-1]) + 1 + margin, inside.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks; both empty -> 1 (nothing to find, nothing found)."""
    n_a, n_b = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if n_a + n_b == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / (n_a + n_b)


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 26-connected components of a 3D ``mask``: labels (int32, 0 outside, 1..n) and
    their number ``n``, as ``scipy.ndimage.label`` gives them."""
    return ndimage.label(mask, structure=CONNECTIVITY_26)


def fill_holes_axial(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice along the last (axial) axis: a necrotic core is enclosed
    in-plane by its rim even where the rim is open above or below."""
    out = np.empty_like(mask)
    for z in range(mask.shape[2]):
        out[..., z] = ndimage.binary_fill_holes(mask[..., z])
    return out
