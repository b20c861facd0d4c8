"""Each inference stage on tiny hand-built arrays whose answer is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.device import pick_device
from brats_goat.model.network import MODEL_PRESETS, MViTAE, count_parameters
from brats_goat.stages.anomaly import analysis_mask, case_score, residual_maps
from brats_goat.stages.labels import fuse_labels, voxels_per_label
from brats_goat.stages.normalise import NormaliseConfig, normalise_stack, zscore
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig, fit_plane, reconstruct_volume
from brats_goat.stages.threshold import (
    drop_up_to,
    healthy_peak,
    largest_component_voxels,
    open_close,
    otsu_threshold,
    select_components,
    select_with_peaks,
    threshold_slices,
)


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def test_zscore_uses_brain_only_and_keeps_background_zero() -> None:
    vol = np.zeros((10, 10, 4), np.float32)
    mask = np.zeros_like(vol, bool)
    mask[2:8, 2:8] = True
    vol[mask] = np.linspace(100, 200, mask.sum())
    out = zscore(vol, mask, NormaliseConfig())
    assert out[~mask].max() == 0
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-4
    # More background must not change the result.
    big = np.zeros((20, 20, 4), np.float32)
    big_mask = np.zeros_like(big, bool)
    big[:10, :10], big_mask[:10, :10] = vol, mask
    np.testing.assert_allclose(zscore(big, big_mask, NormaliseConfig())[:10, :10], out, atol=1e-6)


def test_normalise_stack_clips_and_masks() -> None:
    stack = np.zeros((4, 8, 8, 3), np.float32)
    stack[:, 2:6, 2:6] = 1.0
    stack[0, 3, 3, 1] = 1e6
    norm, brain = normalise_stack(stack, NormaliseConfig(clip_z=3))
    assert brain.sum() == 48 and norm.max() <= 3


def test_otsu_splits_two_modes() -> None:
    values = np.concatenate([np.full(500, 0.0), np.full(100, 4.0)])
    assert 0 < otsu_threshold(values) < 4


def test_threshold_otsu_only_raises_fixed() -> None:
    res = np.zeros((20, 15, 2), np.float32)
    res[:, :5, 0] = 1.0  # normal tissue
    res[:, 5:10, 0] = 2.0  # faint halo: above the fixed threshold
    res[:, 10:, 0] = 6.0  # lesion
    res[:, :, 1] = 0.2  # flat slice: Otsu must not lower the fixed threshold
    mask = np.ones_like(res, bool)
    fixed_only = threshold_slices(res, mask, 1.5, use_otsu=False)
    with_otsu = threshold_slices(res, mask, 1.5, use_otsu=True)
    assert fixed_only[..., 0].sum() == 200
    assert with_otsu[..., 0].sum() == 100 and with_otsu[:, 10:, 0].all()
    assert not with_otsu[..., 1].any()


def test_open_close_removes_specks() -> None:
    mask = np.zeros((20, 20, 1), bool)
    mask[5:12, 5:12] = True
    mask[16, 16] = True
    out = open_close(mask, 1)
    assert not out[16, 16, 0] and out[8, 8, 0]


def test_select_components_largest_and_min_size() -> None:
    mask = ball((30, 30, 30), (8, 8, 8), 5) | ball((30, 30, 30), (22, 22, 22), 3)
    mask[0, 29, 0] = True
    largest = select_components(mask, min_voxels=10, keep_largest=True)
    assert largest[8, 8, 8] and not largest[22, 22, 22] and not largest[0, 29, 0]
    both = select_components(mask, min_voxels=10, keep_largest=False)
    assert both[22, 22, 22] and not both[0, 29, 0]
    assert not select_components(mask, min_voxels=10_000, keep_largest=True).any()


def test_et_minimum_drops_components_up_to_the_healthy_size() -> None:
    mask = np.zeros((30, 30, 10), bool)
    mask[2:5, 2:5, 2:5] = True  # 27 voxels
    mask[10:20, 10:20, 2:6] = True  # 400 voxels
    assert largest_component_voxels(mask) == 400
    assert largest_component_voxels(np.zeros_like(mask)) == 0
    kept = drop_up_to(mask, 27)  # "no larger than the healthy component" goes
    assert kept.sum() == 400 and not kept[3, 3, 3]
    assert not drop_up_to(mask, 400).any()
    np.testing.assert_array_equal(drop_up_to(mask, 0), mask)


def test_peak_rule_keeps_largest_and_only_components_above_the_healthy_peak() -> None:
    shape = (40, 40, 40)
    big, hot, faint = (
        ball(shape, (10, 10, 10), 6),
        ball(shape, (30, 30, 30), 3),
        ball(shape, (10, 30, 30), 3),
    )
    values = np.where(big, 2.0, 0.0) + np.where(hot, 5.0, 0.0) + np.where(faint, 2.5, 0.0)
    mask = big | hot | faint
    kept = select_with_peaks(mask, values, min_voxels=10, peak=3.0)
    assert kept[10, 10, 10], "the largest is kept whatever its peak"
    assert kept[30, 30, 30], "a small component hotter than the healthy peak is kept"
    assert not kept[10, 30, 30], "a small component within the healthy range is dropped"
    assert not select_with_peaks(mask, values, min_voxels=10_000, peak=0.0).any()


def test_healthy_peak_is_the_highest_surviving_component_value() -> None:
    shape = (40, 40, 8)
    residual = np.zeros(shape, np.float32)
    residual[5:15, 5:15, 2:6] = 2.0
    residual[8, 8, 3] = 2.6  # inside that component
    residual[30, 30, 4] = 9.0  # a lone voxel: removed by the opening, not a component
    mask = np.ones(shape, bool)
    post = dataclasses.replace(PostprocessConfig(), use_otsu=False, min_component_voxels=20)
    assert healthy_peak(residual, mask, 1.5, post) == pytest.approx(2.6)
    assert healthy_peak(np.zeros(shape, np.float32), mask, 1.5, post) == 1.5


def test_label_fusion_rim_core_edema() -> None:
    shape = (40, 40, 10)
    flair = ball(shape, (20, 20, 5), 12)
    rim = ball(shape, (20, 20, 5), 7) & ~ball(shape, (20, 20, 5), 4)
    labels = fuse_labels(flair & ~ball(shape, (20, 20, 5), 4), rim, et_dilation=3)
    assert labels[20, 20, 5] == 1  # enclosed core -> NETC
    assert labels[20, 26, 5] == 3  # rim -> ET
    assert labels[20, 30, 5] == 2  # outside the rim -> edema
    assert labels[0, 0, 0] == 0
    counts = voxels_per_label(labels)
    assert set(counts) == {"1", "2", "3"} and all(v > 0 for v in counts.values())


def test_et_far_from_flair_is_dropped() -> None:
    shape = (40, 40, 10)
    flair = ball(shape, (10, 10, 5), 5)
    far = ball(shape, (32, 32, 5), 3)
    labels = fuse_labels(flair, far, et_dilation=3)
    assert not (labels == 3).any()
    assert (fuse_labels(flair, far, et_dilation=0) == 3).any()


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


def test_fit_plane_pads_and_crops_roundtrip() -> None:
    vol = np.random.default_rng(0).normal(size=(2, 30, 60, 3)).astype(np.float32)
    fitted, dst, src = fit_plane(vol, 48)
    assert fitted.shape == (2, 48, 48, 3)
    np.testing.assert_array_equal(fitted[:, dst[0], dst[1]], vol[:, src[0], src[1]])


def test_paper_preset_matches_published_architecture() -> None:
    cfg = MODEL_PRESETS["paper"]
    assert (cfg.patch_size, cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.bottleneck_dim) == (
        24,
        512,
        6,
        8,
        1024,
        512,
    )
    model = MViTAE(cfg)
    assert cfg.n_tokens == 100
    assert 40e6 < count_parameters(model) < 42e6
    with torch.no_grad():
        code = model.encode(torch.zeros(1, 4, 240, 240))
    assert code.shape == (1, 512)


def test_model_output_shape_tiny() -> None:
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 4, 48, 48))
    assert out.shape == (3, 4, 48, 48)


def test_reconstruct_volume_deterministic_and_zero_outside_brain() -> None:
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    vol = np.random.default_rng(1).normal(size=(4, 50, 44, 5)).astype(np.float32)
    brain = np.zeros(vol.shape[1:], bool)
    brain[5:45, 5:40, 1:4] = True
    cfg = dataclasses.replace(InferenceConfig(), batch_size=2)
    dev = pick_device("cpu")
    a = reconstruct_volume(model, vol, brain, cfg, dev)
    b = reconstruct_volume(model, vol, brain, cfg, dev)
    assert a.shape == vol.shape
    np.testing.assert_array_equal(a, b)
    assert not a[:, ~brain].any()
    assert a[:, brain].std() > 0


def test_cuda_request_without_gpu_is_clear() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


def test_token_bottleneck_keeps_one_code_per_token_and_decodes_locally() -> None:
    """The ``tokens`` bottleneck: a (B, n_tokens, token_dim) code whose entries act on their
    own place in the image, unlike the flat code, where every entry touches every pixel."""
    cfg = MODEL_PRESETS["small-tokens"]
    model = MViTAE(cfg).eval()
    with torch.no_grad():
        code = model.encode(torch.zeros(1, 4, 240, 240))
        assert code.shape == (1, cfg.n_tokens, cfg.token_dim)
        base = model.decode(code)
        bumped = code.clone()
        bumped[0, 0] += 5.0  # token 0 = the top-left 24x24 patch
        diff = (model.decode(bumped) - base).abs().sum(dim=(0, 1))
    assert base.shape == (1, 4, 240, 240)
    assert diff[:60, :60].sum() > 0.99 * diff.sum()
    assert 2e6 < count_parameters(model) < 4e6


def test_token_bottleneck_config_is_checked() -> None:
    with pytest.raises(ValueError, match="bottleneck"):
        dataclasses.replace(MODEL_PRESETS["small"], bottleneck="spatial")
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(MODEL_PRESETS["small"], bottleneck="tokens")  # 5 stages: 240/32
