"""Label fusion: binary anomaly masks -> BraTS labels (1 NETC, 2 SNFH, 3 ET).

Enhancing tumour is looked for in and around the whole tumour, on the t1c image itself, the
same way for every method and after refinement: a bright healthy structure elsewhere in the
brain (a vessel, the choroid plexus) can then never take the place of the tumour's own
enhancement, and several enhancing parts are all kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from brats_goat.calibrated import stored_result
from brats_goat.conventions import LABEL_ET, LABEL_NETC, LABEL_SNFH
from brats_goat.masks import connected_components, fill_holes_axial
from brats_goat.stages.morphology import dilate
from brats_goat.stages.threshold import select_components

#: The enhancement threshold measured on real healthy t1c, with its provenance.
ENHANCEMENT = "enhancement.json"
#: ``LabelsConfig.et_rule`` choices.
ET_RULES: tuple[str, ...] = ("near-wt", "channel")


@functools.cache
def enhancement_record() -> dict:
    """``ENHANCEMENT``: the calibrated t1c thresholds and how they were measured (read once
    per process: every ``LabelsConfig`` takes two values from it)."""
    return stored_result("enhancement")


def enhancement_threshold() -> float:
    """The t1c z above which tissue near the tumour counts as enhancing (``ENHANCEMENT``)."""
    return float(enhancement_record()["et_threshold_z"])


def enhancement_grow_threshold() -> float | None:
    """The lower t1c z to which found enhancement grows (``ENHANCEMENT``; None: no growth)."""
    grow = enhancement_record().get("et_grow_z")
    return None if grow is None else float(grow)


@dataclass(frozen=True)
class LabelsConfig:
    """How ET and the tumour core are found from the whole tumour and the t1c image."""

    #: ``near-wt``: ET = t1c above ``et_threshold_z`` (z-scored, median-filtered image) in the
    #: whole tumour grown by ``et_search_dilation``, every component of at least
    #: ``et_min_voxels``. ``channel`` (paper): the method's own t1c component, kept where it
    #: touches the whole tumour (``PostprocessConfig.et_within_wt_dilation``).
    et_rule: str = "near-wt"
    #: Label-free: the 99.5th percentile of real healthy t1c (``brats-goat calibrate enhancement``).
    et_threshold_z: float = field(default_factory=enhancement_threshold)
    et_search_dilation: int = 3
    et_min_voxels: int = 50
    #: Label-free: the 85th percentile of real healthy t1c (``enhancement.json``; it was the
    #: 99th until the island rule ``et_core_gap`` made a lower one safe, issue 26).
    #: Hysteresis (None: off): ET found above ``et_threshold_z`` grows into the connected
    #: t1c above this lower z inside the whole tumour. A weak part of a rim that holds a
    #: clearly enhancing part is tumour; a tumour with no enhancement has no seed to grow.
    et_grow_z: float | None = field(default_factory=enhancement_grow_threshold)
    #: The core is what ET encloses after a closing with a ball of this radius (0: ET as it
    #: is): a rim with gaps (weak or thin enhancement) still encloses its necrosis. 3: chosen
    #: on the development cases (results/experiments-et-core.md, "Hysteresis and closing").
    core_closing: int = 3
    #: Without a t2f there is no whole tumour to search ET near: the t1c channel's own
    #: component (the calibrated t1c residual, largest component) grown by this many voxels
    #: stands in for it. Growth stays inside it, so it bounds ET's extent: 10 (1 cm) on the
    #: two real cases measured without their t2f (issue 27; BrainLes-example ET Dice against
    #: its reference 0.40 at 10, 0.32 at 6), not calibrated further.
    no_flair_search_dilation: int = 10
    #: ...and only a t1c component that is tumour-like: its median z-scored t2w above this
    #: (T2-hyperintense like a tumour; a vessel or the choroid plexus is not: on the three
    #: real MS patients of healthy-real without their t2f, -1.8 to +0.5 z, BrainLes-example
    #: 4.6), the normalisation's own lesion z (``NormaliseConfig.exclude_z``), or a peak
    #: above the healthy calibration's t1c peak (``PostprocessConfig.peak_thresholds_by_subset``).
    #: Otherwise those MS patients got 1,000-3,200 ET voxels on healthy tissue.
    no_flair_t2w_z: float = 2.0
    #: ET components farther than this many voxels (mm) from the largest one are dropped
    #: (None: all kept). The tumour's core is one enhancing structure; an island of
    #: bright t1c elsewhere in the oedema is a vessel or a false lesion, and in lesion-wise
    #: scoring each one costs as much as a missed tumour. 3: chosen on the development
    #: sets (brats18-dev TC / ET 0.313 / 0.312 -> 0.525 / 0.543; 2 and 3 alike, 6 and 8
    #: worse; results/tumour-rules-26.md).
    et_core_gap: int | None = 3

    def __post_init__(self) -> None:
        if self.et_rule not in ET_RULES:
            raise ValueError(f"et_rule must be one of {', '.join(ET_RULES)}")
        if min(self.et_search_dilation, self.core_closing, self.no_flair_search_dilation) < 0:
            raise ValueError(
                "et_search_dilation, core_closing and no_flair_search_dilation must be >= 0"
            )
        if self.et_core_gap is not None and self.et_core_gap < 0:
            raise ValueError("et_core_gap must be >= 0 (None keeps every ET component)")
        if self.et_min_voxels < 1:
            raise ValueError("et_min_voxels must be >= 1")
        if self.et_grow_z is not None and self.et_grow_z > self.et_threshold_z:
            raise ValueError("et_grow_z must not exceed et_threshold_z")


def enhancement_near(
    t1c_z: np.ndarray, wt: np.ndarray, mask: np.ndarray, cfg: LabelsConfig
) -> np.ndarray:
    """Every component of bright t1c in and around the whole tumour ``wt`` (none without
    one): enhancement is part of the tumour, so it is only looked for there."""
    if not wt.any():
        return np.zeros_like(wt)
    region = wt
    if cfg.et_search_dilation > 0:
        region = dilate(wt, iterations=cfg.et_search_dilation)
    region = region & mask
    seeds = select_components((t1c_z > cfg.et_threshold_z) & region, cfg.et_min_voxels, False)
    if cfg.et_grow_z is None or not seeds.any():
        return seeds
    # Growth stays inside the whole tumour: weak t1c in the rim around it would make the
    # tumour's extent depend on noise (a 3 mm thick-slice scan lost 0.01 WT Dice to it).
    return grow_from(seeds, (t1c_z > cfg.et_grow_z) & region & wt)


def region_without_flair(
    t1c_component: np.ndarray, mask: np.ndarray, cfg: LabelsConfig
) -> np.ndarray:
    """Where ET is searched (and may grow) in a case without t2f: the t1c channel's own
    component, the enhancement the model could not explain, grown by
    ``no_flair_search_dilation`` inside the analysis mask. A bright healthy structure far
    from it (a vessel, the choroid plexus) is still never ET."""
    if not t1c_component.any() or cfg.no_flair_search_dilation == 0:
        return t1c_component & mask
    return dilate(t1c_component, iterations=cfg.no_flair_search_dilation) & mask


def tumour_like(
    component: np.ndarray,
    t1c_map: np.ndarray,
    t2w_z: np.ndarray | None,
    peak: float | None,
    cfg: LabelsConfig,
) -> str | None:
    """Why a case without t2f may take its t1c component for the tumour (None: it may
    not): T2w hyperintensity in it (``no_flair_t2w_z``), or a peak more abnormal than any
    component on healthy calibration data (``peak``)."""
    if not component.any():
        return None
    if t2w_z is not None and float(np.median(t2w_z[component])) > cfg.no_flair_t2w_z:
        return "t2w"
    if peak is not None and float(t1c_map[component].max()) > peak:
        return "peak"
    return None


def near_largest(mask: np.ndarray, gap: int | None) -> np.ndarray:
    """The largest 26-connected component of ``mask`` and every other within ``gap`` voxels
    of it (Euclidean); ``mask`` itself where ``gap`` is None."""
    if gap is None or not mask.any():
        return mask
    labels, n = connected_components(mask)
    if n == 1:
        return mask
    largest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    # Within ``gap`` of it = its dilation by a ball of that radius, on its own box grown by
    # ``gap`` (a distance transform of the whole grid cost 0.7 s a case).
    box = tuple(
        slice(max(s.start - gap, 0), min(s.stop + gap, size))
        for s, size in zip(ndimage.find_objects(labels)[largest - 1], mask.shape, strict=True)
    )
    part = labels[box]
    near = ndimage.binary_dilation(part == largest, ball(gap)) if gap > 0 else part == largest
    hit = np.unique(part[near])
    return np.isin(labels, hit[hit > 0])


def grow_from(seeds: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The components of ``allowed`` (26-connected) that hold a seed voxel, plus the seeds."""
    return components_touching(allowed | seeds, seeds)


def components_touching(mask: np.ndarray, marker: np.ndarray) -> np.ndarray:
    """The 26-connected components of ``mask`` that hold a voxel of ``marker``."""
    labels, _ = connected_components(mask)
    hit = np.unique(labels[marker])
    return np.isin(labels, hit[hit > 0])


def et_near_wt(et: np.ndarray, wt: np.ndarray, dilation: int) -> np.ndarray:
    """Keep ET components that touch the (dilated) FLAIR lesion.

    Enhancement far from any FLAIR abnormality is more often a vessel or the choroid plexus
    than tumour; BraTS defines ET as part of the whole tumour.
    """
    if dilation <= 0 or not et.any():
        return et
    if not wt.any():
        return np.zeros_like(et)
    near = dilate(wt, iterations=dilation)
    return components_touching(et, near)


def ball(radius: int) -> np.ndarray:
    """Euclidean ball structuring element of ``radius`` voxels."""
    grid = np.indices((2 * radius + 1,) * 3) - radius
    return (grid**2).sum(axis=0) <= radius * radius


def enclosed_by(et: np.ndarray, closing: int) -> np.ndarray:
    """What ET encloses, in 3D or in-plane, after a closing with a ball of radius
    ``closing`` (it bridges a gap in a thin rim up to about ``closing`` voxels wide); the
    ET voxels themselves included."""
    if not et.any():
        return et.copy()
    # All on ET's own box, padded so that the closing never erodes at an edge and the
    # background ring reaches every side (hole filling): the same result as on the whole
    # grid, for the box's voxels only (a large structuring element over the grid costs
    # seconds).
    box = ndimage.find_objects(et.astype(np.uint8))[0]
    pad = max(closing, 0) + 1
    inner = (slice(pad, -pad),) * 3
    part = np.pad(et[box], pad)
    if closing > 0:
        part[inner] |= ndimage.binary_closing(part, ball(closing))[inner]
    part = fill_holes_axial(part) | ndimage.binary_fill_holes(part)
    out = np.zeros_like(et)
    out[box] = part[inner]
    return out


def fuse_labels(
    flair: np.ndarray, t1c: np.ndarray, et_dilation: int = 3, core_closing: int = 0
) -> np.ndarray:
    """Paper's late fusion: FLAIR -> 2, t1c -> 3 (overrides 2), enclosed holes -> 1.

    The core (NETC) is what ET encloses (:func:`enclosed_by`), in 3D or in-plane (a rim
    that does not close in one axial slice may close in the volume), FLAIR-bright or not:
    necrosis inside the rim is core. A tumour without ET keeps the paper's core, the
    in-plane holes of the whole tumour; with ET, holes of the whole tumour far from it are
    not core (they would be false tumour-core lesions).
    """
    et = et_near_wt(t1c, flair, et_dilation)
    tumour = flair | et
    labels = np.zeros(flair.shape, dtype=np.uint8)
    labels[flair] = LABEL_SNFH
    labels[et] = LABEL_ET
    if et.any():
        labels[enclosed_by(et, core_closing) & ~et] = LABEL_NETC
    else:
        labels[fill_holes_axial(tumour) & ~tumour] = LABEL_NETC
    return labels


def voxels_per_label(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(labels.ravel(), minlength=4)
    return {str(k): int(counts[k]) for k in (LABEL_NETC, LABEL_SNFH, LABEL_ET)}
