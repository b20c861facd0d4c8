"""What ``predict`` needs besides the weights: ``PipelineConfig``, one dataclass holding
every stage's own configuration, and the intensity baseline's stored thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from brats_goat.calibrated import stored_result
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.serialise import from_dict
from brats_goat.stages.labels import LabelsConfig
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.tumour import TumourConfig

#: ``PipelineConfig.component_rule`` choices (``--components``).
COMPONENT_RULES: tuple[str, ...] = ("largest", "largest+peaks")


#: The intensity baseline's measured post-processing and how it was measured.
INTENSITY_BASELINE = "intensity_baseline.json"


def intensity_baseline() -> PostprocessConfig:
    """The intensity baseline's label-free post-processing (``INTENSITY_BASELINE``)."""
    data = stored_result("intensity")
    post = data["postprocess"]
    for key in ("thresholds_by_subset", "peak_thresholds_by_subset"):
        post[key] = {subset: tuple(pair) for subset, pair in post.get(key, {}).items()}
    return from_dict(PostprocessConfig, post)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `predict` needs besides the weights."""

    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    #: None = the post-processing stored in the checkpoint (its calibrated thresholds);
    #: set it to override (experiments).
    postprocess: PostprocessConfig | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    #: Thresholds of the training-free intensity baseline (``--method intensity``), in z
    #: units of the image itself: measured data with their provenance, read from
    #: ``intensity_baseline.json`` (``brats-goat calibrate intensity``).
    intensity: PostprocessConfig = field(default_factory=intensity_baseline)
    #: Which 3D components each channel keeps. ``largest`` (paper, default): one. With
    #: ``largest+peaks`` also every component more abnormal than healthy calibration data
    #: ever was (``PostprocessConfig.peak_thresholds_by_subset``; where the weights carry
    #: none, the largest only). Opt-in: on phantoms it found every metastasis (WT 0.27 ->
    #: 0.96), on the real cases it added false positives (WT 0.88 -> 0.18,
    #: results/benchmark-5f4c151-norm.md); a site whose healthy calibration scans are its own
    #: may do better.
    component_rule: str = "largest"
    #: Tolerance when comparing the affines of the four modalities (mm / direction units).
    affine_atol: float = 1e-3
    #: A labelled case whose t2f ``abnormality`` is below this gets a warning that its
    #: finding is within healthy variation: healthy subjects without white-matter disease
    #: reached 1.02-1.33 with the default weights (results/abnormality-27.md).
    healthy_abnormality: float = 1.5
    #: ... and below this, that it is within the range of small non-tumour lesions: the
    #: white-matter-lesion subjects reached 1.29-2.21 and the 17 development tumours at
    #: least 1.97 (a metastasis; gliomas 2.17 and above), so 1.9 warns on most of those
    #: lesions and on no development tumour (results/abnormality-27.md).
    tumour_abnormality: float = 1.9
    #: Run scipy's own filters on the whole grid instead of the fast path (``stages.
    #: reference``): the same labels, slower; for checking a change to a stage.
    reference_path: bool = False
    refine: RefineConfig = field(default_factory=RefineConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    tumour: TumourConfig = field(default_factory=TumourConfig)

    def __post_init__(self) -> None:
        if self.tumour_abnormality < self.healthy_abnormality:
            raise ValueError("tumour_abnormality must be at least healthy_abnormality")
        if self.component_rule not in COMPONENT_RULES:
            raise ValueError(f"component_rule must be one of {', '.join(COMPONENT_RULES)}")
