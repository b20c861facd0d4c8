"""Label-free thresholds of the intensity baseline (``--method intensity``):
``intensity_baseline.json``.

What ships (issue 15) is measured on real tissue by ``tissue`` (whole volumes of healthy
subjects with their lesion masks left out, and the slices of tumour cases far from their
label map; the median over subjects of each subject's percentile). ``phantom_thresholds``
is the earlier phantom calibration, kept for comparison and never written: the 99.9th
percentile of the maps of healthy phantoms (seeds 1000+, never used by a benchmark) through
the ``IntensitySegmenter``'s own stages, the highest component peak left at those
thresholds, and the largest t1c component its threshold stage keeps there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brats_goat.calibration.records import make_record, source_commit
from brats_goat.calibration.tissue import TissueCalibrationConfig, calibrate_on_tissue
from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.segmenter import IntensitySegmenter, PipelineConfig
from brats_goat.stages.normalise import normalise_case
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.training.config import TrainConfig

ABOUT = (
    "Label-free post-processing of the training-free intensity baseline (--method "
    "intensity): z units of the image itself. Never fitted on the cases we score. The map "
    "does not depend on which other sequences a case has, so every modality subset shares "
    "the same values."
)
RULE = (
    "brats_goat.calibration.tissue (median over subjects of each subject's percentile; "
    "known lesions and tumour slices left out)"
)
#: What the recorded post-processing keeps (the thresholds by subset are the defaults').
STORED = ("threshold_t1c", "threshold_t2f", "peak_thresholds_by_subset", "et_min_voxels_by_subset")

Maps = dict[str, np.ndarray]


def baseline_segmenter() -> IntensitySegmenter:
    """The intensity baseline as ``predict`` runs it; refinement plays no part in the
    statistics (it comes after the threshold stage)."""
    return IntensitySegmenter(PipelineConfig(refine=RefineConfig("none")))


def intensity_record(
    healthy: Path,
    tumour: list[Path],
    settings: dict[str, Any],
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``intensity_baseline.json`` measured on the healthy subjects in ``healthy`` and the
    far slices of the cases in ``tumour``, with ``settings`` (keys of the stored block)."""
    cfg = TissueCalibrationConfig(
        percentile=settings["percentile"],
        lesion_margin=settings["lesion_margin"],
        selection=TrainConfig(
            healthy_margin=settings["tumour_margin"],
            min_brain_voxels=settings["min_brain_voxels"],
        ),
    )
    cases = [c for folder in tumour for c in discover_cases(folder)]
    post, info = calibrate_on_tissue(
        baseline_segmenter(), discover_cases(healthy), cases, cfg, echo
    )
    return make_record(
        "intensity",
        ABOUT,
        {"postprocess": {k: getattr(post, k) for k in STORED}},
        settings,
        {
            "data": "real healthy tissue: " + ", ".join(info["calibrated_on"]),
            "rule": RULE,
            "voxels": info["data"],
            "measured_at_commit": source_commit(),
        },
    )


def phantom_maps(
    segmenter: IntensitySegmenter, seed: int, cases: int
) -> list[tuple[Maps, np.ndarray]]:
    """Anomaly maps and analysis mask of ``cases`` healthy phantoms of ``seed``, through the
    segmenter's stages (on a healthy phantom the lesion-robust normalisation is exactly the
    plain z-score)."""
    from brats_goat.synth import generate_case  # the phantoms only for this comparison

    out = []
    for i in range(cases):
        case = generate_case(seed, i, healthy=True)
        stack = np.stack([case.images[m].astype(np.float32) for m in MODALITIES])
        normalised, brain, _ = normalise_case(stack, segmenter.config.normalise)
        recon = segmenter.reconstruct(normalised, brain, MODALITIES)
        out.append(segmenter.anomaly(normalised, recon, brain, MODALITIES))
    return out


def phantom_thresholds(
    seed: int, cases: int, percentile: float, echo: Callable[[str], None] = print
) -> None:
    """Print the phantom calibration next to what ships (nothing is written)."""
    segmenter = baseline_segmenter()
    post = segmenter.postprocess
    found = phantom_maps(segmenter, seed, cases)
    for name in ("t1c", "t2f"):
        pooled = np.concatenate([maps[name][mask] for maps, mask in found])
        value = float(np.percentile(pooled, percentile))
        peak = max(healthy_peak(maps[name], mask, round(value, 2), post) for maps, mask in found)
        echo(
            f"threshold_{name} = {value:.2f}, peak {peak:.2f}  # {percentile}th percentile, "
            f"{cases} healthy phantoms, seed {seed}"
        )
    # The threshold stage at the stored thresholds (so the minimum matches what predict
    # applies), without the stored ET minimum: the minimum is what is measured here.
    probe = IntensitySegmenter(
        dataclasses.replace(
            segmenter.config, intensity=dataclasses.replace(post, et_min_voxels_by_subset={})
        )
    )
    et_min = max(
        largest_component_voxels(probe.threshold(maps, mask, MODALITIES)["t1c"])
        for maps, mask in found
    )
    echo(f"et_min_voxels = {et_min}  # largest t1c component kept at {post.threshold_t1c}")
