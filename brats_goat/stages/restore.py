"""Iterative restoration: reconstruct again with the suspect voxels replaced by the model's
own healthy estimate, so the autoencoder cannot copy a tumour it has been shown.

A reconstruction-based detector fails quietly when the network reconstructs the anomaly
too (sharp models and token bottlenecks do, partly). Feeding the reconstruction back in
place of the voxels it could not explain, and reconstructing again, moves the estimate
towards healthy tissue there while leaving well-explained tissue as it was: a fixed-point
"healing" of the input. No label is used; which voxels are suspect is decided by the
residual alone, and the thresholds that follow are calibrated on healthy data with the
same restoration, so healthy statistics and inference match.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.model.network import MViTAE
from brats_goat.stages.anomaly import inplane_cross
from brats_goat.stages.crop import bounding_box
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig, reconstruct_volume
from brats_goat.stages.runtime import Network


def suspect_voxels(
    normalised: np.ndarray,
    recon: np.ndarray,
    brain: np.ndarray,
    z: float,
    dilation: int,
    channels: np.ndarray | None = None,
) -> np.ndarray:
    """Brain voxels where any of ``channels`` (indices; None: all) differs from its
    reconstruction by more than ``z``, grown in-plane by ``dilation``: the copied halo of a
    lesion reaches past the voxels that already stand out. Computed on the brain's box
    (nothing outside it can be suspect), one channel at a time (no copy of the volume)."""
    box = bounding_box(brain, margin=0)
    inside = box.crop(brain)
    suspect = np.zeros(inside.shape, dtype=bool)
    for c in range(len(normalised)) if channels is None else channels:
        suspect |= np.abs(box.crop(normalised[c]) - box.crop(recon[c])) > z
    suspect &= inside
    if dilation > 0 and suspect.any():
        grown = ndimage.binary_dilation(suspect, structure=inplane_cross(), iterations=dilation)
        suspect = grown & inside
    return box.paste(suspect)


def restore_pass(
    model: MViTAE | Network,
    normalised: np.ndarray,
    brain: np.ndarray,
    recon: np.ndarray,
    plain: np.ndarray,
    suspect: np.ndarray,
    absent: np.ndarray,
    inference: InferenceConfig,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """One restoration pass: reconstruct the input with ``suspect`` voxels replaced by
    ``recon``. Only slices with a suspect voxel are run: the model works slice by slice
    (one slice's output does not depend on the others in its batch), so a slice without
    one has exactly the input of the plain pass (absent modalities are zero images in both)
    and gets the ``plain`` estimate back."""
    changed = suspect.any(axis=(0, 1))
    healed = np.where(suspect[None], recon, normalised)  # float32, as both are
    healed[absent] = 0
    out = reconstruct_volume(model, healed, brain, inference, device, on_batch, present, changed)
    out[..., ~changed] = plain[..., ~changed]
    return out


def restore_volume(
    model: MViTAE | Network,
    normalised: np.ndarray,
    brain: np.ndarray,
    post: PostprocessConfig,
    inference: InferenceConfig,
    device: torch.device,
    present: np.ndarray | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_pass: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Healthy estimate of a normalised (C, X, Y, Z) volume after
    ``post.restore_iterations`` restoration passes (0: the plain reconstruction).

    Each pass reconstructs the *original* image with only the currently suspect voxels
    replaced by the previous estimate, so tissue the model explains is never altered and
    a wrong suspect costs little: it is filled with what the model predicted there anyway.
    ``on_pass(k, estimate)`` sees the estimate after pass ``k`` (0 = plain reconstruction).
    Channels not in ``post.restore_maps`` are returned as the plain reconstruction.
    """
    plain = reconstruct_volume(model, normalised, brain, inference, device, on_batch, present)
    recon = plain
    if on_pass is not None:
        on_pass(0, plain)
    absent = np.zeros(len(normalised), dtype=bool) if present is None else ~np.asarray(present)
    present_idx = np.flatnonzero(~absent)
    for k in range(1, post.restore_iterations + 1):
        suspect = suspect_voxels(
            normalised, recon, brain, post.restore_z, post.restore_dilation, present_idx
        )
        if not suspect.any():
            break
        recon = restore_pass(
            model, normalised, brain, recon, plain, suspect, absent, inference, device,
            on_batch, present,
        )  # fmt: skip
        if on_pass is not None:
            on_pass(k, recon)
    if recon is not plain:
        keep_plain = [i for i, m in enumerate(MODALITIES) if m not in post.restore_maps]
        recon = recon.copy()  # the last pass's estimate went to on_pass as it was
        recon[keep_plain] = plain[keep_plain]
    return recon
