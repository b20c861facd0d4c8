"""The refinement stage's own logic: slices, prompts, the accept rule, the merge.

The model is replaced by a test double that returns a known mask and score, so each rule
is checked exactly; the real models are exercised in tests/test_sam_backends.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter import PipelineConfig
from brats_goat.stages.refine import (
    RefineConfig,
    candidate_slices,
    component_prompt,
    refine_channel,
    refine_masks,
    slice_prompts,
    spread_points,
    to_prompts,
    window,
)
from brats_goat.stages.sam_backends import Encoded, Prompts


class FixedAnswer:
    """Backend double: every prompt gets ``answer`` (a slice-shaped mask) and ``score``."""

    name = "fixed"
    runtime = "fixed"

    def __init__(self, answer: np.ndarray, score: float, device: str = "cpu") -> None:
        self.answer, self.score = answer, score
        self.device = torch.device(device)  # only read: no tensor is made
        self.encoded: list[int] = []
        self.prompts: list[Prompts] = []

    def encode(self, images: np.ndarray) -> Encoded:
        assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
        self.encoded.append(len(images))
        return Encoded(None, images.shape[1:], images.shape[1:])  # type: ignore[arg-type]

    def predict(self, encoded: Encoded, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        self.prompts.append(prompts)
        n = len(prompts)
        return np.repeat(self.answer[None], n, 0), np.full(n, self.score, np.float32)


def square_lesion(shape=(40, 30, 12), zs=range(3, 9)) -> np.ndarray:
    """Candidate at x 10..19, y 5..14 on slices ``zs`` (arrays are X, Y, Z)."""
    mask = np.zeros(shape, bool)
    for z in zs:
        mask[10:20, 5:15, z] = True
    return mask


def test_candidate_slices_spread_over_the_lesion() -> None:
    mask = square_lesion(zs=range(2, 12))
    assert candidate_slices(mask, 20, 0) == list(range(2, 12))
    picked = candidate_slices(mask, 20, 4)
    assert len(picked) == 4 and picked[0] == 2 and picked[-1] == 11
    mask[:, :, 5] = False
    mask[0:2, 0:2, 5] = True  # 4 pixels: too small to prompt
    assert 5 not in candidate_slices(mask, 20, 0)


def test_prompt_box_and_points_follow_the_component() -> None:
    component = np.zeros((30, 40), bool)  # rows = y, cols = x
    component[5:15, 10:20] = True
    cfg = RefineConfig(box_margin=2, points=3, negative_points=2)
    p = component_prompt(4, component, cfg)
    np.testing.assert_array_equal(p.box, [8, 3, 21, 16])
    pos, neg = p.points[p.labels == 1], p.points[p.labels == 0]
    assert len(pos) == 3 and len(neg) == 2
    for x, y in pos:
        assert component[int(y), int(x)]
    assert len({tuple(pt) for pt in pos}) == 3, "points must be spread, not repeated"
    for x, y in neg:
        assert not component[int(y), int(x)]
        assert 8 <= x <= 21 and 3 <= y <= 16, "negative points stay inside the box"


def test_spread_points_stops_when_region_is_exhausted() -> None:
    weight = np.zeros((10, 10))
    weight[4, 4] = 1
    assert spread_points(weight, 5).shape == (1, 2)


def test_slice_prompts_one_per_component_and_padded_batch() -> None:
    mask = square_lesion()
    mask[30:38, 20:28, 4] = True  # a second 2D component on slice 4
    cfg = RefineConfig(points=2)
    prompts = slice_prompts(mask, [4, 5], cfg)
    assert [p.z for p in prompts] == [4, 4, 5]
    batch = to_prompts(prompts, [4, 5])
    np.testing.assert_array_equal(batch.image_index, [0, 0, 1])
    assert batch.points is not None and batch.points.shape == (3, 2, 2)
    assert to_prompts(slice_prompts(mask, [4], RefineConfig()), [4]).points is None


def test_window_maps_brain_to_unit_range() -> None:
    vol = np.linspace(-3, 3, 1000, dtype=np.float32).reshape(10, 10, 10)
    brain = np.ones_like(vol, bool)
    brain[0] = False
    out = window(vol, brain, (1, 99))
    assert out.min() == 0 and out.max() == 1 and not out[0].any()


def refine_with(answer_plane: np.ndarray, score: float, device: str = "cpu", **cfg_kwargs):
    mask = square_lesion()
    image = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    allowed = np.ones_like(mask)
    backend = FixedAnswer(answer_plane, score, device)
    cfg = RefineConfig(**{"backend": "litemedsam", "batch_size": 4, **cfg_kwargs})
    out, stats = refine_channel(mask, image, allowed, backend, cfg)
    return mask, out, stats, backend


def test_accepted_mask_replaces_component_inside_its_box() -> None:
    answer = np.zeros((30, 40), bool)  # slice image is (Y, X)
    answer[5:15, 10:22] = True  # SAM grows the lesion by 2 columns (x 20..21)
    answer[25:30, 0:5] = True  # and finds something far outside the box
    mask, out, stats, backend = refine_with(answer, 0.95, box_margin=2)
    assert stats.slices == 6 and stats.prompts == 6 and stats.accepted == 6
    assert backend.encoded == [4, 2], "slices are encoded in batches of batch_size"
    assert out[20:22, 5:15, 3:9].all(), "the grown part inside the box is taken"
    assert not out[0:5, 25:30].any(), "nothing outside the prompt box is taken"
    assert stats.voxels_after == int(out.sum()) > stats.voxels_before == int(mask.sum())


def test_cpu_encodes_slice_by_slice_and_a_gpu_in_batches() -> None:
    """Eager torch on the 2-core CPU was fastest one slice per pass (1.15 s per slice
    against 1.47 s in fours, results/sam-encoder-runtimes.md); GPUs keep batching."""
    answer = np.zeros((30, 40), bool)
    defaults = RefineConfig()
    _, _, _, backend = refine_with(answer, 0.0, batch_size=defaults.batch_size)
    assert backend.encoded == [1] * 6
    _, _, _, backend = refine_with(answer, 0.0, "cuda", batch_size=defaults.batch_size)
    assert defaults.batch_size_gpu == 4 and backend.encoded == [4, 2]


def test_low_score_keeps_the_original() -> None:
    answer = np.zeros((30, 40), bool)
    answer[5:15, 10:22] = True
    mask, out, stats, _ = refine_with(answer, 0.5, min_score=0.9)
    assert stats.rejected_score == 6 and stats.accepted == 0
    np.testing.assert_array_equal(out, mask)


def test_disagreeing_mask_keeps_the_original() -> None:
    answer = np.zeros((30, 40), bool)
    answer[5:7, 10:12] = True  # confident, but a 4-pixel speck: Dice with the component ~0.08
    mask, out, stats, _ = refine_with(answer, 0.99, min_agreement=0.5)
    assert stats.rejected_agreement == 6
    np.testing.assert_array_equal(out, mask)


def test_max_slices_bounds_the_work_on_cpu_only() -> None:
    answer = np.zeros((30, 40), bool)
    _, _, stats, backend = refine_with(answer, 0.0, max_slices=2, max_slices_gpu=0)
    assert stats.slices == 2 and sum(backend.encoded) == 2
    _, _, stats, _ = refine_with(answer, 0.0, device="cuda", max_slices=2, max_slices_gpu=0)
    assert stats.slices == 6, "on a GPU every candidate slice is refined by default"


def test_refine_masks_reapplies_component_rule_per_channel() -> None:
    mask = square_lesion()
    answer = np.zeros((30, 40), bool)
    answer[5:15, 10:20] = True
    answer[5:6, 10:11] = False
    binary = {"t2f": mask, "t1c": np.zeros_like(mask)}
    normalised = np.random.default_rng(1).normal(size=(4, *mask.shape)).astype(np.float32)
    post = PostprocessConfig(min_component_voxels=50)
    cfg = RefineConfig(backend="litemedsam", channels=("t2f", "t1c"))
    out, stats = refine_masks(
        binary, normalised, np.ones_like(mask), FixedAnswer(answer, 1), cfg, post
    )
    assert set(stats.channels) == {"t2f"}, "an empty channel is not refined"
    assert stats.to_dict()["channels"]["t2f"]["accepted"] == 6
    assert stats.to_dict()["runtime"] == "fixed", "the report names what ran the encoder"
    assert not out["t2f"][10, 5].any() and out["t2f"][15, 10, 5]
    assert not out["t1c"].any()


def test_refine_config_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="backend"):
        RefineConfig(backend="medsam2")
    with pytest.raises(ValueError, match="sam_model"):
        RefineConfig(sam_model="vit_t")
    cfg = dataclasses.replace(PipelineConfig(), refine=RefineConfig(backend="litemedsam"))
    assert cfg.refine.backend == "litemedsam"
