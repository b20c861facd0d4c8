"""Residual (anomaly) maps: what the healthy-only model could not reconstruct."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.parallel import channel_map
from brats_goat.stages.morphology import erode
from brats_goat.stages.reference import reference_on


def inplane_cross() -> np.ndarray:
    """3x3x3 structuring element that reaches the 4 in-plane neighbours only: the model
    works slice by slice, so masks grow or shrink within a slice, never across slices."""
    struct = np.zeros((3, 3, 3), dtype=bool)
    struct[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    return struct


def analysis_mask(brain: np.ndarray, erosion: int) -> np.ndarray:
    """Brain mask eroded in-plane: the skull-strip edge is where reconstructions err most."""
    if erosion <= 0:
        return brain
    return erode(brain, inplane_cross(), erosion)


def residual_maps(
    normalised: np.ndarray,
    recon: np.ndarray,
    mask: np.ndarray,
    cfg: PostprocessConfig,
    present: tuple[str, ...] = MODALITIES,
) -> dict[str, np.ndarray]:
    """Signed residual (input - reconstruction) of t1c and t2f inside ``mask``
    (the :func:`analysis_mask`, computed once per case by the caller); a modality the
    case does not have gets no map.

    With ``cfg.fusion_weight`` w > 0 the reconstruction is shrunk by (1 - w) first: the
    map is then the late fusion (1 - w) * residual + w * image.

    Signed, because tumour is *hyper*intense on FLAIR (edema) and post-contrast T1 (ET);
    dark residuals are mostly reconstruction blur and would only add false positives.
    """

    def one(name: str) -> np.ndarray:
        c = MODALITIES.index(name)
        res = normalised[c] - np.float32(1.0 - cfg.fusion_weight) * recon[c]
        if cfg.median_size == 3:
            res = median3_inplane(res)
        elif cfg.median_size > 1:
            res = ndimage.median_filter(res, size=(cfg.median_size, cfg.median_size, 1))
        return np.where(mask, res, np.float32(0)).astype(np.float32, copy=False)

    names = [name for name in ("t1c", "t2f") if name in present]
    return dict(zip(names, channel_map(one, names), strict=True))


def median3_inplane(volume: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.median_filter(volume, size=(3, 3, 1))``, the same values with the
    edges reflected alike, by whole-array minima and maxima instead of a sort per voxel
    (issue 18). Each window's three columns are sorted once, shared by the windows that
    overlap them; the median of the 9 values is then the median of (the largest column
    minimum, the median of the column medians, the smallest column maximum)."""
    if reference_on():
        size = (3, 3) + (1,) * (volume.ndim - 2)
        return ndimage.median_filter(volume, size=size, mode="reflect")
    x, y = volume.shape[:2]
    padded = np.pad(volume, ((1, 1), (1, 1)) + ((0, 0),) * (volume.ndim - 2), mode="symmetric")
    a, b, c = padded[:x], padded[1 : x + 1], padded[2 : x + 2]
    low, high = np.minimum(a, b), np.maximum(a, b)
    mid = np.minimum(high, c)
    np.maximum(high, c, out=high)
    low, mid = np.minimum(low, mid), np.maximum(low, mid)

    def columns(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return t[:, :y], t[:, 1 : y + 1], t[:, 2 : y + 2]

    top = np.maximum(*columns(low)[:2])
    np.maximum(top, columns(low)[2], out=top)
    bottom = np.minimum(*columns(high)[:2])
    np.minimum(bottom, columns(high)[2], out=bottom)
    return _median3(top, _median3(*columns(mid)), bottom)


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Element-wise median of three arrays: max(min(a, b), min(max(a, b), c))."""
    upper = np.maximum(a, b)
    np.minimum(upper, c, out=upper)
    lower = np.minimum(a, b)
    return np.maximum(lower, upper, out=lower)


def case_score(maps: dict[str, np.ndarray], brain: np.ndarray) -> float:
    """One number per case for ranking and detection: 99.9th percentile of the residual.

    A high percentile (rather than the max) ignores a handful of noisy voxels but still
    reacts to a lesion of a few hundred voxels.
    """
    combined = np.maximum.reduce(list(maps.values()))[brain]
    return float(np.percentile(combined, 99.9)) if combined.size else 0.0


def channel_scores(maps: dict[str, np.ndarray], brain: np.ndarray) -> dict[str, float]:
    """``case_score`` of each map alone: the 99.9th percentile of its residual in the brain,
    the statistic whose median over healthy subjects each calibrated threshold is."""
    return {
        name: float(np.percentile(m[brain], 99.9)) if brain.any() else 0.0
        for name, m in maps.items()
    }


def z_map(
    normalised: np.ndarray, mask: np.ndarray, cfg: PostprocessConfig, name: str = "t1c"
) -> np.ndarray:
    """The z-scored image itself as an anomaly map (the intensity baseline's map): the same
    median filter and mask as :func:`residual_maps`, against a healthy estimate of 0."""
    zero = np.zeros((len(MODALITIES), 1, 1, 1), dtype=np.float32)
    return residual_maps(normalised, zero, mask, cfg, (name,))[name]
