"""The 3D stages on the brain's box give what they give on the whole grid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import brats_goat.segmenter as segmenter_module
from brats_goat.conventions import MODALITIES
from brats_goat.segmenter import IntensitySegmenter, PipelineConfig
from brats_goat.stages.crop import Box, bounding_box
from brats_goat.stages.normalise import (
    NormaliseConfig,
    brain_mask,
    lesion_mask,
    normalise_case,
    zscore,
)
from tests.conftest import synthetic_volumes


def test_bounding_box_grows_by_the_margin_clips_and_pastes_back() -> None:
    mask = np.zeros((20, 30, 10), dtype=bool)
    mask[5:8, 0:4, 3] = True
    box = bounding_box(mask, margin=2)
    assert box.region == (slice(3, 10), slice(0, 6), slice(1, 6))
    values = np.arange(2 * 20 * 30 * 10, dtype=np.float32).reshape(2, 20, 30, 10)
    pasted = box.paste(box.crop(values))
    np.testing.assert_array_equal(box.crop(pasted), box.crop(values))
    assert pasted.sum() == box.crop(values).sum()
    empty = bounding_box(np.zeros((4, 4, 4), dtype=bool))
    assert empty.region == (slice(None),) * 3


class Volumes:
    """A case in memory: the synthetic brain off-centre on a grid three times its size, a
    lesion at the brain's edge (where a crop would show first)."""

    present = MODALITIES

    def __init__(self) -> None:
        images, _ = synthetic_volumes((40, 40, 16), seed=3)
        self.images = {}
        for name, image in images.items():
            grid = np.zeros((96, 80, 40), dtype=np.float32)
            grid[10:50, 30:70, 20:36] = image
            grid[12:18, 45:52, 26:31] = 1400.0 if name in ("t2f", "t1c") else 300.0
            self.images[name] = grid

    def stack(self, names: tuple[str, ...]) -> np.ndarray:
        return np.stack([self.images[n] for n in names])


@pytest.mark.parametrize("et_rule", ["near-wt", "channel"])
def test_stages_on_the_box_equal_the_whole_grid(
    monkeypatch: pytest.MonkeyPatch, et_rule: str
) -> None:
    config = PipelineConfig()
    config = dataclasses.replace(config, labels=dataclasses.replace(config.labels, et_rule=et_rule))
    seg = IntensitySegmenter(config)
    boxed = seg.segment(Volumes())
    monkeypatch.setattr(
        segmenter_module, "bounding_box", lambda m, margin=0: Box((slice(None),) * 3, m.shape)
    )
    whole = seg.segment(Volumes())
    assert whole.labels.any()
    np.testing.assert_array_equal(boxed.labels, whole.labels)
    for name in whole.maps:
        np.testing.assert_array_equal(boxed.maps[name], whole.maps[name])
    assert boxed.score == whole.score


def test_normalise_on_the_box_equals_the_whole_grid() -> None:
    stack, cfg = Volumes().stack(MODALITIES), NormaliseConfig()
    normalised, brain, left_out = normalise_case(stack, cfg)
    whole_brain = brain_mask(stack)
    excluded = lesion_mask(stack, whole_brain, cfg)
    assert excluded.any()  # the lesion was left out of the statistics
    whole = np.stack([zscore(c, whole_brain, cfg, whole_brain & ~excluded) for c in stack])
    np.testing.assert_array_equal(normalised, whole)
    np.testing.assert_array_equal(left_out, excluded)
    np.testing.assert_array_equal(brain, whole_brain)
