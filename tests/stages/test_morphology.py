"""Shift-based binary morphology gives scipy.ndimage's voxels exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.stages.anomaly import inplane_cross
from brats_goat.stages.morphology import closing, dilate, erode, opening


def _disk(radius: int) -> np.ndarray:
    disk = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), radius)
    return disk[..., None]


STRUCTURES = {
    "default": None,
    "cross-NHW": np.moveaxis(inplane_cross(), 2, 0),
    "cross-XYZ": inplane_cross(),
    "cube": np.ones((3, 3, 3), dtype=bool),
    "disk-2": _disk(2),
}


def _masks() -> list[np.ndarray]:
    """Sparse, medium and dense masks, touching every face of the array (where erosion
    treats the outside as background and nothing may wrap around)."""
    rng = np.random.default_rng(1)
    masks = []
    for density in (0.02, 0.3, 0.9):
        mask = rng.random((9, 23, 17)) < density
        mask[0, 0, 0] = mask[-1, -1, -1] = mask[4, 0, 8] = mask[4, -1, 8] = True
        masks.append(mask)
    masks.append(np.ones((6, 7, 8), dtype=bool))
    return masks


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_dilate_and_erode_are_scipys(name: str) -> None:
    structure = STRUCTURES[name]
    for mask in _masks():
        for iterations in (1, 2, 3):
            got = dilate(mask, structure, iterations)
            want = ndimage.binary_dilation(mask, structure=structure, iterations=iterations)
            np.testing.assert_array_equal(got, want)
            got = erode(mask, structure, iterations)
            want = ndimage.binary_erosion(mask, structure=structure, iterations=iterations)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_opening_and_closing_are_scipys(name: str) -> None:
    structure = STRUCTURES[name]
    for mask in _masks():
        want = ndimage.binary_opening(mask, structure=structure)
        np.testing.assert_array_equal(opening(mask, structure), want)
        want = ndimage.binary_closing(mask, structure=structure)
        np.testing.assert_array_equal(closing(mask, structure), want)


def test_structures_and_iterations_it_cannot_do_exactly_are_refused() -> None:
    mask = np.zeros((4, 4, 4), dtype=bool)
    lopsided = np.zeros((3, 3, 3), dtype=bool)
    lopsided[1, 1, 1:] = True
    for structure, message in (
        (lopsided, "symmetric"),
        (np.ones((2, 3, 3), dtype=bool), "odd"),
        (np.ones((3, 3), dtype=bool), "dimensions"),
    ):
        for operation in (dilate, erode):
            with pytest.raises(ValueError, match=message):
                operation(mask, structure)
    with pytest.raises(ValueError, match="iterations"):
        dilate(mask, iterations=0)  # scipy would read 0 as "until nothing changes"


def test_the_input_is_left_as_it_was() -> None:
    mask = _masks()[1]
    before = mask.copy()
    dilate(mask, iterations=2), erode(mask, iterations=2), closing(mask), opening(mask)
    np.testing.assert_array_equal(mask, before)
