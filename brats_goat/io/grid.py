"""The BraTS (SRI24) voxel grid: 240 x 240 x 155 at 1 mm, stored LPS."""

from __future__ import annotations

import numpy as np

BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)


def brats_affine() -> np.ndarray:
    """Affine of BraTS 2023 cases (as in the real cases: x and y flipped, LPS order)."""
    return np.array(
        [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
