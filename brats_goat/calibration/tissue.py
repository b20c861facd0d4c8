"""Thresholds from real healthy *tissue*: whole volumes through ``predict``'s own stages.

Slice calibration (``thresholds.py``) stacks held-out training slices into a pseudo-volume;
this one reads each real case as ``predict`` would (normalisation included) and measures
the maps only where the tissue is known to be healthy:

- healthy subjects: every voxel, except known non-tumour lesions (``<ID>-lesion``, e.g.
  multiple sclerosis) grown by ``lesion_margin``;
- tumour cases with a label map or a rough mask: only the axial slices farther than
  ``tumour_margin`` from it, as training selects them. A tumour case without one gives
  nothing: FLAIR outlier clusters (training's fallback) missed a whole metastasis case's
  lesions, whose far slices then had a FLAIR 99.9th percentile of 2.8 z.

Phantoms are not involved: their tissue is cleaner than any scanner's, and thresholds
measured on them were too high for real enhancement and too high for real edema (issue 15).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from brats_goat.calibration.thresholds import SUBSETS, save_recalibrated, with_calibration
from brats_goat.conventions import MODALITIES, subset_key
from brats_goat.device import pick_device
from brats_goat.io.discover import Case
from brats_goat.io.read import CaseError, CaseVolumes, load_case
from brats_goat.masks import bounding_box
from brats_goat.model.checkpoint import load_verified
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter import IntensitySegmenter, MViTAESegmenter, PipelineConfig, Segmenter
from brats_goat.stages.normalise import normalise_case
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import has_lesion_mask, healthy_indices, reference_mask


@dataclass(frozen=True)
class TissueCalibrationConfig:
    """How healthy tissue is chosen and which statistic becomes the threshold."""

    #: Map percentile on the healthy tissue that becomes the threshold (as slice calibration).
    percentile: float = 99.9
    #: Voxels within this distance of a known non-tumour lesion are left out (3D).
    lesion_margin: int = 2
    #: Tumour cases: slice selection of training (margin in slices, minimum brain).
    selection: TrainConfig = field(default_factory=TrainConfig)
    #: Modality subsets calibrated (the model is told which sequences a case has).
    subsets: tuple[tuple[str, ...], ...] = SUBSETS


@dataclass
class TissueMaps:
    """One case under one modality subset: its maps and where they count as healthy."""

    case_id: str
    maps: dict[str, np.ndarray]
    healthy: np.ndarray


def healthy_tissue(
    case: Case,
    volumes: CaseVolumes,
    brain: np.ndarray,
    cfg: TissueCalibrationConfig,
    subject_healthy: bool,
) -> np.ndarray:
    """Voxels of ``brain`` known to be healthy (see the module docstring)."""
    lesions = has_lesion_mask(case)
    if subject_healthy and not lesions:
        return brain
    if lesions:
        mask = reference_mask(case, volumes, 1e-3)
        assert mask is not None  # has_lesion_mask: the reference is the lesion mask
        if mask.any() and cfg.lesion_margin > 0:
            mask = ndimage.binary_dilation(mask, iterations=cfg.lesion_margin)
        return brain & ~mask
    tumour = reference_mask(case, volumes, 1e-3)
    if tumour is None:  # where the tumour is unknown, no tissue is known to be healthy
        return np.zeros_like(brain)
    keep = np.zeros(brain.shape[2], dtype=bool)
    keep[healthy_indices(brain, tumour, cfg.selection)] = True
    return brain & keep[None, None, :]


def case_maps(
    segmenter: Segmenter,
    case: Case,
    volumes: CaseVolumes,
    present: tuple[str, ...],
    cfg: TissueCalibrationConfig,
    subject_healthy: bool,
) -> TissueMaps:
    """The case read with only ``present``, through normalise, reconstruct and anomaly."""
    stack = volumes.stack(MODALITIES)
    stack[[m not in present for m in MODALITIES]] = 0
    normalised, brain, _ = normalise_case(stack, segmenter.config.normalise)
    recon = segmenter.reconstruct(normalised, brain, present)
    maps, mask = segmenter.anomaly(normalised, recon, brain, present)
    healthy = mask & healthy_tissue(case, volumes, brain, cfg, subject_healthy)
    box = bounding_box(brain)  # keep only the brain's box: 18 cases x 2 subsets in memory
    return TissueMaps(case.case_id, {k: v[box] for k, v in maps.items()}, healthy[box])


def subset_thresholds(samples: list[TissueMaps], percentile: float) -> dict[str, float]:
    """Per channel, the median over cases of each case's ``percentile``.

    Not the percentile of all voxels pooled: real "healthy" subjects differ in their tails
    (unmasked small lesions, scanner, vessels), and pooling lets the one or two worst
    subjects set the threshold for everyone. The median asks what a typical healthy brain
    leaves above the threshold.
    """
    out: dict[str, float] = {}
    for name in ("t1c", "t2f"):
        per_case = [
            float(np.percentile(s.maps[name][s.healthy], percentile))
            for s in samples
            if name in s.maps and s.healthy.any()
        ]
        if per_case:
            out[name] = round(float(np.median(per_case)), 4)
    return out


def with_thresholds(segmenter: Segmenter, post: PostprocessConfig) -> Segmenter:
    """A copy of ``segmenter`` that thresholds with ``post`` (ET minimum off)."""
    if isinstance(segmenter, MViTAESegmenter):
        config = dataclasses.replace(segmenter.config, postprocess=post)
        return type(segmenter)(segmenter.model, config, segmenter.meta, segmenter.device)
    return IntensitySegmenter(dataclasses.replace(segmenter.config, intensity=post))


def collect_maps(
    segmenter: Segmenter,
    cases: list[tuple[Case, bool]],
    cfg: TissueCalibrationConfig,
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, list[TissueMaps]]:
    """Per modality subset, the maps of every case that has that subset's sequences.

    The intensity baseline's map of a sequence does not depend on the others, so for it a
    case lacking t1c still gives its FLAIR map to every subset.
    """
    by_subset: dict[str, list[TissueMaps]] = {subset_key(s): [] for s in cfg.subsets}
    independent = isinstance(segmenter, IntensitySegmenter)
    for i, (case, healthy) in enumerate(cases, 1):
        if not healthy and case.reference is None:
            echo(f"[{i}/{len(cases)}] {case.case_id}: skipped (no lesion or tumour mask)")
            continue
        volumes = load_case(case, allow_missing=True)
        own = None
        for subset in cfg.subsets:
            if independent:
                own = own or case_maps(segmenter, case, volumes, volumes.present, cfg, healthy)
                by_subset[subset_key(subset)].append(own)
            elif set(subset) <= set(volumes.present):
                sample = case_maps(segmenter, case, volumes, subset, cfg, healthy)
                by_subset[subset_key(subset)].append(sample)
        echo(f"[{i}/{len(cases)}] {case.case_id}: {', '.join(volumes.present)}")
    return by_subset


def subset_rules(
    segmenter: Segmenter,
    samples: list[TissueMaps],
    thresholds: dict[str, float],
    present: tuple[str, ...],
) -> tuple[dict[str, float], int]:
    """At ``thresholds``: the highest component peak per channel and the largest t1c
    component the threshold stage keeps, over every sample (the peak rule and ET minimum)."""
    post = segmenter.postprocess
    at = dataclasses.replace(
        post,
        thresholds_by_subset={subset_key(present): (thresholds["t1c"], thresholds["t2f"])},
        et_min_voxels_by_subset={},
    )
    probe = with_thresholds(segmenter, at)
    peaks = {
        name: round(
            max(
                healthy_peak(s.maps[name], s.healthy, thr, post) for s in samples if name in s.maps
            ),
            4,
        )
        for name, thr in thresholds.items()
    }
    et_min = max(
        largest_component_voxels(probe.threshold(s.maps, s.healthy, present)["t1c"])
        for s in samples
    )
    return peaks, int(et_min)


def calibrate_on_tissue(
    segmenter: Segmenter,
    healthy: list[Case],
    tumour: list[Case],
    cfg: TissueCalibrationConfig | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> tuple[PostprocessConfig, dict[str, Any]]:
    """The segmenter's post-processing with thresholds, peaks and ET minima measured on
    the healthy tissue of ``healthy`` subjects (their ``-lesion`` masks left out) and of
    ``tumour`` cases (the slices far from their label map), and a record of it all."""
    cfg = cfg or TissueCalibrationConfig()
    cases = [(c, True) for c in healthy] + [(c, False) for c in tumour]
    by_subset = collect_maps(segmenter, cases, cfg, echo)
    post = segmenter.postprocess
    thresholds, peaks, et_min, used = {}, {}, {}, {}
    for subset in cfg.subsets:
        key, samples = subset_key(subset), by_subset[subset_key(subset)]
        found = subset_thresholds(samples, cfg.percentile)
        if set(found) != {"t1c", "t2f"}:
            raise CaseError(f"no healthy {' and '.join(subset)} data to calibrate subset {key}")
        thresholds[key] = found
        peaks[key], et_min[key] = subset_rules(segmenter, samples, found, subset)
        used[key] = {
            "cases": [s.case_id for s in samples],
            "voxels": {n: int(sum(s.healthy.sum() for s in samples if n in s.maps)) for n in found},
        }
    calibrated = with_calibration(post, thresholds, peaks, et_min)
    used_ids = {c for u in used.values() for c in u["cases"]}
    info = {
        "statistics": "whole volumes, healthy tissue (brats_goat.calibration.tissue)",
        "percentile": cfg.percentile,
        "lesion_margin": cfg.lesion_margin,
        "tumour_margin_slices": cfg.selection.healthy_margin,
        "thresholds": thresholds,
        "peak_thresholds": peaks,
        "et_min_voxels": et_min,
        "data": used,
        "calibrated_on": sorted(used_ids),
        "skipped": sorted({c.case_id for c, _ in cases} - used_ids),
    }
    return calibrated, info


def recalibrate_on_tissue(
    weights: str | Path | None,
    healthy: list[Case],
    tumour: list[Case],
    output: str | Path,
    cfg: TissueCalibrationConfig | None = None,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> tuple[str, dict[str, Any]]:
    """Load verified weights, calibrate them on real tissue, save a copy that records it.

    ``overrides`` changes post-processing fields first (``restore_iterations``,
    ``fusion_weight``...): the thresholds are measured under them and stored with them.
    """
    model, meta = load_verified(weights)
    post = dataclasses.replace(meta["postprocess"], **(overrides or {}))
    config = PipelineConfig(postprocess=post, refine=RefineConfig("none"))
    segmenter = MViTAESegmenter(model, config, meta, pick_device(device))
    post, info = calibrate_on_tissue(segmenter, healthy, tumour, cfg, echo)
    info["fusion_weight"] = post.fusion_weight
    return save_recalibrated(output, model, meta, post, info), info
