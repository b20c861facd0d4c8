"""Brain z-score normalisation, and its lesion-robust statistics: healthy scans keep the plain
z-score; a large bright lesion no longer drags its own z down."""

from __future__ import annotations

import numpy as np
import pytest

from brats_goat.conventions import MODALITIES
from brats_goat.stages.normalise import (
    NonFiniteError,
    NormaliseConfig,
    lesion_mask,
    normalise_stack,
    zscore,
)

PLAIN = NormaliseConfig(exclude_z=None)
FLAIR = MODALITIES.index("t2f")
T2W = MODALITIES.index("t2w")


def head(seed: int = 0, shape=(40, 40, 24)) -> tuple[np.ndarray, np.ndarray]:
    """Four noisy channels (mean 100, sd 10) inside a box brain with a 3-voxel margin."""
    rng = np.random.default_rng(seed)
    brain = np.zeros(shape, bool)
    brain[3:-3, 3:-3, 3:-3] = True
    stack = np.zeros((len(MODALITIES), *shape), np.float32)
    stack[:, brain] = rng.normal(100, 10, (len(MODALITIES), int(brain.sum())))
    return stack, brain


def blob(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def test_healthy_scan_keeps_the_plain_zscore_exactly() -> None:
    # Gaussian noise has ~2% of voxels above 2 z, but only in small scattered clusters.
    stack, _ = head()
    new, brain = normalise_stack(stack, NormaliseConfig())
    old, _ = normalise_stack(stack, PLAIN)
    assert not lesion_mask(stack, brain, NormaliseConfig()).any()
    np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("channel", ["t2f", "t2w"])
def test_large_lesion_gets_the_z_of_healthy_statistics(channel: str) -> None:
    stack, brain = head(1)
    tumour = blob(brain.shape, (20, 20, 12), 8) & brain  # ~2,100 of 21,000 brain voxels
    if channel == "t2w":  # no FLAIR: the T2w channel marks the lesion instead
        stack[FLAIR] = 0
    idx = MODALITIES.index(channel)
    stack[idx, tumour] += 40.0  # 4 healthy sd brighter
    new, _ = normalise_stack(stack, NormaliseConfig())
    old, _ = normalise_stack(stack, PLAIN)
    healthy = stack[idx][brain & ~tumour]
    oracle = np.clip((stack[idx][tumour] - healthy.mean()) / healthy.std(), -5, 5)
    assert old[idx][tumour].mean() < 3.0  # the lesion inflates the std
    assert abs(new[idx][tumour].mean() - oracle.mean()) < 0.3
    # Every channel takes its statistics from the healthy voxels the lesion channel found:
    # a channel where the lesion is bright too keeps its healthy tissue at 0 z.
    t1n = MODALITIES.index("t1n")
    stack[t1n, tumour] += 60.0
    new, _ = normalise_stack(stack, NormaliseConfig())
    old, _ = normalise_stack(stack, PLAIN)
    assert abs(new[t1n][brain & ~tumour].mean()) < 0.05
    assert old[t1n][brain & ~tumour].mean() < -0.2


def test_no_lesion_channel_means_plain_statistics() -> None:
    stack, brain = head(2)
    stack[[FLAIR, T2W]] = 0
    stack[0, blob(brain.shape, (20, 20, 12), 8) & brain] += 60.0
    np.testing.assert_array_equal(
        normalise_stack(stack, NormaliseConfig())[0], normalise_stack(stack, PLAIN)[0]
    )


def test_normalise_rejects_other_channel_counts_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="channels"):
        normalise_stack(np.zeros((2, 4, 4, 4), np.float32), NormaliseConfig())
    with pytest.raises(ValueError, match="exclude_min_fraction"):
        NormaliseConfig(exclude_min_fraction=0)
    with pytest.raises(ValueError, match="exclude_passes"):
        NormaliseConfig(exclude_passes=0)
    with pytest.raises(ValueError, match="exclude_z"):
        NormaliseConfig(exclude_z=0.0)


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


# ------------------------------------------------------- statistics a few voxels cannot move


def spiked(stack: np.ndarray, brain: np.ndarray, value: float, n: int = 20) -> np.ndarray:
    """``stack`` with ``n`` FLAIR voxels of the brain set to ``value``."""
    out = stack.copy()
    xs, ys, zs = np.nonzero(brain)
    pick = np.linspace(0, xs.size - 1, n).astype(int)
    out[FLAIR, xs[pick], ys[pick], zs[pick]] = value
    return out


def test_clean_scan_keeps_the_plain_statistics_bit_for_bit() -> None:
    """The robust statistics act only on outliers: the model's inputs on a clean scan are
    exactly those it was trained and calibrated with."""
    stack, brain = head()
    cfg = NormaliseConfig()
    for channel in stack:
        values = channel[brain]
        old = np.clip((channel[brain] - values.mean()) / values.std(), -5, 5)
        np.testing.assert_array_equal(zscore(channel, brain, cfg)[brain], old)


@pytest.mark.parametrize("value", [1e9, 3e38, -1e9])
def test_spikes_do_not_move_the_statistics(value: float) -> None:
    """20 spikes of 1e9 used to inflate the std ~10^4-fold (the tumour vanished); a voxel of
    3e38 overflowed the float32 mean into NaN."""
    stack, brain = head()
    clean, _ = normalise_stack(stack, NormaliseConfig())
    bad = spiked(stack, brain, value)
    got, _ = normalise_stack(bad, NormaliseConfig())
    assert np.isfinite(got).all()
    keep = bad[FLAIR] == stack[FLAIR]
    assert np.abs(got[FLAIR][keep] - clean[FLAIR][keep]).max() < 0.1
    assert np.abs(got[FLAIR][~keep]).min() == 5.0  # the spikes themselves sit at the clip


def test_tolerance_decides_when_the_robust_statistics_act() -> None:
    stack, brain = head()
    bad = spiked(stack, brain, 300.0, n=80)  # 20 sd above the mean, 0.4% of the brain
    plain = zscore(bad[FLAIR], brain, NormaliseConfig(outlier_tolerance=10.0))
    robust = zscore(bad[FLAIR], brain, NormaliseConfig())
    values = bad[FLAIR][brain]
    np.testing.assert_array_equal(
        plain[brain], np.clip((values - values.mean()) / values.std(), -5, 5)
    )
    assert robust[brain].std() > 1.2 * plain[brain].std()


def test_non_finite_result_names_the_modality_and_cause() -> None:
    stack, _ = head()
    stack[FLAIR, 10, 10, 10] = np.nan
    with pytest.raises(NonFiniteError) as info:
        normalise_stack(stack, NormaliseConfig())
    assert info.value.modality == "t2f" and "NaN/Inf voxels" in info.value.cause
