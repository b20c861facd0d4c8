"""Label-free thresholds: a high percentile of the residual on held-out *healthy* slices.

No tumour label is involved: a voxel is called abnormal when its residual is larger than
what the model leaves on healthy tissue ``percentile`` % of the time. A new site runs
``brats-goat calibrate thresholds`` on its own healthy scans to re-derive them for its
scanners; training calibrates its held-out slices with the same code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brats_goat.conventions import MODALITIES, subset_key
from brats_goat.device import pick_device
from brats_goat.io.discover import Case
from brats_goat.model.checkpoint import load_verified, save_checkpoint
from brats_goat.model.network import MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter import MViTAESegmenter, PipelineConfig, Segmenter
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import collect_healthy_slices

#: Modality subsets thresholds are calibrated for (models trained with modality dropout).
#: The full set always; FLAIR + t1c only, the commonest reduced protocol.
SUBSETS: tuple[tuple[str, ...], ...] = (MODALITIES, ("t1c", "t2f"))


def healthy_segmenter(
    model: MViTAE, post: PostprocessConfig, inference: InferenceConfig, device: torch.device
) -> MViTAESegmenter:
    """The segmenter ``predict`` would build for ``model`` with ``post``: calibration runs
    its stages, so there is one code path from the stages to the thresholds."""
    config = PipelineConfig(postprocess=post, inference=inference, refine=RefineConfig("none"))
    return MViTAESegmenter(model, config, device=device)


def healthy_maps(
    segmenter: Segmenter, slices: np.ndarray, present: tuple[str, ...] = MODALITIES
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Residual maps and analysis mask of (N, C, X, Y) normalised healthy slices.

    The slices are stacked into a pseudo-volume (absent modalities zeroed, as ``read``
    leaves them) and go through the segmenter's own reconstruct and anomaly stages.
    """
    volume = np.ascontiguousarray(slices.astype(np.float32).transpose(1, 2, 3, 0))
    volume[[m not in present for m in MODALITIES]] = 0
    brain = np.any(volume != 0, axis=0)
    recon = segmenter.reconstruct(volume, brain, present)
    return segmenter.anomaly(volume, recon, brain, present)


def subset_statistics(
    segmenter: MViTAESegmenter, slices: np.ndarray, percentile: float, present: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, float], int]:
    """For one modality subset: the thresholds (``percentile`` of the healthy residuals),
    the component peaks left at them, and the largest t1c component the threshold stage
    keeps at them (the ET minimum)."""
    post = segmenter.postprocess
    maps, mask = healthy_maps(segmenter, slices, present)
    thr = {name: round(float(np.percentile(m[mask], percentile)), 4) for name, m in maps.items()}
    peaks = {name: round(healthy_peak(m, mask, thr[name], post), 4) for name, m in maps.items()}
    at_thresholds = dataclasses.replace(
        post,
        thresholds_by_subset={subset_key(present): (thr["t1c"], thr["t2f"])},
        et_min_voxels_by_subset={},
    )
    probe = MViTAESegmenter(
        segmenter.model,
        dataclasses.replace(segmenter.config, postprocess=at_thresholds),
        device=segmenter.device,
    )
    et_min = largest_component_voxels(probe.threshold(maps, mask, present)["t1c"])
    return thr, peaks, et_min


def with_calibration(
    post: PostprocessConfig,
    thresholds: dict[str, dict[str, float]],
    peaks: dict[str, dict[str, float]],
    et_min: dict[str, int],
) -> PostprocessConfig:
    """``post`` carrying per-subset thresholds, component peaks and ET minima (each
    ``{subset: {"t1c": .., "t2f": ..}}``); the full set's thresholds also as the defaults."""
    full = thresholds[subset_key(MODALITIES)]
    return dataclasses.replace(
        post,
        threshold_t1c=full["t1c"],
        threshold_t2f=full["t2f"],
        thresholds_by_subset={k: (v["t1c"], v["t2f"]) for k, v in thresholds.items()},
        peak_thresholds_by_subset={k: (v["t1c"], v["t2f"]) for k, v in peaks.items()},
        et_min_voxels_by_subset=et_min,
    )


def save_recalibrated(
    output: str | Path,
    model: MViTAE,
    meta: dict[str, Any],
    post: PostprocessConfig,
    info: dict[str, Any],
) -> str:
    """Save ``model`` with its new ``post``, recording the restoration setting it was
    calibrated under and the source weights in ``info`` (the checkpoint's provenance)."""
    info["restore_iterations"] = post.restore_iterations
    info["restore_maps"] = list(post.restore_maps)
    info["source_weights"] = {"path": meta["path"], "sha256": meta["sha256"]}
    record = {**meta["info"], "calibration": info}
    return save_checkpoint(output, model, postprocess=post, info=record)


def calibrate_thresholds(
    model: MViTAE,
    slices: np.ndarray,
    post: PostprocessConfig,
    percentile: float,
    inference: InferenceConfig,
    device: torch.device,
) -> tuple[PostprocessConfig, dict[str, Any]]:
    """Thresholds at ``percentile`` of the healthy residuals, for the full modality set and
    (when the model accepts missing modalities) for the reduced subsets; and for each, the
    peak values of the component rule (the highest component peak left on these slices)
    and the ET minimum (the largest t1c component left on them)."""
    subsets = SUBSETS if model.cfg.modality_mask else (MODALITIES,)
    segmenter = healthy_segmenter(model, post, inference, device)
    by_subset: dict[str, dict[str, float]] = {}
    peaks: dict[str, dict[str, float]] = {}
    et_min: dict[str, int] = {}
    for present in subsets:
        key = subset_key(present)
        by_subset[key], peaks[key], et_min[key] = subset_statistics(
            segmenter, slices, percentile, present
        )
    calibrated = with_calibration(post, by_subset, peaks, et_min)
    info = {
        "percentile": percentile,
        "n_slices": len(slices),
        "thresholds": by_subset,
        "peak_thresholds": peaks,
        "et_min_voxels": et_min,
    }
    return calibrated, info


def recalibrate_checkpoint(
    weights: str | Path | None,
    cases: list[Case],
    output: str | Path,
    percentile: float,
    device: str = "auto",
    selection: TrainConfig | None = None,
    restore: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Load verified weights, calibrate on the healthy slices of ``cases``, save a copy.

    ``selection`` says which slices count as healthy (margin around labels, minimum brain).
    ``restore`` overrides the checkpoint's restoration fields (``restore_iterations``,
    ``restore_maps``...): the new thresholds are calibrated for them and stored with them.
    """
    model, meta = load_verified(weights)
    post = dataclasses.replace(meta["postprocess"], **(restore or {}))
    dev = pick_device(device)
    model = model.to(dev)
    slices = collect_healthy_slices(
        cases, selection or TrainConfig(), NormaliseConfig(), image_size=model.cfg.image_size
    ).for_calibration()
    post, info = calibrate_thresholds(model, slices, post, percentile, InferenceConfig(), dev)
    info["calibrated_on"] = sorted({c.case_id for c in cases})
    return save_recalibrated(output, model, meta, post, info), info
