"""Label fusion: binary anomaly masks -> BraTS labels (1 NETC, 2 SNFH, 3 ET)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brats_goat.conventions import LABEL_ET, LABEL_NETC, LABEL_SNFH


def fill_holes_axial(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice: a necrotic core is enclosed in-plane by its rim."""
    out = np.empty_like(mask)
    for z in range(mask.shape[2]):
        out[..., z] = ndimage.binary_fill_holes(mask[..., z])
    return out


def et_near_wt(et: np.ndarray, wt: np.ndarray, dilation: int) -> np.ndarray:
    """Keep ET components that touch the (dilated) FLAIR lesion.

    Enhancement far from any FLAIR abnormality is more often a vessel or the choroid plexus
    than tumour; BraTS defines ET as part of the whole tumour.
    """
    if dilation <= 0 or not et.any():
        return et
    if not wt.any():
        return np.zeros_like(et)
    near = ndimage.binary_dilation(wt, iterations=dilation)
    labels, _ = ndimage.label(et, structure=np.ones((3, 3, 3), dtype=bool))
    hit = np.unique(labels[near & et])
    return np.isin(labels, hit[hit > 0])


def fuse_labels(flair: np.ndarray, t1c: np.ndarray, et_dilation: int = 3) -> np.ndarray:
    """Paper's late fusion: FLAIR -> 2, t1c -> 3 (overrides 2), enclosed holes -> 1."""
    et = et_near_wt(t1c, flair, et_dilation)
    tumour = flair | et
    labels = np.zeros(flair.shape, dtype=np.uint8)
    labels[flair] = LABEL_SNFH
    labels[et] = LABEL_ET
    core_holes = (fill_holes_axial(et) | fill_holes_axial(tumour)) & ~tumour
    labels[core_holes] = LABEL_NETC
    return labels


def voxels_per_label(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(labels.ravel(), minlength=4)
    return {str(k): int(counts[k]) for k in (LABEL_NETC, LABEL_SNFH, LABEL_ET)}
