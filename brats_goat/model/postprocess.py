"""The calibrated post-processing: every setting between the healthy estimate and the
labels (restore, anomaly, threshold, labels).

It is one object because it is stored inside each checkpoint with the thresholds that
calibration measured *under* these settings; changing one without recalibrating would
make the thresholds stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PostprocessConfig:
    """Anomaly map -> binary components ("late fusion" of the paper)."""

    #: Signed residual (input - reconstruction) threshold per channel, in z units.
    #: Defaults are the paper's; a trained checkpoint stores its own, calibrated on
    #: held-out healthy slices (``brats_goat.calibration.thresholds``), never fitted on
    #: tumour labels.
    threshold_t1c: float = 1.2
    threshold_t2f: float = 1.5
    #: Calibrated (t1c, t2f) thresholds per modality subset (e.g. ``'t1c+t2f'``), used
    #: when a case lacks sequences; the fields above serve the full set.
    thresholds_by_subset: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Also require the per-slice Otsu threshold of the residual (paper).
    use_otsu: bool = True
    #: Radius of the 2D opening then closing applied per slice.
    morphology_radius: int = 1
    #: Erode the brain mask by this many voxels before thresholding: the skull-strip edge
    #: is where a blurry reconstruction leaves its largest residuals.
    brain_erosion: int = 3
    #: 3D components smaller than this are discarded before choosing the largest.
    min_component_voxels: int = 50
    #: Keep only the largest 3D connected component per channel (paper).
    keep_largest: bool = True
    #: Per modality subset (``'t1c+t1n+t2f+t2w'``, ``'t1c+t2f'``): (t1c, t2f) peak values of
    #: the opt-in component rule ``PipelineConfig.component_rule = 'largest+peaks'``: the
    #: largest component *plus* every other whose highest anomaly value exceeds the peak
    #: value, so several metastases can be found. Set label-free by calibration: the highest
    #: component peak on healthy data, so no healthy calibration component would survive.
    peak_thresholds_by_subset: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Per modality subset: the t1c (ET) channel keeps a component only if it has *more*
    #: voxels than this, the largest t1c component left on the healthy calibration data
    #: (so none of those would survive). Without it a small bright healthy structure
    #: becomes ET in every tumour that does not enhance. Empty (checkpoints calibrated
    #: before it existed) = no minimum.
    et_min_voxels_by_subset: dict[str, int] = field(default_factory=dict)
    #: Restoration passes before the residual (``brats_goat.stages.restore``): reconstruct again
    #: with the voxels the model could not explain replaced by its own estimate, so it
    #: cannot copy a tumour. 0 = the plain reconstruction (paper). Part of the calibrated
    #: post-processing because the thresholds depend on it.
    restore_iterations: int = 0
    #: A voxel is suspect when any channel's |input - reconstruction| exceeds this (z).
    restore_z: float = 1.0
    #: In-plane dilation of the suspect voxels (the copied halo of a lesion).
    restore_dilation: int = 2
    #: Residual maps taken against the restored estimate; the others use the plain
    #: reconstruction (restoration can help one sequence and hurt another).
    restore_maps: tuple[str, ...] = ("t1c", "t2f")
    #: Median filter size applied to the residual maps (0 = off).
    median_size: int = 3
    #: Late fusion of the learned and the intensity evidence (issue 15): the anomaly map is
    #: ``(1 - w) * (input - reconstruction) + w * input``, i.e. the residual against a
    #: reconstruction shrunk towards the healthy mean (0 z). 0 = the model's residual alone
    #: (paper); 1 = the z-scored image (the intensity baseline). A voxel scores high only
    #: where the image is bright *and* the model cannot explain it, in one map that is
    #: calibrated like any other.
    fusion_weight: float = 0.0
    #: An ET component is kept only where it touches the FLAIR component (tumour core
    #: sits inside the whole tumour); 0 disables the check.
    et_within_wt_dilation: int = 3

    def __post_init__(self) -> None:
        if unknown := set(self.restore_maps) - {"t1c", "t2f"}:
            raise ValueError(f"restore_maps may name t1c and t2f only, not {sorted(unknown)}")
        if self.restore_iterations < 0:
            raise ValueError("restore_iterations must be >= 0")
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError("fusion_weight must lie in [0, 1]")
