"""Levels of healthy tissue in the z-scored images, as ``predict`` sees them: the label-free
thresholds of ET (``enhancement.json``) and of the whole tumour and its core
(``tumour.json``) are percentiles of these values (``brats-goat calibrate enhancement``
and ``brats-goat calibrate tumour``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import Case, discover_cases
from brats_goat.io.read import load_case
from brats_goat.segmenter import intensity_baseline
from brats_goat.stages.anomaly import analysis_mask, median3_inplane
from brats_goat.stages.normalise import NormaliseConfig, normalise_case
from brats_goat.training.healthy import has_lesion_mask, reference_mask


def healthy_values(case: Case, modality: str) -> np.ndarray | None:
    """One subject's z-scored ``modality`` after the pipeline's in-plane 3x3 median, inside
    its eroded brain, its known lesions (``<ID>-lesion``) left out; None: it lacks it."""
    if modality not in case.files:
        return None
    volumes = load_case(case, allow_missing=True)
    normalised, brain, _ = normalise_case(volumes.stack(MODALITIES), NormaliseConfig())
    mask = analysis_mask(brain, intensity_baseline().brain_erosion)
    if has_lesion_mask(case):
        lesion = reference_mask(case, volumes, 1e-3)
        assert lesion is not None
        mask &= ~lesion
    return median3_inplane(normalised[MODALITIES.index(modality)])[mask]


def healthy_pool(data: Path, modality: str) -> dict[str, np.ndarray]:
    """``healthy_values`` of every case under ``data`` that has ``modality``, by case ID;
    ``SystemExit`` when none has it (the calibration scripts' error)."""
    pool = {}
    for case in discover_cases(data):
        values = healthy_values(case, modality)
        if values is not None:
            pool[case.case_id] = values
    if not pool:
        raise SystemExit(f"no subject with a {modality} in {data}")
    return pool
