"""Anomaly map -> binary lesion mask: thresholds, morphology and 3D components."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brats_goat.masks import connected_components
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.morphology import closing, opening


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of a 1-D sample (maximises the between-class variance)."""
    if values.size < 2 or float(values.min()) == float(values.max()):
        return float(values.max()) if values.size else 0.0
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    # Class 0 holds bins 0..k, so the threshold is bin k's upper edge.
    return float(edges[int(np.argmax(between[:-1])) + 1])


def threshold_slices(
    residual: np.ndarray, mask: np.ndarray, fixed: float, use_otsu: bool
) -> np.ndarray:
    """Per axial slice: residual above ``max(fixed, Otsu of the slice)``.

    The fixed threshold (in z units) is the floor; Otsu can only raise it, on slices where
    the residual is clearly bimodal (a lesion), which trims its faint halo.
    """
    out = np.zeros(residual.shape, dtype=bool)
    for z in range(residual.shape[2]):
        m = mask[..., z]
        if not m.any():
            continue
        r = residual[..., z]
        thr = fixed
        if use_otsu:
            thr = max(fixed, otsu_threshold(r[m]))
        out[..., z] = (r > thr) & m
    return out


def open_close(mask: np.ndarray, radius: int) -> np.ndarray:
    """2D opening (removes specks) then closing (bridges small gaps), slice by slice."""
    if radius <= 0:
        return mask
    disk2d = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), radius)
    struct = np.zeros((*disk2d.shape, 1), dtype=bool)
    struct[..., 0] = disk2d
    return closing(opening(mask, struct), struct)


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """26-connected 3D components (the connectivity of the BraTS lesion-wise metric)."""
    labels, n = connected_components(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    return labels, sizes


def select_components(mask: np.ndarray, min_voxels: int, keep_largest: bool) -> np.ndarray:
    """Drop components below ``min_voxels``; optionally keep only the largest (paper)."""
    labels, sizes = components(mask)
    sizes[0] = 0
    keep = sizes >= max(min_voxels, 1)
    if keep_largest and keep.any():
        largest = int(np.argmax(np.where(keep, sizes, 0)))
        keep = np.zeros_like(keep)
        keep[largest] = True
    return keep[labels]


def largest_component_voxels(mask: np.ndarray) -> int:
    """Voxels of the largest 3D component of ``mask`` (0 when empty): what the ET minimum
    is calibrated from."""
    _, sizes = components(mask)
    return int(sizes[1:].max()) if len(sizes) > 1 else 0


def drop_up_to(mask: np.ndarray, max_voxels: int) -> np.ndarray:
    """Remove every component of at most ``max_voxels`` voxels (the calibrated ET minimum:
    nothing as small as a healthy calibration component survives)."""
    if max_voxels <= 0:
        return mask
    return select_components(mask, max_voxels + 1, keep_largest=False)


def candidate_mask(
    residual: np.ndarray, mask: np.ndarray, threshold: float, post: PostprocessConfig
) -> np.ndarray:
    """Per-slice threshold then opening and closing: the voxels the component rule chooses
    from (the same for segmentation and for the calibration of the peak rule)."""
    b = threshold_slices(residual, mask, threshold, post.use_otsu)
    return open_close(b, post.morphology_radius)


def component_peaks(
    mask: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of ``mask`` with their sizes and the highest value of ``values`` in each
    (index 0 = background, peak 0)."""
    labels, sizes = components(mask)
    peaks = np.zeros(len(sizes), dtype=np.float64)
    if len(sizes) > 1:
        peaks[1:] = ndimage.maximum(values, labels, index=np.arange(1, len(sizes)))
    return labels, sizes, peaks


def select_with_peaks(
    mask: np.ndarray, values: np.ndarray, min_voxels: int, peak: float
) -> np.ndarray:
    """The largest component (>= ``min_voxels``) plus every other one whose peak value
    exceeds ``peak``: one reliable lesion always, further ones only when they are more
    abnormal than anything seen on healthy data."""
    labels, sizes, peaks = component_peaks(mask, values)
    sizes[0] = 0
    big = sizes >= max(min_voxels, 1)
    keep = big & (peaks > peak)
    if big.any():
        keep[int(np.argmax(sizes))] = True
    return keep[labels]


def healthy_peak(
    residual: np.ndarray, mask: np.ndarray, threshold: float, post: PostprocessConfig
) -> float:
    """Highest component peak after threshold and morphology on a healthy map (the
    calibration of :func:`select_with_peaks`); ``threshold`` if nothing survives."""
    _, sizes, peaks = component_peaks(candidate_mask(residual, mask, threshold, post), residual)
    big = sizes >= max(post.min_component_voxels, 1)
    big[0] = False
    return float(max(threshold, peaks[big].max())) if big.any() else float(threshold)


def binarise(
    residual: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    post: PostprocessConfig,
    peak: float | None = None,
) -> np.ndarray:
    """One residual map -> lesion mask: the whole chain of this module, in the pipeline's
    order (per-slice threshold, opening then closing, the component rule: the largest
    only, or with ``peak`` the largest plus every component whose peak exceeds it)."""
    b = candidate_mask(residual, mask, threshold, post)
    if peak is not None and post.keep_largest:
        return select_with_peaks(b, residual, post.min_component_voxels, peak)
    return select_components(b, post.min_component_voxels, post.keep_largest)
