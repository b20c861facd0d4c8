"""Per-volume z-score inside the brain (the paper's normalisation), lesion left out.

The paper z-scores each volume with the mean and std of all brain voxels. A large, bright
tumour then inflates the std and lowers its own z, so fixed thresholds calibrated on healthy
scans see less of it the bigger it is. Here the statistics come from the brain *minus* large
bright FLAIR clusters; on a healthy scan nothing is left out and the result is exactly the
plain z-score the model was trained and calibrated with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.stages.crop import bounding_box


@dataclass(frozen=True)
class NormaliseConfig:
    """Per-volume z-score inside the brain, as in the paper, with the lesion left out of
    the statistics (``brats_goat.stages.normalise``)."""

    #: Intensities are clipped to this many standard deviations after z-scoring, so one
    #: hot voxel cannot dominate the reconstruction loss.
    clip_z: float = 5.0
    #: Statistics from the healthy part only: 3D clusters of FLAIR (else T2w) voxels above
    #: this z are left out of every channel's mean and std. A large tumour otherwise
    #: inflates the std and pulls its own z down (a quarter-brain phantom glioma: 1.9 z
    #: instead of 5.8). None = the paper's plain z-score.
    exclude_z: float | None = 2.0
    #: ...but only clusters of at least this fraction of the brain: healthy scans (where
    #: nothing this large is bright) keep exactly the plain z-score the model and the
    #: thresholds were calibrated with.
    exclude_min_fraction: float = 0.002
    #: Grow the left-out clusters by this many voxels (their rim is lesion too).
    exclude_dilation: int = 2
    #: Re-estimate -> re-detect rounds: each round's better statistics raise the lesion's
    #: z, so more of it is found and left out.
    exclude_passes: int = 3

    def __post_init__(self) -> None:
        if self.clip_z <= 0:
            raise ValueError("clip_z must be positive")
        if self.exclude_z is not None and self.exclude_z <= 0:
            raise ValueError("exclude_z must be positive (None turns the exclusion off)")
        if not 0 < self.exclude_min_fraction < 1:
            raise ValueError("exclude_min_fraction must be in (0, 1)")
        if self.exclude_dilation < 0 or self.exclude_passes < 1:
            raise ValueError("exclude_dilation must be >= 0 and exclude_passes >= 1")


#: Channels whose bright clusters mark the lesion for the statistics, in order of preference.
LESION_CHANNELS: tuple[str, ...] = ("t2f", "t2w")


def brain_mask(stack: np.ndarray) -> np.ndarray:
    """Voxels where any modality is non-zero: BraTS images are skull-stripped to exactly 0."""
    return np.any(stack != 0, axis=0)


def bright_clusters(
    z: np.ndarray, inner: np.ndarray, z_min: float, min_voxels: float
) -> np.ndarray:
    """3D (26-connected) clusters of ``z > z_min`` inside ``inner`` with at least
    ``min_voxels`` voxels: a lesion, not the scattered bright voxels of healthy tissue."""
    bright = (z > z_min) & inner
    labels, n = ndimage.label(bright, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return bright
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= min_voxels)[labels]


def zscore(
    volume: np.ndarray,
    mask: np.ndarray,
    cfg: NormaliseConfig,
    stats_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Z-score ``volume`` inside ``mask`` with the mean/std of ``stats_mask`` (default: the
    whole mask); background stays 0.

    Statistics come from the brain only, so the amount of background (field of view) does
    not change the scale; the clip keeps rare extreme voxels from dominating the loss.
    """
    out = np.zeros_like(volume, dtype=np.float32)
    values = volume[mask if stats_mask is None else stats_mask]
    if values.size == 0:
        return out
    mean = float(values.mean())
    std = float(values.std())
    if std <= 0:
        return out
    out[mask] = np.clip((volume[mask] - mean) / std, -cfg.clip_z, cfg.clip_z)
    return out


def lesion_mask(stack: np.ndarray, brain: np.ndarray, cfg: NormaliseConfig) -> np.ndarray:
    """Voxels left out of the statistics: large bright clusters of the first non-empty
    channel of :data:`LESION_CHANNELS`, grown by ``exclude_dilation``; re-detected with the
    statistics of what is left, ``exclude_passes`` times. Empty on healthy scans."""
    excluded = np.zeros_like(brain)
    if cfg.exclude_z is None or not brain.any():
        return excluded
    present = [c for c in LESION_CHANNELS if np.any(stack[MODALITIES.index(c)][brain] != 0)]
    if not present:
        return excluded
    channel = stack[MODALITIES.index(present[0])]
    inner = ndimage.binary_erosion(brain, iterations=3)
    min_voxels = cfg.exclude_min_fraction * int(brain.sum())
    for _ in range(cfg.exclude_passes):
        z = zscore(channel, brain, cfg, brain & ~excluded)
        found = bright_clusters(z, inner, cfg.exclude_z, min_voxels)
        if cfg.exclude_dilation and found.any():
            found = ndimage.binary_dilation(found, iterations=cfg.exclude_dilation) & brain
        if np.array_equal(found, excluded):
            break
        # Never leave out most of the brain: keep the previous pass's statistics then (the
        # plain ones if it is the first).
        if found.sum() > 0.5 * brain.sum():
            break
        excluded = found
    return excluded


def normalise_case(
    stack: np.ndarray, cfg: NormaliseConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, X, Y, Z) raw intensities in ``MODALITIES`` order -> z-scored stack, brain mask and
    the voxels left out of the statistics (reported per case, so a user can see it act)."""
    if stack.shape[0] != len(MODALITIES):
        raise ValueError(f"expected channels {MODALITIES}, got {stack.shape[0]} channels")
    mask = brain_mask(stack)
    # On the brain's box (brats_goat.stages.crop): the statistics see the same voxels in
    # the same order, and the erosion and dilation of the lesion mask reach past no edge.
    box = bounding_box(mask)
    inner, part = box.crop(mask), box.crop(stack)
    excluded = lesion_mask(part, inner, cfg)
    healthy = inner & ~excluded
    normalised = np.stack([zscore(channel, inner, cfg, healthy) for channel in part])
    return box.paste(normalised), mask, box.paste(excluded)


def normalise_stack(stack: np.ndarray, cfg: NormaliseConfig) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) raw intensities in ``MODALITIES`` order -> z-scored stack, brain mask."""
    normalised, mask, _ = normalise_case(stack, cfg)
    return normalised, mask
