"""Cases on other grids: segmented on a 1 mm frame of the model's size, written on their own.

The model was trained on 1 mm axial slices of 240 x 240 (the BraTS grid, SRI24). Thick
slices (1 x 1 x 3 mm) or fine voxels (0.5 mm) would show it anatomy at another scale, and
a larger field of view (512 x 512) would be centre-cropped to the model's plane, cutting the
brain. Such a case is resampled with SimpleITK (linear for images) to a *frame*: 1 mm
voxels, 240 x 240 in-plane, as tall as the brain plus a margin, centred on the brain and
with the input's own axis directions (only a scaling and a shift, never a rotation). The
results are resampled back to the input's grid (nearest neighbour for labels) and written
with its header. A case already on a 1 mm grid that fits goes the old way, untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from brats_goat.io.grid import BRATS_SHAPE
from brats_goat.io.read import CaseError, CaseVolumes
from brats_goat.masks import bounding_box

#: In-plane size of the frame: the BraTS grid, which the model's slices are (image_size).
FRAME_SIZE = BRATS_SHAPE[0]
#: Voxel sizes this close to 1 mm are 1 mm (headers store float32 zooms).
SPACING_ATOL_MM = 1e-3
#: Empty slices below and above the brain in the frame: erosion and morphology at the
#: brain's top and bottom then see background, as on BraTS volumes.
Z_MARGIN = 4

#: Linearly resampled values below this share of the image's largest are 0. ITK steps along
#: each row adding to the continuous index, which drifts by ~1e-14 voxel: on a 1 mm input
#: the voxels next to the brain would get ~1e-12 of it, and the brain (non-zero voxels)
#: would grow by a rim of near-zero voxels. A value that small is no signal anyway.
NEGLIGIBLE = 1e-6

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Frame:
    """The 1 mm frame in a case's canonical voxel grid: frame voxel ``j`` lies at input voxel
    ``offset + j / spacing``. ``offset`` is whole, so on a 1 mm input the frame is an exact
    crop or pad (linear interpolation at whole indices returns the voxels themselves, to
    ~1e-12, see ``NEGLIGIBLE``)."""

    spacing: Vec3
    offset: tuple[int, int, int]
    shape: tuple[int, int, int]
    source_shape: tuple[int, int, int]

    @property
    def origin(self) -> Vec3:
        """Frame voxel 0 in the input's index space scaled to mm (origin at input voxel 0)."""
        return cast(Vec3, tuple(o * s for o, s in zip(self.offset, self.spacing, strict=True)))

    def to_frame(self, data: np.ndarray, nearest: bool = False) -> np.ndarray:
        """An array on the input's canonical grid, resampled onto the frame."""
        grid = (self.spacing, (0.0,) * 3)
        return resample(data, grid, (1.0,) * 3, self.origin, self.shape, nearest)

    def from_frame(self, data: np.ndarray, nearest: bool = False) -> np.ndarray:
        """An array on the frame, resampled back onto the input's canonical grid (0 outside)."""
        grid = ((1.0,) * 3, self.origin)
        return resample(data, grid, self.spacing, (0.0,) * 3, self.source_shape, nearest)


def resample(
    data: np.ndarray,
    source: tuple[Vec3, Vec3],
    spacing: Vec3,
    origin: Vec3,
    shape: tuple[int, ...],
    nearest: bool,
) -> np.ndarray:
    """``data`` (spacing, origin of ``source``) on the grid ``spacing``/``origin``/``shape``.

    Both grids share the axes, so geometry is index space scaled to mm, which spares every
    LPS/RAS sign convention. SimpleITK's axes are numpy's reversed. Voxels outside ``data``
    are 0; the dtype is kept (bool goes through uint8, which SimpleITK has).
    """
    if data.dtype == bool:
        return resample(data.view(np.uint8), source, spacing, origin, shape, nearest).astype(bool)
    import SimpleITK as sitk  # here: BraTS grids never need it, and it costs start-up time

    image = sitk.GetImageFromArray(np.ascontiguousarray(data))
    image.SetSpacing([float(v) for v in reversed(source[0])])
    image.SetOrigin([float(v) for v in reversed(source[1])])
    out = sitk.Resample(
        image,
        [int(n) for n in reversed(shape)],
        sitk.Transform(3, sitk.sitkIdentity),
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        [float(v) for v in reversed(origin)],
        [float(v) for v in reversed(spacing)],
        np.eye(3).ravel().tolist(),
        0.0,
        image.GetPixelID(),
    )
    result = sitk.GetArrayFromImage(out)
    if not nearest:
        scale = float(np.abs(data).max(initial=0.0))
        result[np.abs(result) < NEGLIGIBLE * scale] = 0
    return result


@dataclass
class FramedVolumes(CaseVolumes):
    """A case whose ``arrays`` are on its 1 mm ``frame``; ``reference`` stays the input, so
    every output mapped by ``to_stored`` is on the input's exact grid and header."""

    frame: Frame = field(kw_only=True)

    def to_stored(self, canonical: np.ndarray) -> np.ndarray:
        """A frame array on the input's grid and storage order: labels (integers) by nearest
        neighbour, which keeps them labels; float maps linearly."""
        nearest = not np.issubdtype(canonical.dtype, np.floating)
        return super().to_stored(self.frame.from_frame(canonical, nearest))

    def from_stored(self, stored: np.ndarray) -> np.ndarray:
        """An array on the input's grid (a reference label map) on the frame."""
        nearest = not np.issubdtype(stored.dtype, np.floating)
        return self.frame.to_frame(super().from_stored(stored), nearest)

    @property
    def resampled(self) -> dict[str, Any]:
        """The input's and the frame's grid in the input's storage order (the report's)."""
        axes = [int(a) for a in self.to_canonical[:, 0]]  # canonical axis of each stored axis
        spacing = stored_spacing(self.reference.affine)
        return {
            "from": {"shape": list(self.reference.shape[:3]), "spacing_mm": spacing},
            "to": {"shape": [self.frame.shape[a] for a in axes], "spacing_mm": [1.0] * 3},
        }


def stored_spacing(affine: np.ndarray) -> list[float]:
    """Voxel size (mm) per stored axis: from the affine, which is what places the voxels."""
    return [round(float(v), 4) for v in np.linalg.norm(affine[:3, :3], axis=0)]


def canonical_spacing(volumes: CaseVolumes) -> Vec3:
    """Voxel size (mm) along each axis of ``volumes.arrays``."""
    stored = np.linalg.norm(volumes.reference.affine[:3, :3], axis=0)
    spacing = [0.0] * 3
    for axis, canonical in enumerate(volumes.to_canonical[:, 0]):
        spacing[int(canonical)] = float(stored[axis])
    return (spacing[0], spacing[1], spacing[2])


def needs_frame(shape: tuple[int, ...], spacing: Vec3) -> bool:
    """Whether a canonical grid is off 1 mm or wider than the model's slices in-plane."""
    off_1mm = not np.allclose(spacing, 1.0, rtol=0.0, atol=SPACING_ATOL_MM)
    return off_1mm or max(shape[0], shape[1]) > FRAME_SIZE


def plan_frame(case_id: str, brain: np.ndarray, spacing: Vec3) -> Frame:
    """The frame centred on the bounding box of ``brain`` (the non-zero voxels), so a large
    field of view with the brain off-centre is not cut; ``CaseError`` when the brain does
    not fit in 240 x 240 mm in-plane."""
    box = bounding_box(brain)
    lo, hi = np.array([s.start for s in box]), np.array([s.stop - 1 for s in box])
    step = np.asarray(spacing)
    extent = (hi - lo + 1) * step
    shape = np.array([FRAME_SIZE, FRAME_SIZE, math.ceil(extent[2] - 1e-6) + 2 * Z_MARGIN])
    offset = np.round((lo + hi) / 2 - (shape - 1) / 2 / step).astype(int)
    last = offset + (shape - 1) / step
    if np.any(offset > lo) or np.any(last < hi):
        raise CaseError(
            f"case {case_id}: the brain (non-zero voxels) spans {extent[0]:.0f} x "
            f"{extent[1]:.0f} mm in-plane, more than the model's {FRAME_SIZE} x {FRAME_SIZE} "
            "mm at 1 mm; a skull-stripped brain fits (are the background zero and the voxel "
            "size in the header right?)"
        )
    sizes = cast(tuple[int, int, int], tuple(int(n) for n in shape))
    start = cast(tuple[int, int, int], tuple(int(o) for o in offset))
    return Frame(spacing, start, sizes, cast(tuple[int, int, int], tuple(brain.shape)))


def to_model_frame(volumes: CaseVolumes) -> CaseVolumes:
    """``volumes`` on the 1 mm frame, with a warning, when its grid needs it; else
    ``volumes`` itself (a BraTS-grid case is processed exactly as before)."""
    spacing = canonical_spacing(volumes)
    shape = next(iter(volumes.arrays.values())).shape
    if not needs_frame(shape, spacing):
        return volumes
    brain = np.logical_or.reduce([a != 0 for a in volumes.arrays.values()])
    frame = plan_frame(volumes.case_id, brain, spacing)
    del brain
    arrays = {m: frame.to_frame(a) for m, a in volumes.arrays.items()}
    framed = FramedVolumes(
        volumes.case_id, arrays, volumes.reference, volumes.to_canonical, frame=frame
    )
    grids = framed.resampled
    framed.warnings = [
        *volumes.warnings,
        f"grid {_grid(grids['from'])} is not the model's (1 mm, at most {FRAME_SIZE} x "
        f"{FRAME_SIZE} in-plane): segmented after resampling to {_grid(grids['to'])} "
        "centred on the brain (linear); labels resampled back to the input grid (nearest)",
    ]
    return framed


def _grid(grid: dict[str, list]) -> str:
    """``512x512x300 at 0.5x0.5x0.5 mm``."""
    shape = "x".join(str(n) for n in grid["shape"])
    return f"{shape} at {'x'.join(f'{s:g}' for s in grid['spacing_mm'])} mm"
