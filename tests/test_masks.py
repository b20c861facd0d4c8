"""The mask helpers against plain numpy/scipy on random masks, empty ones included."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from scipy import ndimage

from brats_goat import masks
from brats_goat.masks import bounding_box, connected_components, dice, fill_holes_axial

SEEDS = range(10)


def random_mask(seed: int, shape: tuple[int, ...] = (13, 11, 9)) -> np.ndarray:
    """Empty, sparse and dense masks (one in five empty, some of a voxel or two), so every
    edge of the box moves."""
    rng = np.random.default_rng(seed)
    density = (0.0, 0.002, 0.02, 0.2, 0.6)[seed % 5]
    return rng.random(shape) < density


def reference_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """First and last non-zero index per axis (np.argwhere), grown and clipped."""
    found = np.argwhere(mask)
    if found.size == 0:
        return (slice(None),) * mask.ndim
    lo, hi = found.min(axis=0), found.max(axis=0)
    return tuple(
        slice(max(int(a) - margin, 0), min(int(b) + 1 + margin, n))
        for a, b, n in zip(lo, hi, mask.shape, strict=True)
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("margin", [0, 1, 3, 20])
def test_bounding_box_is_the_grown_and_clipped_box_of_the_voxels(seed: int, margin: int) -> None:
    mask = random_mask(seed)
    box = bounding_box(mask, margin)
    assert box == reference_box(mask, margin)
    assert np.count_nonzero(mask[box]) == np.count_nonzero(mask)


@pytest.mark.parametrize("seed", SEEDS)
def test_bounding_box_without_margin_is_scipys_object_box(seed: int) -> None:
    """As ``find_objects`` (none for an empty mask: then the whole array)."""
    mask = random_mask(seed)
    (found,) = ndimage.find_objects(mask.astype(np.uint8)) or [(slice(None),) * mask.ndim]
    assert bounding_box(mask) == found


def test_bounding_box_of_a_single_voxel_and_of_other_ranks() -> None:
    mask = np.zeros((6, 7, 8), dtype=bool)
    mask[0, 3, 7] = True
    assert bounding_box(mask) == (slice(0, 1), slice(3, 4), slice(7, 8))
    assert bounding_box(mask, margin=2) == (slice(0, 3), slice(1, 6), slice(5, 8))
    flat = np.zeros((5, 9), dtype=bool)
    flat[1:3, 4] = True
    assert bounding_box(flat, margin=1) == (slice(0, 4), slice(3, 6))


@pytest.mark.parametrize("margin", [0, 4])
def test_bounding_box_of_an_empty_mask_is_the_whole_array(margin: int) -> None:
    empty = np.zeros((4, 5, 6), dtype=bool)
    box = bounding_box(empty, margin)
    assert box == (slice(None),) * 3
    assert empty[box].shape == empty.shape


@pytest.mark.parametrize("seed", SEEDS)
def test_bounding_box_of_an_image_is_that_of_its_non_zero_voxels(seed: int) -> None:
    mask = random_mask(seed)
    image = np.where(mask, np.random.default_rng(seed).normal(size=mask.shape), 0.0)
    if mask.any():
        image[tuple(np.argwhere(mask)[0])] = np.nan  # NaN is not zero: inside the box
    assert bounding_box(image.astype(np.float32), 2) == reference_box(image != 0, 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_dice_is_twice_the_overlap_over_the_sizes(seed: int) -> None:
    a, b = random_mask(seed), random_mask(seed + 100)
    total = np.sum(a) + np.sum(b)
    expected = 2 * np.sum(a & b) / total if total else 1.0
    assert dice(a, b) == pytest.approx(expected, rel=1e-12)
    assert dice(a, b) == dice(b, a)
    if a.any():
        assert dice(a, a) == 1.0


def test_dice_of_empty_masks() -> None:
    empty, full = np.zeros((3, 4), dtype=bool), np.ones((3, 4), dtype=bool)
    assert dice(empty, empty) == 1.0  # nothing to find, nothing found
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_connected_components_are_scipys_26_connected_labels(seed: int) -> None:
    mask = random_mask(seed)
    labels, n = connected_components(mask)
    expected, expected_n = ndimage.label(mask, ndimage.generate_binary_structure(3, 3))
    assert n == expected_n
    assert labels.dtype == expected.dtype
    np.testing.assert_array_equal(labels, expected)


def test_connected_components_join_voxels_that_touch_at_a_corner() -> None:
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # corner to corner: one 26-connected component
    mask[3, 3, 3] = True
    labels, n = connected_components(mask)
    assert n == 2
    assert labels[0, 0, 0] == labels[1, 1, 1] != labels[3, 3, 3]
    empty_labels, empty_n = connected_components(np.zeros((3, 3, 3), dtype=bool))
    assert empty_n == 0 and not empty_labels.any()


def reference_fill(plane: np.ndarray) -> np.ndarray:
    """A plane with its holes filled: everything but the background 4-connected to the
    plane's border."""
    background, _ = ndimage.label(~plane)
    edge = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    outside = np.isin(background, edge[edge > 0])
    return ~outside


@pytest.mark.parametrize("seed", SEEDS)
def test_fill_holes_axial_fills_each_axial_slice_on_its_own(seed: int) -> None:
    mask = random_mask(seed, (12, 10, 5))
    filled = fill_holes_axial(mask)
    assert filled.dtype == mask.dtype and filled.shape == mask.shape
    for z in range(mask.shape[2]):
        np.testing.assert_array_equal(filled[..., z], reference_fill(mask[..., z]))


def test_fill_holes_axial_fills_a_tube_open_at_both_ends() -> None:
    tube = np.zeros((7, 7, 4), dtype=bool)
    tube[1:6, 1:6, :] = True
    tube[2:5, 2:5, :] = False  # a hole through every slice: no 3D hole, but in-plane ones
    filled = fill_holes_axial(tube)
    assert filled[2:5, 2:5, :].all() and not filled[0].any()
    assert not ndimage.binary_fill_holes(tube)[3, 3, 0]
    assert not fill_holes_axial(np.zeros((3, 3, 2), dtype=bool)).any()


def test_masks_imports_nothing_from_the_package() -> None:
    """The bottom layer: any module may import it without an arrow back up."""
    tree = ast.parse(inspect.getsource(masks))
    imported = [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    ]
    assert imported and all(
        name.split(".")[0] in {"__future__", "numpy", "scipy"} for name in imported
    ), imported
