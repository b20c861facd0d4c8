"""Residual maps, the analysis mask and the case score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.anomaly import analysis_mask, case_score, median3_inplane, residual_maps


def test_residual_maps_signed_and_masked() -> None:
    shape = (4, 30, 30, 6)
    norm = np.zeros(shape, np.float32)
    brain = np.zeros(shape[1:], bool)
    brain[3:27, 3:27] = True
    t2f = MODALITIES.index("t2f")
    norm[t2f, 10:15, 10:15] = 4.0
    norm[t2f, 20:23, 20:23] = -4.0
    cfg = PostprocessConfig(median_size=0, brain_erosion=1)
    mask = analysis_mask(brain, cfg.brain_erosion)
    maps = residual_maps(norm, np.zeros(shape, np.float32), mask, cfg)
    assert maps["t2f"][12, 12, 2] == 4.0 and maps["t2f"][21, 21, 2] == -4.0
    assert maps["t2f"][3, 3, 2] == 0  # eroded edge
    assert case_score(maps, brain) > 3
    assert analysis_mask(brain, 0) is brain


@pytest.mark.parametrize(
    "shape", [(1, 1, 2), (1, 6, 3), (2, 3, 1), (5, 1, 2), (5, 6, 3), (31, 40, 4)]
)
def test_median3_inplane_is_scipys_median_filter(shape: tuple[int, int, int]) -> None:
    """The column-sorted median gives scipy's 3x3 in-plane median exactly, with its edge
    rule, on noise, on ties and on flat stretches, one row or column wide too (where the
    sorting network before it wrote into its own padding)."""
    rng = np.random.default_rng(sum(shape))
    noise = rng.normal(size=shape).astype(np.float32)
    ties = np.round(noise)
    flat = np.where(noise > 0.3, np.float32(0), noise)
    for volume in (noise, ties, flat):
        want = ndimage.median_filter(volume, size=(3, 3, 1))
        np.testing.assert_array_equal(median3_inplane(volume), want)
