"""Threshold look-up: which of the calibrated values stored with the weights apply to a
case, by the modality subset it has. Kept apart from the stages so that the method reads
as the data flow (``base.Segmenter``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from brats_goat.conventions import MODALITIES, subset_key
from brats_goat.model.postprocess import PostprocessConfig

if TYPE_CHECKING:
    from brats_goat.segmenter.config import PipelineConfig


class ThresholdLookup:
    """The calibrated thresholds for a case's modality subset; the segmenter supplies
    ``postprocess`` (the checkpoint's, or the intensity baseline's) and ``config``."""

    config: PipelineConfig

    @property
    def postprocess(self) -> PostprocessConfig:
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
