"""The method, stage by stage, for one case held in memory.

read -> normalise -> reconstruct -> anomaly -> threshold -> refine -> labels -> write
(``predict`` reads and writes; ``Segmenter.segment`` runs the rest). Subclasses
(``segmenter.methods``) say what "healthy" is.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.device import compute_path, pick_device
from brats_goat.io.read import CaseError, CaseVolumes
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.parallel import channel_map
from brats_goat.segmenter.config import PipelineConfig
from brats_goat.segmenter.lookup import ThresholdLookup
from brats_goat.segmenter.results import (
    Candidates,
    Normalised,
    Segmentation,
    require_finite_stage,
)
from brats_goat.stages.anomaly import (
    analysis_mask,
    case_score,
    channel_scores,
    median3_inplane,
    residual_maps,
    z_map,
)
from brats_goat.stages.crop import margin_for, stage_box
from brats_goat.stages.labels import (
    enhancement_near,
    fuse_labels,
    near_largest,
    region_without_flair,
    tumour_like,
)
from brats_goat.stages.normalise import NonFiniteError, normalise_case
from brats_goat.stages.reference import reference_path
from brats_goat.stages.refine import refine_masks
from brats_goat.stages.sam_backends import make_backend
from brats_goat.stages.threshold import binarise, candidate_mask, drop_up_to
from brats_goat.stages.tumour import fill_tumour, non_enhancing_core, whole_tumour
from brats_goat.timing import Stage, StageTimer

F = TypeVar("F", bound=Callable[..., Any])


def on_chosen_path(method: F) -> F:
    """Run ``method`` on the reference path when the segmenter's config asks for it
    (``PipelineConfig.reference_path``, ``stages.reference``)."""

    @functools.wraps(method)
    def run(self: Segmenter, *args: Any, **kwargs: Any) -> Any:
        with reference_path(self.config.reference_path):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class Segmenter(ThresholdLookup):
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

    @property
    def crop_margin(self) -> int:
        """The margin of the box the anomaly, threshold and labels stages run on
        (``stages.crop``), from how far their operations reach with these settings."""
        post, labels = self.postprocess, self.config.labels
        return margin_for(
            {
                "median filter": 1,
                "opening and closing": 2 * post.morphology_radius,
                "brain erosion": post.brain_erosion,
                "ET within the whole tumour": post.et_within_wt_dilation,
                "ET search": labels.et_search_dilation,
                "core closing": 2 * labels.core_closing,
                "ET island gap": labels.et_core_gap or 0,
                "tumour growth": self.config.tumour.grow_steps,
            }
        )

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        raise NotImplementedError

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

    @on_chosen_path
    def normalise(self, volumes: CaseVolumes) -> Normalised:
        """The normalise stage. Thread-safe and numpy only: the run normalises the next case
        on its read thread while this one's 3D stages leave a core free (``ReadAhead``)."""
        try:
            return Normalised(*normalise_case(volumes.stack(MODALITIES), self.config.normalise))
        except NonFiniteError as exc:
            raise CaseError(f"{volumes.where(exc.modality)}: {exc.cause}") from exc

    @on_chosen_path
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
        with timer.stage(Stage.NORMALISE):
            norm = prepared() if prepared is not None else self.normalise(volumes)
            normalised, brain, left_out = norm.stack, norm.brain, norm.left_out
        with timer.stage(Stage.RECONSTRUCT):
            recon = self.reconstruct(normalised, brain, present)
            estimates = dict(zip(MODALITIES, recon, strict=True))
            require_finite_stage(volumes, "reconstruction", estimates)
        # Anomaly and threshold on the brain's box, pasted back: the same result as on
        # the whole grid (brats_goat.stages.crop) for a third of the voxels.
        box = stage_box(brain, self.crop_margin)
        with timer.stage(Stage.ANOMALY):
            maps, mask = self.anomaly(
                box.crop(normalised), box.crop(recon), box.crop(brain), present
            )
            require_finite_stage(volumes, "anomaly map", maps)
            score = case_score(maps, box.crop(brain))
            scores = channel_scores(maps, box.crop(brain))
        with timer.stage(Stage.THRESHOLD):
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

    @on_chosen_path
    def labels(
        self, binary: dict[str, np.ndarray], cand: Candidates, present: tuple[str, ...]
    ) -> np.ndarray:
        """The labels stage. With the ``near-wt`` rule, ET is the bright t1c (z-scored image)
        in and around the whole tumour, for every method alike; the ``channel`` rule takes
        the method's own t1c component (and a refined one, where t1c was refined)."""
        # On the box of everything the labels can come from, pasted back (exact, as above).
        box = stage_box(cand.mask | binary["t2f"] | binary["t1c"], self.crop_margin)
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

    @on_chosen_path
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
        with timer.stage(Stage.REFINE):
            if self.refiner is not None:
                # Refinement re-applies the component rule; keep what the peak rule kept.
                several = any(v is not None for v in self.peak_thresholds(volumes.present).values())
                rule = dataclasses.replace(post, keep_largest=post.keep_largest and not several)
                binary, stats = refine_masks(
                    binary, cand.normalised, cand.brain, self.refiner, self.config.refine, rule
                )
                refined = stats.to_dict()
        with timer.stage(Stage.LABELS):
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
