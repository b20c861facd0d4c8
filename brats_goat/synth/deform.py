"""Per-case geometry: affine jitter, smooth random warp and tumour mass effect.

All deformations are smooth, so they are evaluated on a coarse grid (every few voxels),
upsampled trilinearly and applied in one pass with ``torch.nn.functional.grid_sample``:
one interpolation of the tissue maps per case, whatever the number of lesions.

Conventions: coordinates are BraTS voxel indices (1 mm isotropic, so also millimetres);
a warp maps an *output* position to the *source* position in the template tissue maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

from brats_goat.synth.config import DeformConfig


@dataclass(frozen=True)
class AnatomicalWarp:
    """x -> matrix @ (x - centre) + centre + offset + smooth displacement(x)."""

    matrix: np.ndarray  # (3, 3), output -> source
    centre: np.ndarray  # (3,)
    offset: np.ndarray  # (3,)
    lattice: np.ndarray  # (3, lx, ly, lz) displacement control points (mm)
    spacing: float  # control-point spacing (voxels)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Source positions (N, 3) of output positions ``points`` (N, 3)."""
        src = (points - self.centre) @ self.matrix.T + self.centre + self.offset
        lat = (points / self.spacing).T
        for axis in range(3):
            src[:, axis] += ndimage.map_coordinates(
                self.lattice[axis], lat, order=3, mode="nearest", prefilter=False
            )
        return src


def random_anatomical_warp(
    rng: np.random.Generator, config: DeformConfig, centre: np.ndarray, shape: Sequence[int]
) -> AnatomicalWarp:
    """A random affine jitter about ``centre`` plus a smooth random displacement field.

    The scale is drawn in [scale_range], or near ``paediatric_scale`` for a small share of
    cases so the model also sees small brains. The displacement lattice is smoothed with a
    cubic B-spline (``prefilter=False`` on evaluation), which keeps it free of folding for
    the amplitudes used here.
    """
    if rng.random() < config.paediatric_probability:
        scale = config.paediatric_scale * (1.0 + 0.02 * rng.standard_normal())
    else:
        scale = rng.uniform(*config.scale_range)
    scales = scale * (1.0 + config.anisotropy * rng.standard_normal(3))
    angles = rng.uniform(-config.rotation_deg, config.rotation_deg, size=3)
    rotation = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    forward = rotation @ np.diag(scales)  # template -> case
    matrix = np.linalg.inv(forward)
    offset = rng.uniform(-config.translation_mm, config.translation_mm, size=3)
    lattice_shape = tuple(int(np.ceil(s / config.lattice_spacing_mm)) + 3 for s in shape)
    lattice = config.displacement_mm * rng.standard_normal((3, *lattice_shape))
    return AnatomicalWarp(
        matrix=matrix,
        centre=np.asarray(centre, float),
        offset=-matrix @ offset,
        lattice=lattice.astype(np.float64),
        spacing=config.lattice_spacing_mm,
    )


@dataclass(frozen=True)
class MassSource:
    """One lesion's push: tissue moves radially away from ``centre``."""

    centre: np.ndarray  # (3,)
    radius: float  # mm
    strength: float  # a in [0, 1)
    damped: bool  # fade near the brain surface (intra-axial lesions)


def mass_source(
    centre: np.ndarray, radius: float, damped: bool, config: DeformConfig
) -> MassSource:
    """A mass-effect source whose strength grows with the lesion size."""
    strength = min(config.mass_effect_max, config.mass_effect_per_mm * radius)
    return MassSource(np.asarray(centre, float), float(radius), strength, damped)


def mass_displacement(
    points: np.ndarray,
    sources: Sequence[MassSource],
    config: DeformConfig,
    surface_distance: np.ndarray | None = None,
) -> np.ndarray:
    """Displacement u (N, 3) so that output x samples the template at x - u(x).

    u = a (x - c) exp(-|x - c|^2 / 2 s^2): along a ray the radial map r -> r (1 - a g(r))
    stays monotonic for a < 1, so the lesion pushes tissue outward without folding it.
    ``surface_distance`` (mm from the brain surface at each point) fades damped sources.
    """
    u = np.zeros_like(points, dtype=np.float64)
    for src in sources:
        d = points - src.centre
        sigma = config.mass_effect_width * src.radius
        g = src.strength * np.exp(-np.sum(d * d, axis=1) / (2.0 * sigma * sigma))
        if src.damped and surface_distance is not None:
            g = g * np.clip(surface_distance / config.mass_effect_surface_ramp_mm, 0.0, 1.0)
        u += d * g[:, None]
    return u


def coarse_axes(
    start: Sequence[int] | np.ndarray, stop: Sequence[int] | np.ndarray, step: int
) -> list[np.ndarray]:
    """Node positions covering [start, stop) with about ``step`` spacing, ends included."""
    axes = []
    for a, b in zip(start, stop, strict=True):
        n = max(2, int(np.ceil((b - 1 - a) / step)) + 1)
        axes.append(np.linspace(a, b - 1, n))
    return axes


def grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 3) positions of the grid spanned by ``axes`` (C order)."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def upsample_coords(coarse: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """Trilinear upsampling of a (3, nx, ny, nz) coordinate field to ``size`` (end-aligned)."""
    t = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))[None]
    return F.interpolate(t, size=tuple(size), mode="trilinear", align_corners=True)[0]


def warp_stack(stack: torch.Tensor, coords: torch.Tensor) -> np.ndarray:
    """Sample every channel of ``stack`` (C, X, Y, Z) at ``coords`` (3, Dx, Dy, Dz), order 1.

    Outside the stack the result is 0 (background), which is what the tissue maps hold there.
    """
    shape = stack.shape[1:]
    grid = torch.empty((1, *coords.shape[1:], 3), dtype=torch.float32)
    # grid_sample's last grid axis is (W, H, D) = (z, y, x), normalised to [-1, 1].
    for g_axis, axis in ((0, 2), (1, 1), (2, 0)):
        grid[0, ..., g_axis] = coords[axis] * (2.0 / (shape[axis] - 1)) - 1.0
    out = F.grid_sample(
        stack[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[0].numpy()


def sample_points(volume: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Order-1 samples of ``volume`` at (N, 3) positions (0 outside): for coarse look-ups."""
    return ndimage.map_coordinates(volume, points.T, order=1, mode="constant", cval=0.0)
