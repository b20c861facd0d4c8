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

#: Voxels added on each side of the box: more than any stage reaches past the mask it
#: works in (median 3 -> 1, opening/closing radius 1 -> 2, lesion erosion 3 and dilation 2,
#: ET search dilation 3, hole filling 1).
MARGIN = 8


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


def bounding_box(mask: np.ndarray, margin: int = MARGIN) -> Box:
    """The box around ``mask``'s voxels grown by ``margin`` (clipped to the grid); the
    whole grid when ``mask`` is empty, so an empty case behaves as before."""
    region = masks.bounding_box(mask, margin)
    return Box((region[0], region[1], region[2]), mask.shape)
