"""End-to-end inference.

read -> normalise -> reconstruct -> anomaly -> threshold -> refine -> labels -> write.

``Segmenter`` is the library API (usable from a notebook on in-memory volumes);
``predict`` runs it over a folder of cases with per-case isolation and a run report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brats_goat.calibrated import stored_result
from brats_goat.conventions import MODALITIES, subset_key
from brats_goat.device import autocast_dtype, compute_path, pick_device
from brats_goat.io.read import CaseError, CaseVolumes
from brats_goat.model.checkpoint import load_verified
from brats_goat.model.network import MViTAE
from brats_goat.parallel import channel_map
from brats_goat.serialise import from_dict
from brats_goat.stages.anomaly import (
    analysis_mask,
    case_score,
    channel_scores,
    median3_inplane,
    residual_maps,
    z_map,
)
from brats_goat.stages.crop import bounding_box
from brats_goat.stages.labels import (
    LabelsConfig,
    enhancement_near,
    fuse_labels,
    near_largest,
    region_without_flair,
    tumour_like,
)
from brats_goat.stages.normalise import NonFiniteError, NormaliseConfig, normalise_case
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine import RefineConfig, refine_masks
from brats_goat.stages.restore import restore_volume
from brats_goat.stages.runtime import Network, prepare_network, runtime_that_runs
from brats_goat.stages.sam_backends import make_backend
from brats_goat.stages.threshold import binarise, candidate_mask, drop_up_to
from brats_goat.stages.tumour import (
    TumourConfig,
    fill_tumour,
    non_enhancing_core,
    whole_tumour,
)
from brats_goat.timing import StageTimer

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
    #: finding is within healthy variation: healthy subjects reached 1.02-1.33 with the
    #: default weights, no real tumour case less than 1.94 (results/abnormality-27.md).
    healthy_abnormality: float = 1.5
    refine: RefineConfig = field(default_factory=RefineConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    tumour: TumourConfig = field(default_factory=TumourConfig)

    def __post_init__(self) -> None:
        if self.component_rule not in COMPONENT_RULES:
            raise ValueError(f"component_rule must be one of {', '.join(COMPONENT_RULES)}")


STAGES: tuple[str, ...] = (
    "read",
    "normalise",
    "reconstruct",
    "anomaly",
    "threshold",
    "refine",
    "labels",
    "write",
)


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


class Segmenter:
    """Anomaly segmentation of one case held in memory; subclasses say what "healthy" is.

    Every method shares the same stages; they differ only in the healthy estimate that is
    subtracted (``reconstruct``) and in the thresholds applied to the residual.
    """

    method = "base"

    def __init__(self, config: PipelineConfig | None = None, meta: dict[str, Any] | None = None):
        self.config = config or PipelineConfig()
        self.meta = meta or {}
        self.device = torch.device("cpu")
        inference = self.config.inference
        #: SAM-family model of the refine stage (None: ``--refine none``).
        self.refiner = make_backend(
            self.config.refine,
            pick_device(inference.device),
            inference.precision,
            inference.runtime,
        )

    @property
    def postprocess(self) -> PostprocessConfig:
        return self.config.postprocess or PostprocessConfig()

    @property
    def precision(self) -> str | None:
        """The network's arithmetic on this machine; None: the method runs no network."""
        return None

    @property
    def cpu_isa(self) -> str | None:
        """oneDNN's CPU path that runs the network (for the run report); None: no network,
        or it runs on a GPU."""
        return None if self.precision is None else compute_path(self.device)

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        raise NotImplementedError

    def thresholds(self, present: tuple[str, ...]) -> dict[str, float]:
        """(t1c, t2f) thresholds for the modalities this case has.

        A checkpoint calibrated per modality subset supplies its own; otherwise the
        full-set thresholds apply.
        """
        post = self.postprocess
        by_subset = post.thresholds_by_subset.get(subset_key(present))
        t1c, t2f = by_subset if by_subset else (post.threshold_t1c, post.threshold_t2f)
        return {"t1c": float(t1c), "t2f": float(t2f)}

    def peak_thresholds(self, present: tuple[str, ...]) -> dict[str, float | None]:
        """Peak values of the 'largest + more abnormal than healthy' component rule for
        this modality subset, or None (largest only) where the rule is off or the values
        were not calibrated."""
        peaks = self.postprocess.peak_thresholds_by_subset.get(subset_key(present))
        if self.config.component_rule != "largest+peaks" or not peaks:
            return {"t1c": None, "t2f": None}
        return {"t1c": float(peaks[0]), "t2f": float(peaks[1])}

    def et_min_voxels(self, present: tuple[str, ...]) -> int:
        """Calibrated ET minimum for this modality subset (0 = none stored)."""
        return int(self.postprocess.et_min_voxels_by_subset.get(subset_key(present), 0))

    def healthy_t1c_peak(self, present: tuple[str, ...]) -> float | None:
        """The highest t1c component peak on healthy calibration data for this subset (the
        full set's where it has none); None: not calibrated."""
        by_subset = self.postprocess.peak_thresholds_by_subset
        peaks = by_subset.get(subset_key(present)) or by_subset.get(subset_key(MODALITIES))
        return float(peaks[0]) if peaks else None

    def gate_without_flair(
        self, binary: dict[str, np.ndarray], cand: Candidates, present: tuple[str, ...]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """In a case without t2f the t1c component says where the tumour is, so it must look
        like one (``tumour_like``): else no ET, and a warning saying why."""
        t1c = binary["t1c"]
        if "t2f" in present or "t1c" not in present or not t1c.any():
            return binary, []
        t2w = cand.normalised[MODALITIES.index("t2w")] if "t2w" in present else None
        peak = self.healthy_t1c_peak(present)
        if tumour_like(t1c, cand.maps["t1c"], t2w, peak, self.config.labels):
            return binary, []
        t2w_said = "" if t2w is None else f"median t2w {float(np.median(t2w[t1c])):.2f} z, "
        healthy = "not calibrated" if peak is None else f"{peak:.2f}"
        warning = (
            f"no t2f: the t1c residual's component ({int(t1c.sum())} voxels; {t2w_said}peak "
            f"{float(cand.maps['t1c'][t1c].max()):.2f}, healthy peak {healthy}) does not look "
            "like a tumour (T2w-bright or more abnormal than healthy tissue): no ET labelled"
        )
        return {**binary, "t1c": np.zeros_like(t1c)}, [warning]

    def normalise(self, volumes: CaseVolumes) -> Normalised:
        """The normalise stage. Thread-safe and numpy only: the run normalises the next case
        on its read thread while this one's 3D stages leave a core free (``ReadAhead``)."""
        try:
            return Normalised(*normalise_case(volumes.stack(MODALITIES), self.config.normalise))
        except NonFiniteError as exc:
            raise CaseError(f"{volumes.where(exc.modality)}: {exc.cause}") from exc

    def candidates(
        self,
        volumes: CaseVolumes,
        timer: StageTimer | None = None,
        prepared: Callable[[], Normalised] | None = None,
        channels: tuple[str, ...] = ("t1c", "t2f"),
    ) -> Candidates:
        """Every stage up to and including ``threshold`` (what refinement starts from).
        ``prepared``: waits for this case's ``normalise``, already under way elsewhere (its
        errors come out in the normalise stage); None: the case is normalised here.
        ``channels``: the maps thresholded (the others' binary masks stay empty)."""
        timer = timer or StageTimer()
        present = volumes.present
        with timer.stage("normalise"):
            norm = prepared() if prepared is not None else self.normalise(volumes)
            normalised, brain, left_out = norm.stack, norm.brain, norm.left_out
        with timer.stage("reconstruct"):
            recon = self.reconstruct(normalised, brain, present)
            estimates = dict(zip(MODALITIES, recon, strict=True))
            require_finite_stage(volumes, "reconstruction", estimates)
        # Anomaly and threshold on the brain's box, pasted back: the same result as on
        # the whole grid (brats_goat.stages.crop) for a third of the voxels.
        box = bounding_box(brain)
        with timer.stage("anomaly"):
            maps, mask = self.anomaly(
                box.crop(normalised), box.crop(recon), box.crop(brain), present
            )
            require_finite_stage(volumes, "anomaly map", maps)
            score = case_score(maps, box.crop(brain))
            scores = channel_scores(maps, box.crop(brain))
        with timer.stage("threshold"):
            binary = self.threshold(maps, mask, present, channels, box.crop(normalised))
            maps, mask = {k: box.paste(v) for k, v in maps.items()}, box.paste(mask)
            binary = {k: box.paste(v) for k, v in binary.items()}
        left = round(float(left_out.sum() / max(int(brain.sum()), 1)), 4)
        return Candidates(normalised, brain, mask, maps, score, binary, left, scores)

    def anomaly(
        self, normalised: np.ndarray, recon: np.ndarray, brain: np.ndarray, present: tuple[str, ...]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The anomaly stage: residual maps inside the eroded brain, and that mask.

        Calibration runs healthy data through this same method, so the thresholds are
        measured on exactly the maps ``predict`` thresholds.
        """
        mask = analysis_mask(brain, self.postprocess.brain_erosion)
        return residual_maps(normalised, recon, mask, self.postprocess, present), mask

    def threshold(
        self,
        maps: dict[str, np.ndarray],
        mask: np.ndarray,
        present: tuple[str, ...],
        channels: tuple[str, ...] = ("t1c", "t2f"),
        normalised: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The threshold stage: fixed + Otsu threshold, morphology and the component rule per
        map of ``channels``, then the ET minimum; any other channel gets an empty mask.
        Given the case's ``normalised`` stack, the FLAIR map's component is the whole
        tumour's (``whole_tumour``: chosen by anomaly mass and T2w support), so that
        refinement refines the component the labels are made of."""
        post = self.postprocess
        fixed, peaks = self.thresholds(present), self.peak_thresholds(present)
        binary = {name: np.zeros(mask.shape, dtype=bool) for name in ("t1c", "t2f")}
        names = [name for name in maps if name in channels]

        def one(name: str) -> np.ndarray:
            if name != "t2f" or normalised is None or not self.config.tumour.enabled:
                return binarise(maps[name], mask, fixed[name], post, peaks[name])
            chosen = self.whole_tumour(maps[name], normalised, mask, present)
            if peaks[name] is None:
                return chosen
            # The opt-in peak rule's further lesions stay (its largest may differ).
            return chosen | binarise(maps[name], mask, fixed[name], post, peaks[name])

        binary.update(zip(names, channel_map(one, names), strict=True))
        if binary["t1c"].any():
            binary["t1c"] = drop_up_to(binary["t1c"], self.et_min_voxels(present))
        return binary

    def channels_used(self, present: tuple[str, ...] = MODALITIES) -> tuple[str, ...]:
        """The channels whose binary masks ``segment`` reads: the whole tumour's (t2f)
        always; t1c's own under the ``channel`` ET rule, where SAM refines it, or where the
        case has no t2f (its component then says where ET is searched). Otherwise the
        ``near-wt`` rule finds ET in the t1c image itself; thresholding its map for
        nothing cost ~0.1 s per case, issue 18."""
        refined = self.config.refine.channels if self.refiner is not None else ()
        no_flair = "t2f" not in present
        if self.config.labels.et_rule != "near-wt" or "t1c" in refined or no_flair:
            return ("t1c", "t2f")
        return ("t2f",)

    def labels(
        self, binary: dict[str, np.ndarray], cand: Candidates, present: tuple[str, ...]
    ) -> np.ndarray:
        """The labels stage. With the ``near-wt`` rule, ET is the bright t1c (z-scored image)
        in and around the whole tumour, for every method alike; the ``channel`` rule takes
        the method's own t1c component (and a refined one, where t1c was refined)."""
        # On the box of everything the labels can come from, pasted back (exact, as above).
        box = bounding_box(cand.mask | binary["t2f"] | binary["t1c"])
        wt, mask = box.crop(binary["t2f"]), box.crop(cand.mask)
        post, cfg = self.postprocess, self.config.labels
        t1c = box.crop(binary["t1c"])
        if cfg.et_rule == "near-wt" and "t1c" in present:
            t1c_z = z_map(box.crop(cand.normalised), mask, post)
            # Without t2f the t1c component says where the tumour is (issue 27: searching
            # near an empty FLAIR tumour gave every such case an empty map).
            near = wt if "t2f" in present else region_without_flair(t1c, mask, cfg)
            et = near_largest(enhancement_near(t1c_z, near, mask, cfg), cfg.et_core_gap)
            labels = self.fill(fuse_labels(wt, et, 0, cfg.core_closing), present)
            if self.config.tumour.enabled and "t2f" in present:
                labels = non_enhancing_core(labels, t1c_z, self.config.tumour)
            return box.paste(labels)
        # Without t2f there is no FLAIR lesion for the t1c component to touch: keep it.
        touch = post.et_within_wt_dilation if "t2f" in present else 0
        return box.paste(self.fill(fuse_labels(wt, t1c, touch, cfg.core_closing), present))

    def fill(self, labels: np.ndarray, present: tuple[str, ...]) -> np.ndarray:
        """What the whole tumour encloses, added (``stages.tumour.fill_tumour``)."""
        tumour = self.config.tumour
        return fill_tumour(labels, tumour) if tumour.enabled and "t2f" in present else labels

    def whole_tumour(
        self, flair_map: np.ndarray, normalised: np.ndarray, mask: np.ndarray, present
    ) -> np.ndarray:
        """The whole tumour from every present sequence (``stages.tumour``)."""
        post = self.postprocess
        threshold = self.thresholds(present)["t2f"]
        candidates = candidate_mask(flair_map, mask, threshold, post)
        # Only T2w's support is read: filtering the other sequences here was work for nothing.
        t2w = normalised[MODALITIES.index("t2w")] if "t2w" in present else None
        return whole_tumour(
            candidates,
            flair_map,
            threshold,
            None if t2w is None else median3_inplane(t2w),
            mask,
            post.min_component_voxels,
            self.config.tumour,
        )

    def segment(
        self,
        volumes: CaseVolumes,
        timer: StageTimer | None = None,
        prepared: Callable[[], Normalised] | None = None,
    ) -> Segmentation:
        """Every stage but read and write; ``prepared`` as in ``candidates``."""
        timer = timer or StageTimer()
        post = self.postprocess
        cand = self.candidates(volumes, timer, prepared, self.channels_used(volumes.present))
        binary, refined = cand.binary, None
        with timer.stage("refine"):
            if self.refiner is not None:
                # Refinement re-applies the component rule; keep what the peak rule kept.
                several = any(v is not None for v in self.peak_thresholds(volumes.present).values())
                rule = dataclasses.replace(post, keep_largest=post.keep_largest and not several)
                binary, stats = refine_masks(
                    binary, cand.normalised, cand.brain, self.refiner, self.config.refine, rule
                )
                refined = stats.to_dict()
        with timer.stage("labels"):
            binary, warnings = self.gate_without_flair(binary, cand, volumes.present)
            labels = self.labels(binary, cand, volumes.present)
        return Segmentation(
            labels=labels,
            maps=cand.maps,
            score=cand.score,
            refine=refined,
            normalise_left_out=cand.normalise_left_out,
            warnings=warnings,
            abnormality=self.abnormality(cand.channel_scores, volumes.present),
        )

    def abnormality(self, scores: dict[str, float], present: tuple[str, ...]) -> dict[str, float]:
        """Each present channel's 99.9th residual percentile over its calibrated threshold,
        which is the median of that percentile over healthy subjects: about 1 on a healthy
        brain, however large the component thresholding leaves there; a tumour of more
        than 0.1% of the brain lifts it well above (docs/cli.md, "abnormality")."""
        thresholds = self.thresholds(present)
        return {
            name: round(scores[name] / thresholds[name], 3)
            for name in ("t2f", "t1c")
            if name in present and name in scores and thresholds[name] > 0
        }


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


class MViTAESegmenter(Segmenter):
    """The MViT-AE: the residual is what the healthy-only autoencoder cannot reconstruct."""

    method = "mvitae"

    def __init__(
        self,
        model: MViTAE,
        config: PipelineConfig | None = None,
        meta: dict[str, Any] | None = None,
        device: torch.device | None = None,
    ) -> None:
        """``device`` overrides ``config.inference.device`` (calibration passes the one its
        caller already chose)."""
        super().__init__(config, meta)
        self.device = device or pick_device(self.config.inference.device)
        self.model = model.to(self.device).eval()
        self._network: MViTAE | Network | None = None

    @property
    def network(self) -> MViTAE | Network:
        """What runs the forward pass (``InferenceConfig.runtime``): the torch module, or it
        compiled by another runtime once, at the first case (not for segmenters never run)."""
        if self._network is None:
            self._network = prepare_network(self.model, self.config.inference.runtime, self.device)
        return self._network

    @property
    def precision(self) -> str:
        """The forward pass's arithmetic on this machine (for the run report)."""
        inference = self.config.inference
        runs = runtime_that_runs(inference.runtime, self.device)
        if runs != "torch":
            return runs
        dtype = autocast_dtype(inference.precision) or torch.float32
        return str(dtype).removeprefix("torch.")

    @property
    def postprocess(self) -> PostprocessConfig:
        """The checkpoint's calibrated post-processing, unless the config overrides it.

        Thresholds belong to the weights: they were derived from this model's residuals on
        held-out healthy slices, together with the erosion and filter they were measured
        with. ``PipelineConfig.postprocess`` set explicitly wins (experiments).
        """
        stored = self.meta.get("postprocess")
        if self.config.postprocess is None:
            return stored if stored is not None else PostprocessConfig()
        return self.config.postprocess

    @classmethod
    def from_weights(
        cls, weights: str | Path | None = None, config: PipelineConfig | None = None
    ) -> MViTAESegmenter:
        """Load checksum-verified weights (default: the shipped checkpoint)."""
        model, meta = load_verified(weights)
        return cls(model, config, meta)

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        keep = np.array([m in present for m in MODALITIES])
        return restore_volume(
            self.network,
            normalised,
            brain,
            self.postprocess,
            self.config.inference,
            self.device,
            present=keep,
        )


class IntensitySegmenter(Segmenter):
    """Training-free yardstick (Meissen et al.): the z-scored image itself is the residual.

    A healthy brain's z-scored FLAIR and t1c rarely reach the thresholds; tumour (edema on
    FLAIR, enhancement on t1c) does. Any learned model must beat this to be worth its cost.
    """

    method = "intensity"

    @property
    def postprocess(self) -> PostprocessConfig:
        return self.config.intensity

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        return np.zeros_like(normalised)


METHODS: tuple[str, ...] = ("mvitae", "intensity")


def make_segmenter(
    method: str = "mvitae",
    weights: str | Path | None = None,
    config: PipelineConfig | None = None,
) -> Segmenter:
    """The segmenter for ``method``; only the MViT-AE loads weights."""
    if method == "mvitae":
        return MViTAESegmenter.from_weights(weights, config)
    if method == "intensity":
        return IntensitySegmenter(config)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
