"""End-to-end inference on one case in memory: ``make_segmenter`` and its configuration.

read -> normalise -> reconstruct -> anomaly -> threshold -> refine -> labels -> write.

``Segmenter`` is the library API (usable from a notebook on in-memory volumes);
``predict`` runs it over a folder of cases with per-case isolation and a run report.
Modules: ``config`` (``PipelineConfig``), ``results`` (what the stages hand on),
``lookup`` (which calibrated thresholds apply), ``base`` (the stages), ``methods`` (the
MViT-AE and the intensity baseline).
"""

from brats_goat.segmenter.base import Segmenter
from brats_goat.segmenter.config import (
    COMPONENT_RULES,
    INTENSITY_BASELINE,
    PipelineConfig,
    intensity_baseline,
)
from brats_goat.segmenter.methods import (
    METHODS,
    IntensitySegmenter,
    MViTAESegmenter,
    make_segmenter,
)
from brats_goat.segmenter.results import (
    Candidates,
    Normalised,
    Segmentation,
    require_finite_stage,
)
from brats_goat.timing import STAGES

__all__ = [
    "COMPONENT_RULES",
    "INTENSITY_BASELINE",
    "METHODS",
    "STAGES",
    "Candidates",
    "IntensitySegmenter",
    "MViTAESegmenter",
    "Normalised",
    "PipelineConfig",
    "Segmentation",
    "Segmenter",
    "intensity_baseline",
    "make_segmenter",
    "require_finite_stage",
]
