"""Residual maps, the analysis mask and the case score."""

from __future__ import annotations

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.stages.anomaly import analysis_mask, case_score, residual_maps
from brats_goat.stages.postprocess import PostprocessConfig


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
