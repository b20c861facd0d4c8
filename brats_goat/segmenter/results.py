"""What the stages hand on: a case after ``normalise`` and after ``threshold``, and the
finished ``Segmentation``; and the check that a stage's result is finite."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brats_goat.io.read import CaseError, CaseVolumes


@dataclass
class Segmentation:
    """Result for one case, in canonical (LPS) array order."""

    labels: np.ndarray
    maps: dict[str, np.ndarray]
    score: float
    #: What refinement did (backend, accepted/rejected SAM masks per channel), if it ran.
    refine: dict[str, Any] | None = None
    #: Share of the brain left out of the normalisation statistics (a large lesion).
    normalise_left_out: float = 0.0
    #: What the report should say about how the labels were made (a case without t2f).
    warnings: list[str] = field(default_factory=list)
    #: Per present channel, how abnormal the case is against healthy variation
    #: (``Segmenter.abnormality``).
    abnormality: dict[str, float] = field(default_factory=dict)


@dataclass
class Normalised:
    """A case after ``normalise``: what every later stage starts from."""

    stack: np.ndarray  # (C, X, Y, Z) z-scored modalities, MODALITIES order
    brain: np.ndarray
    #: Brain voxels left out of the statistics (a large lesion).
    left_out: np.ndarray


@dataclass
class Candidates:
    """A case after ``threshold``: the binary component per channel and what it came from."""

    normalised: np.ndarray  # (C, X, Y, Z) z-scored modalities, MODALITIES order
    brain: np.ndarray
    #: The eroded brain the maps were made in (the anomaly stage's analysis mask).
    mask: np.ndarray
    maps: dict[str, np.ndarray]
    score: float
    binary: dict[str, np.ndarray]
    #: Share of the brain left out of the normalisation statistics (a large lesion).
    normalise_left_out: float = 0.0
    #: 99.9th percentile of each map in the brain (``stages.anomaly.channel_scores``).
    channel_scores: dict[str, float] = field(default_factory=dict)


def require_finite_stage(volumes: CaseVolumes, stage: str, arrays: dict[str, np.ndarray]) -> None:
    """A ``CaseError`` naming the modality's file and the stage when a stage's result holds
    NaN/Inf: thresholds and histograms would fail later on it, naming neither."""
    for modality, array in arrays.items():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad and modality in volumes.present:
            raise CaseError(
                f"{volumes.where(modality)}: the {stage} has {bad} NaN/Inf voxels although "
                "its input was finite (a numerical failure of the model or the device)"
            )
