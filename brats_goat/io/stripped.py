"""Is the brain skull-stripped? A bright shell around it says it is not (issue 27, item 2).

Everything after reading takes "brain" to mean "not 0" (the BraTS preprocessing). A head
whose skull or scalp was kept but whose background is 0 passed every other check: the
scalp became "brain", was z-scored with it, and the labels went onto it (a run put 1.0
million NETC voxels there). The outer surface of a stripped brain is cortex and CSF,
dimmer than its interior in t1n, t1c and t2f; a scalp (fat) is brighter. So the check
looks at the voxels first met from outside, along each axis from both sides, and refuses
an image where most of them are brighter than the brain's centre.

t2w is not checked: its CSF is bright, so a stripped brain's surface is bright there too
(up to 70% of the outermost voxels on the development data).

Measured on every development scan (``python scripts/measure_skull_strip.py ... --shell``:
the 4 ``real``, 3 ``real-expert``, 10 ``brats18-dev`` and 14 ``healthy-real`` cases): the
share of bright outermost voxels is at most 0.29 in t1c (Brats18_CBICA_ASG_1), 0.21 in t2f
and 0.13 in t1n; with a 6-voxel shell at 1.3x the brain's 99.5th percentile it is 0.98-1.00
on every one of them. The limit, 0.6, is twice the largest stripped share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brats_goat.io.errors import CaseError
from brats_goat.masks import bounding_box


@dataclass(frozen=True)
class StrippedCheck:
    """What counts as a bright shell around the brain (see the module docstring)."""

    #: Voxels taken from the outside inwards along each ray (axis and side).
    depth: int = 3
    #: A surface voxel is bright above this multiple of the median of the brain's centre
    #: (the middle half of its bounding box along each axis).
    bright_factor: float = 1.25
    #: Share of bright surface voxels above which the image is refused.
    max_bright_share: float = 0.6
    #: Modalities whose stripped surface is dark (not t2w: bright CSF).
    modalities: tuple[str, ...] = ("t1n", "t1c", "t2f")


def surface_values(data: np.ndarray, depth: int) -> np.ndarray:
    """The first ``depth`` non-zero voxels met along every ray parallel to an axis, from
    both sides: what lies outermost, where a skull or scalp would be."""
    inside = data != 0
    values = []
    for axis in range(data.ndim):
        hit = inside.any(axis=axis)
        rays = np.nonzero(hit)
        length = data.shape[axis]
        first = inside.argmax(axis=axis)[hit]
        last = length - 1 - np.flip(inside, axis=axis).argmax(axis=axis)[hit]
        for start, step in ((first, 1), (last, -1)):
            for k in range(depth):
                at = np.clip(start + step * k, 0, length - 1)
                index = list(rays)
                index.insert(axis, at)
                values.append(data[tuple(index)])
    return np.concatenate(values)


def centre_median(boxed: np.ndarray) -> float:
    """Median of the non-zero voxels in the middle half of ``boxed``, an image cropped to
    its non-zero voxels' bounding box (``masks.bounding_box``)."""
    centre = boxed[tuple(slice((n - 1) // 4, n - (n - 1) // 4) for n in boxed.shape)]
    return float(np.median(centre[centre != 0]))


def bright_surface_share(data: np.ndarray, check: StrippedCheck) -> float:
    """Share of the outermost voxels brighter than ``bright_factor`` x the centre median.
    Both read the non-zero voxels' bounding box only: the same rays and values, in a third
    of the time on a BraTS volume (this runs on every case's t1n, t1c and t2f)."""
    data = data[bounding_box(data)]
    surface = surface_values(data, check.depth)
    return float(np.mean(surface > check.bright_factor * centre_median(data)))


def check_stripped(
    where: str, modality: str, data: np.ndarray, check: StrippedCheck | None = None
) -> None:
    """``CaseError`` naming ``where`` when ``data`` (background 0) has a bright shell
    around its brain: a skull or scalp, not a skull-stripped brain."""
    check = check or StrippedCheck()
    if modality not in check.modalities:
        return
    share = bright_surface_share(data, check)
    if share > check.max_bright_share:
        raise CaseError(
            f"{where} does not look skull-stripped: {share:.0%} of the brain's outermost "
            f"voxels are brighter than {check.bright_factor:g}x the median of its centre "
            f"(a skull-stripped brain has at most {check.max_bright_share:.0%}): a skull or "
            "scalp around the brain? brats-goat needs skull-stripped, co-registered images "
            "(the BraTS preprocessing, e.g. BrainLesion's brainles-preprocessing or HD-BET)"
        )
