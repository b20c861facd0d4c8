"""Run the autoencoder over every axial slice of a volume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from brats_goat.device import autocast, autocast_dtype, check_precision
from brats_goat.model.network import MViTAE
from brats_goat.stages.runtime import RUNTIMES, Network


@dataclass(frozen=True)
class InferenceConfig:
    """How the model is run."""

    device: str = "auto"  # auto | cpu | cuda
    #: Slices per forward pass. 48 (three passes cover a BraTS brain's ~135 slices): on the
    #: 2-core CPU, loaded, a case's reconstruction took 16-22 s against 33 s at 16 with the
    #: same output, for ~0.25 GB more peak memory (issue 18; one thread ran 13-17 s at
    #: either size there, but that is the load's doing: the default threads stay torch's).
    batch_size: int = 48
    #: Arithmetic of the forward pass: ``auto`` runs bfloat16 autocast on a GPU and on a CPU
    #: with native bfloat16 instructions (AVX512-BF16 or AMX), float32 elsewhere;
    #: ``float32`` and ``bfloat16`` force one. bfloat16 halves the CPU forward pass here
    #: (issue 18) and moves the reconstruction by ~0.001 z on average, far below the
    #: thresholds' scale (results/precision-agreement.md has the label agreement). The same
    #: input always gives the same output on one machine, in either precision.
    precision: str = "auto"
    #: Only slices with at least this many brain voxels are reconstructed; others are 0.
    min_brain_voxels: int = 100
    #: What runs the networks on the CPU (``brats_goat.stages.runtime``): ``auto`` = per
    #: network the fastest measured: OpenVINO for the SAM-family image encoder in float32
    #: (results/sam-encoder-runtimes.md), torch for the MViT-AE; ``torch`` = all eager (the
    #: reference); ``openvino`` = both through OpenVINO (results/forward-runtimes.md). Needs
    #: the ``openvino`` extra: without it ``auto`` runs torch, ``openvino`` torch with a
    #: warning. GPUs always run torch.
    runtime: str = "auto"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}")


def fit_plane(volume: np.ndarray, size: int) -> tuple[np.ndarray, tuple[slice, slice], tuple]:
    """Centre-pad or crop the in-plane axes to ``size`` so any grid reaches the model.

    Returns the fitted array, the slices that pick the original region back out of the
    fitted one, and padding for the inverse.
    """
    c, x, y, z = volume.shape
    if (x, y) == (size, size) and volume.dtype == np.float32:  # BraTS: no 140 MB copy
        whole = slice(0, size)
        return volume, (whole, whole), (whole, whole)
    out = np.zeros((c, size, size, z), dtype=np.float32)
    src, dst = [], []
    for n in (x, y):
        if n <= size:
            off = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(off, off + n))
        else:
            off = (n - size) // 2
            src.append(slice(off, off + size))
            dst.append(slice(0, size))
    out[:, dst[0], dst[1]] = volume[:, src[0], src[1]]
    return out, (dst[0], dst[1]), (src[0], src[1])


def brain_slices(brain: np.ndarray, min_voxels: int) -> np.ndarray:
    """(Z,) bool: the axial slices with at least ``min_voxels`` brain voxels, the only ones
    the network runs on (the rest hold no tissue whose residual is ever looked at)."""
    return brain.reshape(-1, brain.shape[2]).sum(axis=0) >= min_voxels


def as_slice(indices: list[int]) -> list[int] | slice:
    """A run of consecutive indices as a slice: numpy then copies blocks instead of
    gathering element by element (4x faster writing a batch back into the volume)."""
    if indices and indices[-1] - indices[0] == len(indices) - 1:
        return slice(indices[0], indices[-1] + 1)
    return indices


def _span(sl: slice) -> tuple[int, int]:
    return int(sl.start), int(sl.stop)


def _shifted(span: tuple[int, int], dst: slice, src: slice) -> slice:
    """The input grid's slice of a span of the model's plane (``fit_plane``'s offsets)."""
    shift = int(src.start) - int(dst.start)
    return slice(span[0] + shift, span[1] + shift)


def brain_window(
    brain: np.ndarray, todo: list[int], dst: tuple[slice, slice], src: tuple[slice, slice]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The in-plane box (model-plane pixels) of the brain on the slices ``todo``, within the
    part of the plane that maps back to the input grid; None when there is nothing."""
    if not todo:
        return None
    footprint = brain[..., todo].any(axis=2)[src[0], src[1]]
    spans = []
    for axis, sl in enumerate(dst):
        hit = np.flatnonzero(footprint.any(axis=1 - axis))
        if hit.size == 0:
            return None
        spans.append((int(sl.start) + int(hit[0]), int(sl.start) + int(hit[-1]) + 1))
    return spans[0], spans[1]


@torch.no_grad()
def reconstruct_volume(
    model: MViTAE | Network,
    volume: np.ndarray,
    brain: np.ndarray,
    cfg: InferenceConfig,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
    present: np.ndarray | None = None,
    only: np.ndarray | None = None,
) -> np.ndarray:
    """Reconstruct a normalised (C, X, Y, Z) volume slice by slice, batched.

    Slices with almost no brain are not run (they would be reconstructed as background
    anyway) and stay 0; ``only`` (Z,) bool restricts the run further (restoration re-runs
    only the slices it changed) and leaves the others 0 too. ``cfg.precision`` picks
    float32 or bfloat16 autocast (``brats_goat.device.autocast_dtype``). ``present`` (C,)
    bool says which modalities the volume really has (absent ones are zero images).
    ``model`` is the torch module or a compiled ``Network`` (``brats_goat.stages.runtime``),
    which runs where it was compiled.
    """
    size = model.cfg.image_size
    fitted, dst, src = fit_plane(volume, size)
    # Written straight into the volume's grid, masked in place: peak memory is what limits
    # batch size and the machines the container runs on.
    recon = np.zeros_like(volume)
    run = brain_slices(brain, cfg.min_brain_voxels)
    todo = [int(z) for z in np.flatnonzero(run if only is None else run & only)]
    dtype = autocast_dtype(cfg.precision, device) if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    mask = None
    if present is not None and model.cfg.modality_mask:
        mask = torch.as_tensor(np.asarray(present, dtype=np.float32), device=device)[None]
    # The decoder works only on the brain's in-plane box (MViTAE.decode's window): what
    # lies outside is masked to 0 below anyway. A compiled network decodes everything.
    window = brain_window(brain, todo, dst, src) if isinstance(model, MViTAE) else None
    rows, cols = window or (_span(dst[0]), _span(dst[1]))
    out_rows, out_cols = _shifted(rows, dst[0], src[0]), _shifted(cols, dst[1], src[1])
    for start in range(0, len(todo), cfg.batch_size):
        idx = as_slice(todo[start : start + cfg.batch_size])
        batch = torch.from_numpy(np.ascontiguousarray(fitted[..., idx].transpose(3, 0, 1, 2)))
        batch = batch.to(device)
        present_b = None if mask is None else mask.expand(len(batch), -1)
        with autocast(dtype, device):
            out = model(batch, present_b, window) if window else model(batch, present_b)
        if window is None:
            out = out[:, :, rows[0] : rows[1], cols[0] : cols[1]]
        recon[:, out_rows, out_cols, idx] = out.float().cpu().numpy().transpose(1, 2, 3, 0)
        if on_batch is not None:
            on_batch(len(batch))
    recon *= brain[None]
    return recon
