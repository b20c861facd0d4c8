"""The 3D stages on the brain's box give what the reference path (scipy's filters on the
whole grid, ``stages.reference``) gives, at the default settings and at other radii."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from brats_goat.conventions import MODALITIES
from brats_goat.segmenter import IntensitySegmenter, PipelineConfig
from brats_goat.stages.crop import bounding_box, margin_for
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
    empty = bounding_box(np.zeros((4, 4, 4), dtype=bool), margin=3)
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
            grid[10:18, 45:52, 26:31] = 1400.0 if name in ("t2f", "t1c") else 300.0
            self.images[name] = grid

    def stack(self, names: tuple[str, ...]) -> np.ndarray:
        return np.stack([self.images[n] for n in names])


#: Settings whose operations reach farther than the defaults' (``Segmenter.crop_margin``).
WIDER = {
    "intensity": {"morphology_radius": 3, "brain_erosion": 5, "et_within_wt_dilation": 6},
    "labels": {"et_search_dilation": 7, "core_closing": 5, "et_core_gap": 9},
    "tumour": {"grow_steps": 4},
}


def configured(et_rule: str, wider: bool) -> PipelineConfig:
    config = PipelineConfig()
    labels = dataclasses.replace(config.labels, et_rule=et_rule)
    config = dataclasses.replace(config, labels=labels)
    if not wider:
        return config
    return dataclasses.replace(
        config,
        **{name: dataclasses.replace(getattr(config, name), **v) for name, v in WIDER.items()},
    )


@pytest.mark.parametrize("wider", [False, True], ids=["defaults", "wider-radii"])
@pytest.mark.parametrize("et_rule", ["near-wt", "channel"])
def test_stages_on_the_box_equal_the_reference_path(et_rule: str, wider: bool) -> None:
    config = configured(et_rule, wider)
    fast = IntensitySegmenter(config).segment(Volumes())
    reference = dataclasses.replace(config, reference_path=True)
    whole = IntensitySegmenter(reference).segment(Volumes())
    assert whole.labels.any()
    np.testing.assert_array_equal(fast.labels, whole.labels)
    for name in whole.maps:
        np.testing.assert_array_equal(fast.maps[name], whole.maps[name])
    assert fast.score == whole.score


def test_the_margin_follows_the_settings() -> None:
    assert IntensitySegmenter(configured("near-wt", False)).crop_margin == 8
    # The wider settings' farthest reach is the core closing's 2 x 5.
    assert IntensitySegmenter(configured("near-wt", True)).crop_margin == 12
    assert margin_for({}) == 2 and margin_for({"a": 1, "b": 4}) == 6


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
