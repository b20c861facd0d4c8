"""MNI ICBM152 2009 tissue templates (shipped with nilearn) placed in the BraTS grid.

The templates are the only anatomy source, so the generator works offline. They are
resampled once per process into the BraTS (SRI24-like, LPS-stored) grid with a scale and
translation that put the brain where real BraTS brains sit; per-case variation is added
later by :mod:`brats_goat.synth.deform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from brats_goat.io.grid import BRATS_SHAPE, brats_affine
from brats_goat.synth.config import AnatomyConfig

#: Channel order of :meth:`TissueMaps.stack`.
TISSUES: tuple[str, ...] = ("gm", "wm", "csf", "brain")
_DEFAULT = AnatomyConfig()


@dataclass(frozen=True)
class TissueMaps:
    """Partial-volume tissue probabilities on the BraTS grid (float32, each in [0, 1]).

    ``brain`` is the (soft) brain mask; inside it gm + wm + csf == brain.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray

    def stack(self) -> np.ndarray:
        """(4, X, Y, Z) array in :data:`TISSUES` order (one warp moves all channels)."""
        return np.stack([self.gm, self.wm, self.csf, self.brain])


def _load_mni() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM, brain mask and the (shared) voxel->world affine of the 1 mm MNI templates."""
    from nilearn import datasets  # heavy import: only when the templates are needed

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(), np.float32)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).get_fdata(), np.float32)
    gm = np.asarray(gm_img.get_fdata(), np.float32)
    return gm, wm, mask, np.asarray(gm_img.affine, float)


def brats_to_template_matrix(config: AnatomyConfig, mni_mask: np.ndarray, mni_affine: np.ndarray):
    """4x4 map from BraTS voxel indices to template voxel indices.

    Both grids are related through world coordinates (RAS, as nibabel reports them), so the
    LPS storage of BraTS and the RAS storage of the template need no special casing: the
    affines carry the flips. The template's bounding-box centre (x, y) and top (z) are
    matched to the configured BraTS position, and the brain is scaled to real size.
    """
    idx = np.argwhere(mni_mask > 0.5)
    lo, hi = idx.min(0), idx.max(0)
    anchor_t_vox = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2], 1.0])
    cx, cy = config.centre_xy_vox
    anchor_b_vox = np.array([cx, cy, config.top_z_vox, 1.0])
    anchor_t = (mni_affine @ anchor_t_vox)[:3]
    anchor_b = (brats_affine() @ anchor_b_vox)[:3]
    # world_t = anchor_t + (world_b - anchor_b) / scale
    world = np.eye(4)
    world[:3, :3] = np.diag(1.0 / np.asarray(config.scale))
    world[:3, 3] = anchor_t - world[:3, :3] @ anchor_b
    return np.linalg.inv(mni_affine) @ world @ brats_affine()


@lru_cache(maxsize=2)
def template_tissues(config: AnatomyConfig = _DEFAULT) -> TissueMaps:
    """Template tissue maps in the BraTS grid; computed once per process (~3 s)."""
    gm, wm, mask, mni_affine = _load_mni()
    matrix = brats_to_template_matrix(config, mask, mni_affine)

    def resample(vol: np.ndarray) -> np.ndarray:
        out = ndimage.affine_transform(
            vol, matrix[:3, :3], offset=matrix[:3, 3], output_shape=BRATS_SHAPE, order=1
        )
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    brain = resample(mask)
    gm_b = resample(gm)
    wm_b = resample(wm)
    # Template GM + WM can exceed 1 by rounding: CSF is the (clipped) remainder, and the
    # three are renormalised so that gm + wm + csf == brain.
    csf = np.clip(1.0 - gm_b - wm_b, 0.0, 1.0)
    gamma = np.float32(config.sharpen_gamma)
    parts = [np.power(p, gamma) for p in (gm_b, wm_b, csf)]
    total = np.maximum(parts[0] + parts[1] + parts[2], 1e-6)
    gm_b, wm_b, csf = (p / total * brain for p in parts)
    maps = TissueMaps(gm=gm_b, wm=wm_b, csf=csf, brain=brain)
    for arr in (maps.gm, maps.wm, maps.csf, maps.brain):
        arr.setflags(write=False)  # shared by every case of the process: keep it intact
    return maps


@lru_cache(maxsize=2)
def template_tensor(config: AnatomyConfig = _DEFAULT) -> torch.Tensor:
    """(4, X, Y, Z) float32 tensor of :func:`template_tissues`, cached: the warp input."""
    return torch.from_numpy(template_tissues(config).stack())


def brain_centre(config: AnatomyConfig = _DEFAULT) -> np.ndarray:
    """Centre of mass (voxels) of the template brain: the pivot of rotations and scaling."""
    return _brain_centre_cached(config).copy()


@lru_cache(maxsize=2)
def _brain_centre_cached(config: AnatomyConfig) -> np.ndarray:
    brain = template_tissues(config).brain
    return np.asarray(ndimage.center_of_mass(brain), dtype=float)
