"""The reference-path switch: scipy's own filters on the whole grid, by config or by the
environment, and only inside the block that asks for it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.stages.anomaly import median3_inplane
from brats_goat.stages.crop import stage_box
from brats_goat.stages.morphology import dilate, erode
from brats_goat.stages.reference import REFERENCE_ENV, reference_on, reference_path

#: An element the fast path refuses (it handles symmetric elements only); scipy takes it.
ASYMMETRIC = np.array([[0, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)


def test_the_switch_runs_scipy_and_only_inside_its_block() -> None:
    mask = np.zeros((9, 9), dtype=bool)
    mask[3:6, 4] = True
    with pytest.raises(ValueError, match="symmetric"):
        dilate(mask, ASYMMETRIC)
    with reference_path():
        assert reference_on()
        np.testing.assert_array_equal(
            dilate(mask, ASYMMETRIC), ndimage.binary_dilation(mask, ASYMMETRIC)
        )
        np.testing.assert_array_equal(
            erode(mask, ASYMMETRIC), ndimage.binary_erosion(mask, ASYMMETRIC)
        )
        with reference_path(False):  # an inner "no" leaves the outer choice in force
            assert reference_on()
    assert not reference_on()


def test_the_environment_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    brain = np.zeros((20, 20, 8), dtype=bool)
    brain[5:10, 6:12, 2:5] = True
    assert stage_box(brain, margin=1).region == (slice(4, 11), slice(5, 13), slice(1, 6))
    monkeypatch.setenv(REFERENCE_ENV, "1")
    assert reference_on()
    assert stage_box(brain, margin=1).region == (slice(None),) * 3


def test_the_fast_median_equals_the_reference() -> None:
    volume = np.random.default_rng(0).normal(size=(2, 17, 13, 5)).astype(np.float32)
    fast = median3_inplane(volume[0])
    with reference_path():
        reference = median3_inplane(volume[0])
    np.testing.assert_array_equal(fast, reference)
    np.testing.assert_array_equal(
        reference, ndimage.median_filter(volume[0], size=(3, 3, 1), mode="reflect")
    )


def test_overlapping_blocks_leave_in_any_order() -> None:
    """The read thread's normalisation and the main thread's stages enter and leave their
    blocks in any order: the first to leave must not switch the other off."""
    first, second = reference_path(), reference_path()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert reference_on()
    second.__exit__(None, None, None)
    assert not reference_on()
