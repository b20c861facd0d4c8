"""Training-time augmentation of healthy slices, all on (B, C, X, Y) torch batches.

Why each one: intensity scale/shift and gamma mimic scanner and protocol differences the
z-score does not remove; the small affine and the flip widen a small healthy set; modality
dropout teaches one model to work on any subset of sequences; coarse noise (a denoising
objective) teaches the model to *remove* blob-like deviations from healthy anatomy, which is
what a tumour looks like to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from brats_goat.conventions import MODALITIES


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (see ``brats_goat.training.augment`` for why each exists)."""

    flip_p: float = 0.5
    #: Probability that a batch gets the small affine / the intensity changes.
    affine_p: float = 0.5
    intensity_p: float = 0.8
    rotate_deg: float = 8.0
    zoom: float = 0.08
    #: Translation as a fraction of the half field of view (affine_grid units).
    translate: float = 0.04
    gamma: tuple[float, float] = (0.8, 1.25)
    scale: tuple[float, float] = (0.9, 1.1)
    shift: tuple[float, float] = (-0.1, 0.1)
    #: Per-modality drop probability on the samples chosen for dropout.
    modality_dropout: float = 0.0
    #: Fraction of samples that always keep all four modalities.
    keep_all_fraction: float = 0.5
    #: Coarse-noise denoising objective: std in z units (0 = off) and the noise grid size.
    noise_std: float = 0.0
    noise_resolution: int = 16

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (tests, ablations)."""
        return cls(flip_p=0.0, affine_p=0.0, intensity_p=0.0)


def _uniform(
    shape: tuple[int, ...], lo: float, hi: float, generator: torch.Generator
) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=generator)


def brain_of(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, X, Y) voxels where any modality is non-zero (background is exactly 0)."""
    return (x != 0).any(dim=1, keepdim=True)


def flip_lr(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator) < p
    if flip.any():
        x = x.clone()
        x[flip] = x[flip].flip(dims=(2,))
    return x


def intensity(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per sample and channel: gamma on the brain's [min, max] range, then scale and shift."""
    b, c = x.shape[:2]
    brain = brain_of(x)
    out = x
    if cfg.gamma[0] != 1.0 or cfg.gamma[1] != 1.0:
        gamma = torch.exp(
            _uniform((b, c, 1, 1), math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), generator)
        )
        big = torch.finfo(x.dtype).max
        lo = torch.where(brain, x, big).amin(dim=(2, 3), keepdim=True)
        hi = torch.where(brain, x, -big).amax(dim=(2, 3), keepdim=True)
        span = (hi - lo).clamp_min(1e-6)
        unit = ((x - lo) / span).clamp(0, 1)
        out = lo + span * unit.pow(gamma.to(x.dtype))
    scale = _uniform((b, c, 1, 1), *cfg.scale, generator).to(x.dtype)
    shift = _uniform((b, c, 1, 1), *cfg.shift, generator).to(x.dtype)
    return torch.where(brain, out * scale + shift, torch.zeros_like(x))


def small_affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Rotation, isotropic zoom and translation, the same for all channels of a slice."""
    b = x.shape[0]
    angle = _uniform((b,), -cfg.rotate_deg, cfg.rotate_deg, generator) * math.pi / 180
    zoom = _uniform((b,), 1 - cfg.zoom, 1 + cfg.zoom, generator)
    shift = _uniform((b, 2), -cfg.translate, cfg.translate, generator)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def keep_a_key_channel(
    present: torch.Tensor, available: torch.Tensor, rows: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Give ``rows`` (where dropout took both) back t1c or t2f, drawn at random among those
    the slice really has: a channel absent from the data is never marked present."""
    key = torch.tensor([MODALITIES.index("t1c"), MODALITIES.index("t2f")])
    pick = torch.randint(0, 2, (len(rows),), generator=generator)
    first, other = key[pick], key[1 - pick]
    chosen = torch.where(available[rows, first] > 0, first, other)
    present[rows, chosen] = available[rows, chosen]
    return present


def modality_dropout(
    x: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero out random modalities; always keep t2f or t1c (predict needs one of them).

    ``available`` (B, C) 1/0: the modalities each slice really has (None: all). Returns the
    batch and the (B, C) presence mask the model is told about: never more than the data
    has, so the model is not taught that a scan's t1c is a zero image.
    """
    b, c = x.shape[:2]
    avail = torch.ones(b, c) if available is None else available.float()
    if cfg.modality_dropout <= 0:
        return x * avail[:, :, None, None].to(x.dtype), avail
    drop_some = torch.rand(b, generator=generator) >= cfg.keep_all_fraction
    dropped = (torch.rand(b, c, generator=generator) < cfg.modality_dropout) & drop_some[:, None]
    present = (~dropped).float() * avail
    key = [MODALITIES.index("t1c"), MODALITIES.index("t2f")]
    none_key = present[:, key].sum(dim=1) == 0
    if none_key.any():
        rows = torch.nonzero(none_key).flatten()
        present = keep_a_key_channel(present, avail, rows, generator)
    return x * present[:, :, None, None].to(x.dtype), present


def coarse_noise(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Low-resolution Gaussian noise, upsampled and added inside the brain (denoising AE)."""
    if cfg.noise_std <= 0:
        return x
    b, c, h, w = x.shape
    noise = torch.randn((b, c, cfg.noise_resolution, cfg.noise_resolution), generator=generator)
    noise = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    return x + cfg.noise_std * noise.to(x.dtype) * brain_of(x)


class Augmented(NamedTuple):
    """One augmented batch: what the model sees, what it must give back, and what counts."""

    input: torch.Tensor
    target: torch.Tensor
    #: (B, C) modalities shown to the model (and scored): in the data and not dropped.
    present: torch.Tensor
    #: (B, 1, X, Y) bool voxels left out of the loss, moved with the geometry; or None.
    ignore: torch.Tensor | None


def geometry(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, ignore: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip and small affine; ``ignore`` rides along as an extra channel so it moves with
    the anatomy (any overlap with an ignored voxel after resampling stays ignored)."""
    c = x.shape[1]
    if ignore is not None:
        x = torch.cat([x, ignore.to(x.dtype)], dim=1)
    x = flip_lr(x, cfg.flip_p, generator)
    if torch.rand((), generator=generator) < cfg.affine_p:
        x = small_affine(x, cfg, generator)
    if ignore is None:
        return x, None
    return x[:, :c], x[:, c:] > 0


def augment_batch(
    x: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    available: torch.Tensor | None = None,
    ignore: torch.Tensor | None = None,
) -> Augmented:
    """One training batch -> (model input, clean target, presence mask, ignored voxels).

    The geometric and intensity changes apply to input and target alike; dropout and
    noise only to the input, so the model learns to restore the clean healthy slice.
    ``available`` (B, C): modalities in the data; ``ignore`` (B, 1, X, Y): lesion voxels.
    """
    x, ignore = geometry(x, cfg, generator, ignore)
    if torch.rand((), generator=generator) < cfg.intensity_p:
        x = intensity(x, cfg, generator)
    target = x
    inp, present = modality_dropout(x, cfg, generator, available)
    inp = coarse_noise(inp, cfg, generator) * present[:, :, None, None].to(x.dtype)
    return Augmented(inp, target, present, ignore)
