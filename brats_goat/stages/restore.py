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

from collections.abc import Callable, Iterable

import numpy as np
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.model.network import MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.anomaly import inplane_cross
from brats_goat.stages.crop import bounding_box
from brats_goat.stages.morphology import dilate
from brats_goat.stages.reconstruct import InferenceConfig, SliceStack, run_network, slices_to_run
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
    (nothing outside it can be suspect)."""
    box = bounding_box(brain, margin=0)
    chosen = range(len(normalised)) if channels is None else channels
    pairs = ((box.crop(normalised[c]), box.crop(recon[c])) for c in chosen)
    return box.paste(stand_out(pairs, box.crop(brain), z, dilation, inplane_cross()))


def stand_out(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    inside: np.ndarray,
    z: float,
    dilation: int,
    inplane: np.ndarray,
) -> np.ndarray:
    """Voxels of ``inside`` where any (image, reconstruction) pair differs by more than
    ``z``, dilated by ``inplane`` (the in-plane cross in the arrays' axis order)
    ``dilation`` times and kept inside; one channel at a time (no copy of the volume)."""
    suspect = np.zeros(inside.shape, dtype=bool)
    for image, recon in pairs:
        suspect |= np.abs(image - recon) > z
    suspect &= inside
    if dilation > 0 and suspect.any():
        suspect = dilate(suspect, inplane, dilation) & inside
    return suspect


def restore_pass(
    model: MViTAE | Network,
    stack: SliceStack,
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
    """One restoration pass over ``stack``: reconstruct its input with ``suspect`` voxels
    (N, h, w, on its box) replaced by ``recon``. Only slices with a suspect voxel are run,
    on the brain's box of those slices: the model works slice by slice (one slice's output
    does not depend on the others in its batch), so a slice without one has exactly the
    input of the plain pass (absent modalities are zero images in both) and gets the
    ``plain`` estimate back."""
    changed = np.flatnonzero(suspect.any(axis=(1, 2)))
    # On real brains every slice usually has a suspect voxel: views then, not copies.
    every = len(changed) == len(stack.z)
    pick = slice(None) if every else changed
    # A copy: the plain input stays as it was.
    healed = stack.inputs.copy() if every else stack.inputs[changed]
    (r0, r1), (c0, c1) = stack.box.plane
    np.copyto(healed[:, :, r0:r1, c0:c1], recon[pick], where=suspect[pick][:, None])
    healed[:, absent] = 0
    part = SliceStack.of(model, brain, [stack.z[i] for i in changed], inputs=healed)
    values = run_network(model, part, inference, device, on_batch, present)
    if every and part.box == stack.box:
        return values
    (p0, p1), (q0, q1) = part.box.plane
    out = plain.copy()
    out[changed] = 0
    out[changed, :, p0 - r0 : p1 - r0, q0 - c0 : q1 - c0] = values
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
    Channels not in ``post.restore_maps`` are returned as the plain reconstruction. The
    passes run on the brain slices in the network's layout (``SliceStack``).
    """
    z = slices_to_run(brain, inference.min_brain_voxels)
    if not z:
        if on_pass is not None:
            on_pass(0, np.zeros_like(normalised))
        return np.zeros_like(normalised)
    stack = SliceStack.of(model, brain, z, normalised)
    plain = recon = run_network(model, stack, inference, device, on_batch, present)
    if on_pass is not None:
        on_pass(0, stack.to_volume(plain, normalised))
    absent = np.zeros(len(normalised), dtype=bool) if present is None else ~np.asarray(present)
    inplane = np.moveaxis(inplane_cross(), 2, 0)  # (N, h, w) order
    for k in range(1, post.restore_iterations + 1):
        pairs = ((stack.on_box[:, c], recon[:, c]) for c in np.flatnonzero(~absent))
        suspect = stand_out(pairs, stack.brain, post.restore_z, post.restore_dilation, inplane)
        if not suspect.any():
            break
        recon = restore_pass(
            model, stack, brain, recon, plain, suspect, absent, inference, device,
            on_batch, present,
        )  # fmt: skip
        if on_pass is not None:
            on_pass(k, stack.to_volume(recon, normalised))
    keep_plain = [i for i, m in enumerate(MODALITIES) if m not in post.restore_maps]
    if recon is not plain:
        recon[:, keep_plain] = plain[:, keep_plain]
    return stack.to_volume(recon, normalised)
