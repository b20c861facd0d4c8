"""Per-volume z-score inside the brain (the paper's normalisation), lesion left out.

The paper z-scores each volume with the mean and std of all brain voxels. A large, bright
tumour then inflates the std and lowers its own z, so fixed thresholds calibrated on healthy
scans see less of it the bigger it is. Here the statistics come from the brain *minus* large
bright FLAIR clusters; on a healthy scan nothing is left out and the result is exactly the
plain z-score the model was trained and calibrated with.

The statistics must also survive a few absurd voxels (20 spikes of 1e9 made the std so
large that the tumour vanished; one voxel of 3e38 overflowed the float32 mean into NaN).
Winsorised statistics (clipped at robust percentiles) are computed alongside the plain
ones and used when the two differ by more than a tolerance (``robust_stats``); on real
scans they never do, so those keep exactly the plain statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.masks import connected_components
from brats_goat.parallel import channel_map
from brats_goat.stages.crop import stage_box
from brats_goat.stages.morphology import dilate, erode


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
    #: Percentiles of the brain voxels at which values are clipped (winsorised) for the
    #: robust statistics: 0.5% of the brain at each end may be any value at all.
    robust_percentiles: tuple[float, float] = (0.5, 99.5)
    #: The robust statistics replace the plain ones when the plain mean is more than this
    #: many robust stds from the robust mean, or the plain std more than (1 + this) times
    #: the robust one. On the 7 real scans the largest natural gap is 1% of a std in the
    #: mean and 8% in the std (bright vessels in a t1c); 20 spikes of 1e9 make it 10^4.
    outlier_tolerance: float = 0.25

    def __post_init__(self) -> None:
        if self.clip_z <= 0:
            raise ValueError("clip_z must be positive")
        if self.exclude_z is not None and self.exclude_z <= 0:
            raise ValueError("exclude_z must be positive (None turns the exclusion off)")
        if not 0 < self.exclude_min_fraction < 1:
            raise ValueError("exclude_min_fraction must be in (0, 1)")
        if self.exclude_dilation < 0 or self.exclude_passes < 1:
            raise ValueError("exclude_dilation must be >= 0 and exclude_passes >= 1")
        low, high = self.robust_percentiles
        if not 0 <= low < high <= 100:
            raise ValueError("robust_percentiles must be (low, high) with 0 <= low < high <= 100")
        if self.outlier_tolerance <= 0:
            raise ValueError("outlier_tolerance must be positive")


class NonFiniteError(ValueError):
    """A modality's normalised image is not finite (NaN/Inf); ``modality`` says which, so
    that the caller can name its file."""

    def __init__(self, modality: str, cause: str):
        super().__init__(f"{modality}: {cause}")
        self.modality = modality
        self.cause = cause


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
    labels, n = connected_components(bright)
    if n == 0:
        return bright
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= min_voxels)[labels]


def robust_stats(values: np.ndarray, cfg: NormaliseConfig) -> tuple[float, float]:
    """Mean and std of ``values``: the plain ones (as the model was trained with), unless
    a few outliers moved them by more than ``cfg.outlier_tolerance``; then those of the
    values clipped at ``cfg.robust_percentiles`` (in float64: a voxel of 3e38 overflows a
    float32 sum)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow counts as moved
        mean, std = float(values.mean()), float(values.std())
    wide = values.astype(np.float64)
    low, high = np.percentile(wide, cfg.robust_percentiles)
    clipped = np.clip(wide, low, high)
    robust_mean, robust_std = float(clipped.mean()), float(clipped.std())
    if std < 0.5 * robust_std:
        # Clipping never widens the spread, so this is float32 underflow: tiny intensities
        # (scaled by 1e-30) square to 0 and the std with them (issue 27: an empty map "ok").
        mean, std = float(wide.mean()), float(wide.std())
    tol = cfg.outlier_tolerance
    moved = (
        not np.isfinite([mean, std]).all()
        or abs(mean - robust_mean) > tol * robust_std
        or std > (1 + tol) * robust_std
    )
    return (robust_mean, robust_std) if moved else (mean, std)


def zscore(
    volume: np.ndarray,
    mask: np.ndarray,
    cfg: NormaliseConfig,
    stats_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Z-score ``volume`` inside ``mask`` with the mean/std of ``stats_mask`` (default: the
    whole mask, ``robust_stats``); background stays 0.

    Statistics come from the brain only, so the amount of background (field of view) does
    not change the scale; the clip keeps rare extreme voxels from dominating the loss.
    """
    out = np.zeros_like(volume, dtype=np.float32)
    values = volume[mask if stats_mask is None else stats_mask]
    if values.size == 0:
        return out
    mean, std = robust_stats(values, cfg)
    if std <= 0:
        return out
    with np.errstate(over="ignore", invalid="ignore"):  # named below, by require_finite
        out[mask] = np.clip((volume[mask] - mean) / std, -cfg.clip_z, cfg.clip_z)
    return out


def require_finite(modality: str, volume: np.ndarray, normalised: np.ndarray) -> None:
    """``NonFiniteError`` naming the cause when ``normalised`` holds NaN/Inf (it would
    otherwise surface much later as an error that names neither file nor cause)."""
    bad = ~np.isfinite(normalised)
    if not bad.any():
        return
    finite = volume[np.isfinite(volume)]
    span = f"{finite.min():.6g} to {finite.max():.6g}" if finite.size else "none finite"
    raise NonFiniteError(
        modality,
        f"its z-scored image has {int(bad.sum())} NaN/Inf voxels (input intensities "
        f"{span}): the intensities are out of any range the normalisation can handle",
    )


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
    inner = erode(brain, iterations=3)
    min_voxels = cfg.exclude_min_fraction * int(brain.sum())
    for _ in range(cfg.exclude_passes):
        z = zscore(channel, brain, cfg, brain & ~excluded)
        found = bright_clusters(z, inner, cfg.exclude_z, min_voxels)
        if cfg.exclude_dilation and found.any():
            found = dilate(found, iterations=cfg.exclude_dilation) & brain
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
    the voxels left out of the statistics (reported per case, so a user can see it act).
    ``NonFiniteError`` when a modality's result is not finite."""
    if stack.shape[0] != len(MODALITIES):
        raise ValueError(f"expected channels {MODALITIES}, got {stack.shape[0]} channels")
    mask = brain_mask(stack)
    # On the brain's box (brats_goat.stages.crop): the statistics see the same voxels in
    # the same order, and every operation here (the lesion mask's erosion, components and
    # dilation, the z-scores) is confined to the brain, so no margin is needed.
    box = stage_box(mask, margin=0)
    inner, part = box.crop(mask), box.crop(stack)
    excluded = lesion_mask(part, inner, cfg)
    healthy = inner & ~excluded
    normalised = np.stack(channel_map(lambda channel: zscore(channel, inner, cfg, healthy), part))
    for modality, channel, z in zip(MODALITIES, part, normalised, strict=True):
        require_finite(modality, channel, z)
    return box.paste(normalised), mask, box.paste(excluded)


def normalise_stack(stack: np.ndarray, cfg: NormaliseConfig) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) raw intensities in ``MODALITIES`` order -> z-scored stack, brain mask."""
    normalised, mask, _ = normalise_case(stack, cfg)
    return normalised, mask
