"""Run the autoencoder over every axial slice of a volume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from brats_goat.device import autocast, autocast_dtype, check_precision
from brats_goat.model.network import MViTAE, Window
from brats_goat.stages.runtime import Network, check_runtime


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
        check_runtime(self.runtime)


def plane_spans(x: int, y: int, size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where an (x, y) plane sits on the model's ``size`` x ``size`` plane (centred, padded
    or cropped): the model-plane region it fills, and the part of it that is shown."""
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
    return (dst[0], dst[1]), (src[0], src[1])


def brain_slices(brain: np.ndarray, min_voxels: int) -> np.ndarray:
    """(Z,) bool: the axial slices with at least ``min_voxels`` brain voxels, the only ones
    the network runs on (the rest hold no tissue whose residual is ever looked at)."""
    return brain.reshape(-1, brain.shape[2]).sum(axis=0) >= min_voxels


def slices_to_run(brain: np.ndarray, min_voxels: int, only: np.ndarray | None = None) -> list[int]:
    """The axial slices the network runs on (``brain_slices``), within ``only`` (Z,) bool."""
    run = brain_slices(brain, min_voxels)
    return [int(i) for i in np.flatnonzero(run if only is None else run & only)]


def as_slice(indices: list[int]) -> list[int] | slice:
    """A run of consecutive indices as a slice: numpy then copies blocks instead of
    gathering element by element (4x faster writing a batch back into the volume)."""
    if indices and indices[-1] - indices[0] == len(indices) - 1:
        return slice(indices[0], indices[-1] + 1)
    return indices


def _span(sl: slice) -> tuple[int, int]:
    return int(sl.start), int(sl.stop)


def _shifted(span: tuple[int, int], dst: slice, src: slice) -> slice:
    """The input grid's slice of a span of the model's plane (``plane_spans``' offsets)."""
    shift = int(src.start) - int(dst.start)
    return slice(span[0] + shift, span[1] + shift)


def brain_window(
    brain: np.ndarray, todo: list[int], dst: tuple[slice, slice], src: tuple[slice, slice]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The in-plane box (model-plane pixels) of the brain on the slices ``todo``, within the
    part of the plane that maps back to the input grid; None when there is nothing."""
    if not todo:
        return None
    footprint = np.asarray(brain[..., as_slice(todo)].any(axis=2))[src[0], src[1]]
    spans = []
    for axis, sl in enumerate(dst):
        hit = np.flatnonzero(footprint.any(axis=1 - axis))
        if hit.size == 0:
            return None
        spans.append((int(sl.start) + int(hit[0]), int(sl.start) + int(hit[-1]) + 1))
    return spans[0], spans[1]


@dataclass(frozen=True)
class PlaneBox:
    """Where a network's outputs are kept: a box on the model's plane, the same box on the
    volume's grid, and whether the network decodes only it (``MViTAE.decode``'s window;
    a compiled network decodes the whole plane, cropped to the box after)."""

    plane: Window
    grid: tuple[slice, slice]
    windowed: bool

    @property
    def shape(self) -> tuple[int, int]:
        (r0, r1), (c0, c1) = self.plane
        return r1 - r0, c1 - c0


def output_box(model: MViTAE | Network, brain: np.ndarray, z: list[int]) -> PlaneBox:
    """The brain's in-plane box on the slices ``z`` (``brain_window``), or the whole shown
    plane where the network cannot decode a part of it or there is no brain."""
    dst, src = plane_spans(brain.shape[0], brain.shape[1], model.cfg.image_size)
    window = brain_window(brain, z, dst, src) if isinstance(model, MViTAE) else None
    plane = window or (_span(dst[0]), _span(dst[1]))
    grid = (_shifted(plane[0], dst[0], src[0]), _shifted(plane[1], dst[1], src[1]))
    return PlaneBox(plane, grid, window is not None)


def network_input(volume: np.ndarray, z: list[int], size: int) -> np.ndarray:
    """The slices ``z`` of a (C, X, Y, Z) volume as the network reads them: (N, C, S, S)
    float32, slice after slice, centred on the model's plane: padded with 0 or cropped
    (``plane_spans``)."""
    c, x, y, _ = volume.shape
    picked = volume[..., as_slice(z)]
    if (x, y) == (size, size):
        return np.ascontiguousarray(picked.transpose(3, 0, 1, 2), dtype=np.float32)
    dst, src = plane_spans(x, y, size)
    out = np.zeros((len(z), c, size, size), dtype=np.float32)
    out[:, :, dst[0], dst[1]] = picked[:, src[0], src[1]].transpose(3, 0, 1, 2)
    return out


@dataclass
class SliceStack:
    """Slices of a case in the network's layout, with the box its outputs are kept on.

    The volumes are (C, X, Y, Z), the network reads (N, C, S, S): one transposing copy per
    case serves every pass (restoration edits a copy of it), and the outputs stay
    slice-major on the box until ``to_volume`` writes them back once. Gathering every batch
    out of the volume and scattering it back, pass after pass, cost ~1 s per case (issue 18).
    """

    z: list[int]  # the slices' axial indices, ascending
    inputs: np.ndarray  # (N, C, S, S) float32
    brain: np.ndarray  # (N, h, w) bool: the brain on the box
    box: PlaneBox

    @classmethod
    def of(
        cls,
        model: MViTAE | Network,
        brain: np.ndarray,
        z: list[int],
        volume: np.ndarray | None = None,
        inputs: np.ndarray | None = None,
    ) -> SliceStack:
        """The slices ``z``, read from ``volume`` unless their ``inputs`` are given."""
        box = output_box(model, brain, z)
        if inputs is None:
            assert volume is not None, "the slices' inputs or their volume"
            inputs = network_input(volume, z, model.cfg.image_size)
        inside = brain[box.grid[0], box.grid[1]][..., as_slice(z)].transpose(2, 0, 1)
        return cls(z, inputs, inside, box)

    @property
    def on_box(self) -> np.ndarray:
        """(N, C, h, w) view of the inputs on the box."""
        (r0, r1), (c0, c1) = self.box.plane
        return self.inputs[:, :, r0:r1, c0:c1]

    def to_volume(self, values: np.ndarray, like: np.ndarray) -> np.ndarray:
        """(N, C, h, w) values on the box -> a (C, X, Y, Z) volume like ``like``, 0 elsewhere."""
        volume = np.zeros_like(like)
        volume[:, self.box.grid[0], self.box.grid[1], as_slice(self.z)] = values.transpose(
            1, 2, 3, 0
        )
        return volume


@torch.no_grad()
def run_network(
    model: MViTAE | Network,
    stack: SliceStack,
    cfg: InferenceConfig,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C, h, w): the network's output for every slice of ``stack`` on its box, batched,
    0 outside the brain. ``cfg.precision`` picks float32 or bfloat16 autocast
    (``brats_goat.device.autocast_dtype``); ``present`` (C,) bool says which modalities
    are real (absent ones are zero images)."""
    dtype = autocast_dtype(cfg.precision) if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    mask = None
    if present is not None and model.cfg.modality_mask:
        mask = torch.as_tensor(np.asarray(present, dtype=np.float32), device=device)[None]
    (r0, r1), (c0, c1) = stack.box.plane
    out = np.empty((*stack.inputs.shape[:2], *stack.box.shape), dtype=np.float32)
    for start in range(0, len(out), cfg.batch_size):
        batch = torch.from_numpy(stack.inputs[start : start + cfg.batch_size]).to(device)
        present_b = None if mask is None else mask.expand(len(batch), -1)
        with autocast(dtype, device):
            if stack.box.windowed:
                # Windowed only where the torch module runs, the one that takes a plane.
                y = cast(Any, model)(batch, present_b, stack.box.plane)
            else:
                y = model(batch, present_b)[:, :, r0:r1, c0:c1]
        # 0 outside the brain, written as the batch is copied out (one pass, not two).
        part = slice(start, start + len(batch))
        np.multiply(y.float().cpu().numpy(), stack.brain[part, None], out=out[part])
        if on_batch is not None:
            on_batch(len(batch))
    return out


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
    anyway) and stay 0; ``only`` (Z,) bool restricts the run further and leaves the others
    0 too; voxels outside ``brain`` are 0. ``model`` is the torch module or a compiled
    ``Network`` (``brats_goat.stages.runtime``), which runs where it was compiled.
    """
    z = slices_to_run(brain, cfg.min_brain_voxels, only)
    if not z:
        return np.zeros_like(volume)
    stack = SliceStack.of(model, brain, z, volume)
    return stack.to_volume(run_network(model, stack, cfg, device, on_batch, present), volume)
