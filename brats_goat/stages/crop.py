"""The brain's bounding box: the 3D stages work on it instead of the whole grid.

The brain fills about a third of a 240x240x155 BraTS grid, and every voxel the 3D stages
(median filter, morphology, components, hole filling) touch outside it is background that
stays background. Working on the box plus a margin and pasting the result back gives the
same result as the whole grid, as long as the margin is wider than any operation reaches:
a median window or a dilation then never sees the box's edge where the grid had tissue,
and the background ring keeps every outer region connected to the border (hole filling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brats_goat import masks
from brats_goat.stages.reference import reference_on


@dataclass(frozen=True)
class Box:
    """A sub-box of a (X, Y, Z) grid; arrays may carry leading (channel) axes."""

    region: tuple[slice, slice, slice]
    shape: tuple[int, int, int]

    def crop(self, array: np.ndarray) -> np.ndarray:
        """A view of ``array``'s last three axes inside the box."""
        return array[(..., *self.region)]

    def paste(self, array: np.ndarray) -> np.ndarray:
        """``array`` (the box's content) back on the whole grid, zero (False) outside."""
        out = np.zeros((*array.shape[:-3], *self.shape), dtype=array.dtype)
        out[(..., *self.region)] = array
        return out


def margin_for(reaches: dict[str, int]) -> int:
    """The box's margin for stages whose operations reach ``reaches`` voxels past the
    mask they start from (name -> voxels): the farthest reach, one voxel more so that no
    window ends on the box's edge, and one more of background all round, which keeps every
    outer region connected to the border (hole filling)."""
    return max(reaches.values(), default=0) + 2


def stage_box(mask: np.ndarray, margin: int) -> Box:
    """``bounding_box``, or the whole grid on the reference path (``stages.reference``)."""
    if reference_on():
        return Box((slice(None),) * 3, mask.shape)
    return bounding_box(mask, margin)


def bounding_box(mask: np.ndarray, margin: int) -> Box:
    """The box around ``mask``'s voxels grown by ``margin`` (clipped to the grid); the
    whole grid when ``mask`` is empty, so an empty case behaves as before."""
    region = masks.bounding_box(mask, margin)
    return Box((region[0], region[1], region[2]), mask.shape)
