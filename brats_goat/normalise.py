"""Per-volume z-score inside the brain (the paper's normalisation)."""

from __future__ import annotations

import numpy as np

from .config import NormaliseConfig


def brain_mask(stack: np.ndarray) -> np.ndarray:
    """Voxels where any modality is non-zero: BraTS images are skull-stripped to exactly 0."""
    return np.any(stack != 0, axis=0)


def zscore(volume: np.ndarray, mask: np.ndarray, cfg: NormaliseConfig) -> np.ndarray:
    """Z-score ``volume`` with the mean/std of its brain voxels; background stays 0.

    Statistics come from the brain only, so the amount of background (field of view) does
    not change the scale; the clip keeps rare extreme voxels from dominating the loss.
    """
    values = volume[mask]
    out = np.zeros_like(volume, dtype=np.float32)
    if values.size == 0:
        return out
    mean = float(values.mean())
    std = float(values.std())
    if std <= 0:
        return out
    out[mask] = np.clip((values - mean) / std, -cfg.clip_z, cfg.clip_z)
    return out


def normalise_stack(stack: np.ndarray, cfg: NormaliseConfig) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) raw intensities -> z-scored stack and the brain mask."""
    mask = brain_mask(stack)
    return np.stack([zscore(channel, mask, cfg) for channel in stack]), mask
