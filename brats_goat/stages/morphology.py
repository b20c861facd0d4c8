"""Binary morphology by shifted unions and intersections: scipy.ndimage's voxels, faster.

``scipy.ndimage.binary_dilation`` and ``binary_erosion`` visit every voxel with the whole
structuring element, once per iteration. For the small symmetric elements the pipeline
uses (the in-plane cross, the 6-connected cross, a 2D disk), the same result is the union
(dilation) or intersection (erosion) of the mask shifted by each offset of the element:
a handful of whole-array boolean operations, 3-10x faster on a brain's box (issue 18).

Edges follow scipy's defaults (``border_value=0``): dilation shifts zeros in, and erosion
counts the outside as background, so it clears the voxels next to the array's edge. Every
function here is tested voxel for voxel against scipy's own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brats_goat.stages.reference import reference_on


def _offsets(structure: np.ndarray, ndim: int) -> list[tuple[int, ...]]:
    """The structuring element's offsets from its centre; only odd, symmetric elements of
    the mask's dimension (where scipy's reflection and origin cannot matter)."""
    if structure.ndim != ndim or any(n % 2 == 0 for n in structure.shape):
        raise ValueError("the structure must have the mask's dimensions and odd sizes")
    if not np.array_equal(structure, np.flip(structure)):
        raise ValueError("the structure must be symmetric")
    centre = np.array(structure.shape) // 2
    return [tuple(int(d) for d in o - centre) for o in np.argwhere(structure)]


def _part(offset: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Where a shift by ``offset`` lands in an array of ``shape`` (negated: where it comes
    from)."""
    return tuple(slice(max(d, 0), n + min(d, 0)) for d, n in zip(offset, shape, strict=True))


def _prepare(
    mask: np.ndarray, structure: np.ndarray | None, iterations: int
) -> list[tuple[int, ...]]:
    """The offsets of ``structure`` (None: scipy's default, the cross of the face
    neighbours); at least one iteration (scipy reads 0 as "until nothing changes")."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if structure is None:
        structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return _offsets(structure, mask.ndim)


def dilate(
    mask: np.ndarray, structure: np.ndarray | None = None, iterations: int = 1
) -> np.ndarray:
    """``ndimage.binary_dilation(mask, structure, iterations)`` (``iterations`` >= 1)."""
    if reference_on():
        return ndimage.binary_dilation(mask, structure, max(iterations, 1))
    offsets = _prepare(mask, structure, iterations)
    for _ in range(iterations):
        grown = np.zeros(mask.shape, dtype=bool)
        for offset in offsets:
            back = tuple(-d for d in offset)
            grown[_part(offset, mask.shape)] |= mask[_part(back, mask.shape)]
        mask = grown
    return mask


def erode(mask: np.ndarray, structure: np.ndarray | None = None, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_erosion(mask, structure, iterations)`` (``iterations`` >= 1)."""
    if reference_on():
        return ndimage.binary_erosion(mask, structure, max(iterations, 1))
    offsets = _prepare(mask, structure, iterations)
    for _ in range(iterations):
        kept = mask.astype(bool, copy=True)
        for offset in offsets:
            back = tuple(-d for d in offset)
            kept[_part(offset, mask.shape)] &= mask[_part(back, mask.shape)]
            # Voxels whose neighbour at -offset lies outside the array: the outside is 0.
            for axis, d in enumerate(offset):
                if d > 0:
                    kept[(slice(None),) * axis + (slice(0, d),)] = False
                elif d < 0:
                    kept[(slice(None),) * axis + (slice(mask.shape[axis] + d, None),)] = False
        mask = kept
    return mask


def opening(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """``ndimage.binary_opening(mask, structure)``: erosion, then dilation."""
    return dilate(erode(mask, structure), structure)


def closing(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """``ndimage.binary_closing(mask, structure)``: dilation, then erosion."""
    return erode(dilate(mask, structure), structure)
