"""Smooth random fields: the building block of shapes, textures and bias fields.

Random values on a coarse lattice, lightly smoothed there and upsampled trilinearly: the
cost is that of one trilinear interpolation, whatever the correlation length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], scale_vox: float) -> np.ndarray:
    """Float32 field of ``shape``, zero mean, std about 1, correlation length ~``scale_vox``."""
    lattice_shape = tuple(max(2, int(np.ceil(s / max(scale_vox, 1.0))) + 1) for s in shape)
    lattice = rng.standard_normal(lattice_shape)
    lattice = ndimage.gaussian_filter(lattice, 0.7, mode="reflect")
    lattice = (lattice - lattice.mean()) / (lattice.std() + 1e-9)
    t = torch.from_numpy(lattice.astype(np.float32))[None, None]
    up = F.interpolate(t, size=tuple(int(s) for s in shape), mode="trilinear", align_corners=True)
    return np.ascontiguousarray(up[0, 0].numpy())
