"""Label-free thresholds: a high percentile of the residual on held-out *healthy* slices.

No tumour label is involved: a voxel is called abnormal when its residual is larger than
what the model leaves on healthy tissue ``percentile`` % of the time. A new site runs
``brats-goat calibrate`` on its own healthy scans to re-derive them for its scanners.
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
from brats_goat.stages.anomaly import analysis_mask, residual_maps
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.restore import restore_volume
from brats_goat.stages.threshold import binarise, healthy_peak, largest_component_voxels
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import collect_healthy_slices

#: Modality subsets thresholds are calibrated for (models trained with modality dropout).
#: The full set always; FLAIR + t1c only, the commonest reduced protocol.
SUBSETS: tuple[tuple[str, ...], ...] = (MODALITIES, ("t1c", "t2f"))


def healthy_maps(
    model: MViTAE,
    slices: np.ndarray,
    post: PostprocessConfig,
    inference: InferenceConfig,
    device: torch.device,
    present: tuple[str, ...] = MODALITIES,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Residual maps and analysis mask of (N, C, X, Y) normalised healthy slices.

    The slices are stacked into a pseudo-volume and go through the very functions predict
    uses (reconstruction and restoration, erosion, median filter), so the statistics match
    inference.
    """
    volume = np.ascontiguousarray(slices.astype(np.float32).transpose(1, 2, 3, 0))
    keep = np.array([m in present for m in MODALITIES])
    volume[~keep] = 0
    brain = np.any(volume != 0, axis=0)
    recon = restore_volume(model, volume, brain, post, inference, device, present=keep)
    mask = analysis_mask(brain, post.brain_erosion)
    maps = residual_maps(volume, recon, mask, post)
    return {name: m for name, m in maps.items() if name in present}, mask


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
    by_subset: dict[str, dict[str, float]] = {}
    peaks: dict[str, dict[str, float]] = {}
    et_min: dict[str, int] = {}
    for present in subsets:
        maps, mask = healthy_maps(model, slices, post, inference, device, present)
        key = subset_key(present)
        by_subset[key] = {
            name: round(float(np.percentile(m[mask], percentile)), 4) for name, m in maps.items()
        }
        peaks[key] = {
            name: round(healthy_peak(m, mask, by_subset[key][name], post), 4)
            for name, m in maps.items()
        }
        et_min[key] = largest_component_voxels(
            binarise(maps["t1c"], mask, by_subset[key]["t1c"], post)
        )
    full = by_subset[subset_key(MODALITIES)]
    calibrated = dataclasses.replace(
        post,
        threshold_t1c=full["t1c"],
        threshold_t2f=full["t2f"],
        thresholds_by_subset={k: (v["t1c"], v["t2f"]) for k, v in by_subset.items()},
        peak_thresholds_by_subset={k: (v["t1c"], v["t2f"]) for k, v in peaks.items()},
        et_min_voxels_by_subset=et_min,
    )
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
    ).slices
    post, info = calibrate_thresholds(model, slices, post, percentile, InferenceConfig(), dev)
    info["restore_iterations"] = post.restore_iterations
    info["restore_maps"] = list(post.restore_maps)
    info["calibrated_on"] = sorted({c.case_id for c in cases})
    info["source_weights"] = {"path": meta["path"], "sha256": meta["sha256"]}
    model_info = {**meta["info"], "calibration": info}
    sha = save_checkpoint(output, model, postprocess=post, info=model_info)
    return sha, info
