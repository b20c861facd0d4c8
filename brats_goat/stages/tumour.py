"""The whole tumour and its core beyond the paper's rule (issue 26): choose, grow, fill.

The paper's whole tumour is the largest FLAIR-residual component, though the largest may be
healthy tissue (choroid plexus, a bright rim of cortex) while the tumour is the more
abnormal one. Here the FLAIR candidate with the most anomaly mass is the tumour, provided
T2w supports it (tumour and oedema are T2-bright); it may grow (off by default: it found as
much bright white matter as oedema), and what it encloses is filled. A tumour without ET
gets its t1c-dark part as core. Every threshold is a level of healthy tissue
(``tumour.json``, ``brats-goat calibrate tumour``); labels chose only between designs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from brats_goat.calibrated import stored_result
from brats_goat.conventions import LABEL_ET, LABEL_NETC, LABEL_SNFH
from brats_goat.masks import connected_components
from brats_goat.stages.labels import enclosed_by
from brats_goat.stages.threshold import select_components

#: Healthy-tissue percentiles of the evidence maps, with their provenance.
TUMOUR = "tumour.json"
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
#: ``TumourConfig.choose`` choices.
CHOOSE_RULES: tuple[str, ...] = ("mass", "size")


@functools.cache
def tumour_record() -> dict:
    """``TUMOUR``: the healthy T2w median and t1c 10th percentile, with their provenance."""
    return stored_result("tumour")


def _healthy(key: str) -> float:
    return float(tumour_record()["thresholds"][key])


@dataclass(frozen=True)
class TumourConfig:
    """How the whole tumour is chosen, grown and filled (``enabled=False``: the paper's
    largest FLAIR component as it is)."""

    enabled: bool = True
    #: ``mass``: the candidate with the largest summed FLAIR excess is the tumour;
    #: ``size``: the largest (paper).
    choose: str = "mass"
    #: A candidate is the tumour only if its median T2w z exceeds this: the median of
    #: healthy T2w (tumour and oedema are T2-bright). None: no check.
    support_t2w_median: float | None = field(default_factory=lambda: _healthy("t2w_z_p50"))
    #: Hysteresis: the tumour grows from its seed into connected tissue whose FLAIR map
    #: exceeds the calibrated threshold (without the per-slice Otsu and morphology that
    #: made the seed), at most this many voxels (0: no growth).
    grow_steps: int = 0
    #: A tumour without ET: its core (1) is the largest part darker on t1c than this (the
    #: 10th percentile of healthy t1c): non-enhancing tumour and necrosis take up no
    #: contrast. None: the paper's core only (what FLAIR encloses).
    netc_t1c_z: float | None = field(default_factory=lambda: _healthy("t1c_z_p10"))
    #: Fill what the tumour encloses, in 3D and per axial slice (a FLAIR-dark necrotic
    #: core is tumour).
    fill: bool = True

    def __post_init__(self) -> None:
        if self.choose not in CHOOSE_RULES:
            raise ValueError(f"choose must be one of {', '.join(CHOOSE_RULES)}")
        if self.grow_steps < 0:
            raise ValueError("grow_steps must be >= 0")


def choose_seed(
    candidates: np.ndarray,
    flair_map: np.ndarray,
    threshold: float,
    t2w_z: np.ndarray | None,
    min_voxels: int,
    cfg: TumourConfig,
) -> np.ndarray:
    """The FLAIR candidate component with the largest anomaly mass (its summed excess over
    the threshold) among those whose median ``t2w_z`` exceeds ``support_t2w_median`` (all,
    without a T2w)."""
    labels, n = connected_components(candidates)
    if n == 0:
        return np.zeros_like(candidates)
    index = np.arange(1, n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    excess = np.clip(flair_map - threshold, 0.0, None)
    score = ndimage.sum_labels(excess, labels, index) if cfg.choose == "mass" else sizes
    score = np.where(sizes >= min_voxels, score, -1.0)
    if t2w_z is not None and cfg.support_t2w_median is not None:
        t2w = ndimage.median(t2w_z, labels, index)
        score = np.where(t2w > cfg.support_t2w_median, score, -1.0)
    if score.max() < 0:
        return np.zeros_like(candidates)
    return labels == int(np.argmax(score)) + 1


def grow(seed: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """``seed`` grown by geodesic dilation inside ``allowed``, ``steps`` voxels at most."""
    if steps <= 0 or not seed.any():
        return seed
    return ndimage.binary_dilation(seed, CONNECTIVITY, iterations=steps, mask=allowed | seed)


def whole_tumour(
    candidates: np.ndarray,
    flair_map: np.ndarray,
    threshold: float,
    t2w_z: np.ndarray | None,
    mask: np.ndarray,
    min_voxels: int,
    cfg: TumourConfig,
) -> np.ndarray:
    """The whole tumour's FLAIR part: the best-supported candidate, grown
    (``fill_tumour`` adds what it encloses once ET is known)."""
    seed = choose_seed(candidates, flair_map, threshold, t2w_z, min_voxels, cfg)
    if cfg.grow_steps <= 0:
        return seed
    return grow(seed, (flair_map > threshold) & mask, cfg.grow_steps)


def fill_tumour(labels: np.ndarray, cfg: TumourConfig) -> np.ndarray:
    """``labels`` with what the tumour encloses added (``TumourConfig.fill``): as core (1)
    in a tumour without ET, whose enclosed FLAIR-dark centre is necrosis or a cyst (the
    paper's core), else as oedema (2): the core of an enhancing tumour is what its ET
    encloses, already labelled."""
    if not cfg.fill:
        return labels
    tumour = labels > 0
    holes = enclosed_by(tumour, 0) & ~tumour
    out = labels.copy()
    out[holes] = LABEL_SNFH if (labels == LABEL_ET).any() else LABEL_NETC
    return out


def non_enhancing_core(labels: np.ndarray, t1c_z: np.ndarray, cfg: TumourConfig) -> np.ndarray:
    """``labels`` of a tumour without ET with its non-enhancing core as core (1): the
    largest t1c-dark part of the whole tumour (``TumourConfig.netc_t1c_z``), so a glioma
    that does not enhance still has a tumour core. Labels with ET are returned as they are."""
    tumour = labels > 0
    if cfg.netc_t1c_z is None or not tumour.any() or (labels == LABEL_ET).any():
        return labels
    dark = select_components(tumour & (t1c_z < cfg.netc_t1c_z), 1, keep_largest=True)
    if not dark.any():
        return labels
    out = labels.copy()
    out[enclosed_by(dark, 0)] = LABEL_NETC
    return out
