"""All tunable parameters in one typed place.

Every stage reads its parameters from these dataclasses, and a checkpoint stores the
``ModelConfig`` (and the post-processing used to validate it), so a result can always be
traced back to the exact numbers that produced it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: Channel order of the model input; the paper's order (t1c, t1n, t2f, t2w).
MODALITIES: tuple[str, ...] = ("t1c", "t1n", "t2f", "t2w")

#: BraTS labels written to the output.
LABEL_NETC, LABEL_SNFH, LABEL_ET = 1, 2, 3

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """MViT-AE architecture. Defaults are the paper's (patch 24 on 240x240, width 512...)."""

    image_size: int = 240
    in_channels: int = 4
    patch_size: int = 24
    width: int = 512
    depth: int = 6
    heads: int = 8
    mlp_dim: int = 1024
    bottleneck_dim: int = 512
    dropout: float = 0.0
    #: Code reshaped to (bottleneck_dim / seed_size**2) channels x seed_size x seed_size.
    seed_size: int = 8
    #: Channels of the transposed-convolution stages, from coarse to fine.
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    #: Add a learned embedding of which modalities are present to every token, so one
    #: model serves any subset of sequences (trained with modality dropout). Absent
    #: modalities enter as zero images. Off in checkpoints made before it existed.
    modality_mask: bool = False
    #: ``flat`` (paper): all tokens flattened into one ``bottleneck_dim`` code, decoded from
    #: a ``seed_size`` grid. ``tokens``: every patch token keeps its own ``token_dim`` code
    #: and the decoder starts from the token grid, so the code stays spatially aligned and
    #: the reconstruction sharper; meant to be trained as a denoiser (``noise_std``) so
    #: that it learns to replace anomalies rather than copy them.
    bottleneck: str = "flat"
    token_dim: int = 8

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")
        if self.bottleneck not in ("flat", "tokens"):
            raise ValueError(f"bottleneck must be 'flat' or 'tokens', not {self.bottleneck!r}")
        if self.bottleneck == "flat" and self.bottleneck_dim % (self.seed_size**2):
            raise ValueError("bottleneck_dim must be divisible by seed_size**2")
        if self.bottleneck == "tokens" and self.image_size % 2 ** len(self.decoder_channels):
            raise ValueError(
                "with a token bottleneck, image_size must be divisible by "
                "2 ** len(decoder_channels)"
            )

    @property
    def n_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class NormaliseConfig:
    """Per-volume z-score inside the brain, as in the paper, with the lesion left out of
    the statistics (``brats_goat.stages.normalise``)."""

    #: Intensities are clipped to this many standard deviations after z-scoring, so one
    #: hot voxel cannot dominate the reconstruction loss.
    clip_z: float = 5.0
    #: Statistics from the healthy part only: 3D clusters of FLAIR (else T2w) voxels above
    #: this z are left out of every channel's mean and std. A large tumour otherwise
    #: inflates the std and pulls its own z down (a quarter-brain phantom glioma: 1.9 z
    #: instead of 5.8). None = the paper's plain z-score.
    exclude_z: float | None = 2.0
    #: ...but only clusters of at least this fraction of the brain: healthy scans (where
    #: nothing this large is bright) keep exactly the plain z-score the model and the
    #: thresholds were calibrated with.
    exclude_min_fraction: float = 0.002
    #: Grow the left-out clusters by this many voxels (their rim is lesion too).
    exclude_dilation: int = 2
    #: Re-estimate -> re-detect rounds: each round's better statistics raise the lesion's
    #: z, so more of it is found and left out.
    exclude_passes: int = 3

    def __post_init__(self) -> None:
        if self.clip_z <= 0:
            raise ValueError("clip_z must be positive")
        if self.exclude_z is not None and self.exclude_z <= 0:
            raise ValueError("exclude_z must be positive (None turns the exclusion off)")
        if not 0 < self.exclude_min_fraction < 1:
            raise ValueError("exclude_min_fraction must be in (0, 1)")
        if self.exclude_dilation < 0 or self.exclude_passes < 1:
            raise ValueError("exclude_dilation must be >= 0 and exclude_passes >= 1")


@dataclass(frozen=True)
class PostprocessConfig:
    """Anomaly map -> binary components ("late fusion" of the paper)."""

    #: Signed residual (input - reconstruction) threshold per channel, in z units.
    #: Defaults are the paper's; a trained checkpoint stores its own, calibrated on
    #: held-out healthy slices (``brats_goat.training.calibrate``), never fitted on tumour labels.
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
    #: An ET component is kept only where it touches the FLAIR component (tumour core
    #: sits inside the whole tumour); 0 disables the check.
    et_within_wt_dilation: int = 3

    def __post_init__(self) -> None:
        if unknown := set(self.restore_maps) - {"t1c", "t2f"}:
            raise ValueError(f"restore_maps may name t1c and t2f only, not {sorted(unknown)}")
        if self.restore_iterations < 0:
            raise ValueError("restore_iterations must be >= 0")


@dataclass(frozen=True)
class InferenceConfig:
    """How the model is run."""

    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 16
    #: Mixed precision on GPU (bf16 autocast); CPU always runs float32 for determinism.
    amp: bool = True
    #: Only slices with at least this many brain voxels are reconstructed; others are 0.
    min_brain_voxels: int = 100


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (see ``brats_goat.training.augment`` for why each exists)."""

    flip_p: float = 0.5
    #: Probability that a batch gets the small affine / the intensity changes.
    affine_p: float = 0.5
    intensity_p: float = 0.8
    rotate_deg: float = 8.0
    zoom: float = 0.08
    #: Translation as a fraction of the half field of view (affine_grid units).
    translate: float = 0.04
    gamma: tuple[float, float] = (0.8, 1.25)
    scale: tuple[float, float] = (0.9, 1.1)
    shift: tuple[float, float] = (-0.1, 0.1)
    #: Per-modality drop probability on the samples chosen for dropout.
    modality_dropout: float = 0.0
    #: Fraction of samples that always keep all four modalities.
    keep_all_fraction: float = 0.5
    #: Coarse-noise denoising objective: std in z units (0 = off) and the noise grid size.
    noise_std: float = 0.0
    noise_resolution: int = 16

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (tests, ablations)."""
        return cls(flip_p=0.0, affine_p=0.0, intensity_p=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Trainer: MSE + 100 x (1 - SSIM) as in the paper; AdamW, warm-up then cosine decay."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    #: Linear warm-up over this fraction of all steps, then cosine decay to lr * min_lr_ratio.
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.05
    #: Write a resumable training state every this many optimiser steps (0 = per epoch only).
    checkpoint_every: int = 200
    #: bf16 autocast when training on a GPU.
    amp: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: Residual percentile on held-out healthy slices that becomes the threshold (the same
    #: rule that set the intensity baseline's thresholds, so neither side is tuned more).
    calibration_percentile: float = 99.9
    ssim_weight: float = 100.0
    ssim_window: int = 11
    ssim_sigma: float = 1.5
    seed: int = 0
    #: Slices within this many slices of the tumour (or rough mask) are not "healthy".
    healthy_margin: int = 5
    #: Slices with fewer brain voxels than this are skipped (top/bottom of the head).
    min_brain_voxels: int = 2000
    #: Fraction of healthy slices held out for a validation loss.
    val_fraction: float = 0.1
    #: Without a label map, slices whose FLAIR outlier fraction exceeds this are excluded.
    unlabelled_flair_z: float = 3.0
    unlabelled_max_fraction: float = 0.002


#: Refinement backends (``--refine``); "none" keeps the thresholded components as they are;
#: "auto" is $BRATS_GOAT_REFINE if set, else "sam" where an official checkpoint file exists,
#: else "litemedsam" where its package is installed, else "none".
REFINE_BACKENDS: tuple[str, ...] = ("auto", "none", "litemedsam", "sam")
SAM_MODELS: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")
#: ``PipelineConfig.component_rule`` choices (``--components``).
COMPONENT_RULES: tuple[str, ...] = ("largest", "largest+peaks")


@dataclass(frozen=True)
class RefineConfig:
    """SAM-family refinement between thresholding and label fusion (``brats_goat.stages.refine``).

    Per channel (t2f -> whole tumour, t1c -> enhancing part), every axial slice of the
    candidate mask gets a box prompt per 2D component on that channel's image; SAM's mask
    replaces the component only if it passes the accept rule below (paper: score > 0.9).
    Defaults chosen on calibration phantoms (seeds 700+, never benchmarked):
    ``experiments/refine_analysis.py``, docs/refinement.md.
    """

    #: On by default: it raised lesion-wise Dice WT on phantoms and real cases
    #: (results/benchmark-7aaba00.md, docs/refinement.md).
    backend: str = "auto"
    #: Official segment-anything only: architecture and checkpoint (``--sam-checkpoint``).
    sam_model: str = "vit_b"
    sam_checkpoint: str | None = None
    #: Channels refined, each on its own image. t2f only: on t1c, SAM fills the enhancing
    #: rim (necrosis becomes "ET") and lowered the slice Dice on every rule tried.
    channels: tuple[str, ...] = ("t2f",)
    #: Accept SAM's mask only if its predicted IoU is at least this (paper: 0.9) ...
    min_score: float = 0.9
    #: ... and its Dice with the anomaly component is at least this (guards against SAM
    #: segmenting a neighbouring structure that happens to fill the box).
    min_agreement: float = 0.5
    #: Positive points inside the component (paper: up to 5), placed deepest-first. 0: with
    #: points, LiteMedSAM (trained on boxes) scored lower and its masks were worse.
    points: int = 0
    #: Negative points inside the box, away from the component (0: hurt as well).
    negative_points: int = 0
    #: Pixels added around the component's bounding box (SAM-family models are trained
    #: on boxes a few pixels larger than the object).
    box_margin: int = 5
    #: 2D components smaller than this (pixels) are not prompted: too small for a 4-pixel
    #: mask decoder grid (256 px output) to add anything.
    min_area: int = 20
    #: At most this many slices per channel are refined, spread evenly over the candidate
    #: slices (0 = all). Bounds CPU time: one LiteMedSAM encoding costs ~4 s on 2 cores.
    max_slices: int = 8
    #: The same on a GPU, where an encoding costs milliseconds: every candidate slice.
    max_slices_gpu: int = 0
    #: Slices encoded per forward pass.
    batch_size: int = 4
    #: Per-volume intensity window (percentiles inside the brain) mapped to the model's
    #: [0, 1] input range, as MedSAM preprocesses MRI.
    window_percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.backend not in REFINE_BACKENDS:
            raise ValueError(f"refine backend must be one of {', '.join(REFINE_BACKENDS)}")
        if self.sam_model not in SAM_MODELS:
            raise ValueError(f"sam_model must be one of {', '.join(SAM_MODELS)}")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything `predict` needs besides the weights."""

    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    #: None = the post-processing stored in the checkpoint (its calibrated thresholds);
    #: set it to override (experiments).
    postprocess: PostprocessConfig | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    #: Thresholds of the training-free intensity baseline (``--method intensity``): z units
    #: of the image itself. From ``scripts/calibrate_intensity.py`` (99.9th percentile on
    #: healthy phantoms, the highest component peak left there for the component rule, and
    #: the largest t1c component left there as the ET minimum):
    #: label-free, never fitted on the cases we score. The map does not depend on which
    #: other sequences a case has, so every subset shares the same values. The t1c peak is
    #: the z clip (5.0): on t1c the baseline keeps the largest component only.
    intensity: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(
            threshold_t1c=3.45,
            threshold_t2f=1.70,
            peak_thresholds_by_subset={
                "t1c+t1n+t2f+t2w": (5.0, 2.56),
                "t1c+t2f": (5.0, 2.56),
            },
            et_min_voxels_by_subset={"t1c+t1n+t2f+t2w": 469, "t1c+t2f": 469},
        )
    )
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
    refine: RefineConfig = field(default_factory=RefineConfig)

    def __post_init__(self) -> None:
        if self.component_rule not in COMPONENT_RULES:
            raise ValueError(f"component_rule must be one of {', '.join(COMPONENT_RULES)}")


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict form for JSON and for storing inside checkpoints."""
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (possibly nested) config dataclass, ignoring unknown keys.

    Unknown keys are ignored so an older reader can open a newer checkpoint; tuples are
    restored because JSON and torch serialisation turn them into lists.
    """
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, value in data.items():
        if name not in fields:
            continue
        ftype = fields[name].type
        sub = _dataclass_for(ftype)
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _dataclass_for(ftype: Any) -> type | None:
    names = {
        "NormaliseConfig": NormaliseConfig,
        "PostprocessConfig": PostprocessConfig,
        "InferenceConfig": InferenceConfig,
        "ModelConfig": ModelConfig,
        "TrainConfig": TrainConfig,
        "AugmentConfig": AugmentConfig,
        "RefineConfig": RefineConfig,
    }
    key = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", "")
    key = key.removesuffix(" | None")
    return names.get(key)


#: Named architectures. ``paper`` is the published one (40.8M parameters, ~82 MB in fp16,
#: over the 60 MB a shipped file may weigh); ``small`` keeps its design at half the width.
MODEL_PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "small": ModelConfig(
        width=256, depth=4, heads=8, mlp_dim=512, decoder_channels=(128, 64, 32, 16, 16)
    ),
    # Same encoder as ``small``; an 8-d code per 24-px token (800 numbers per slice instead
    # of 512, but each tied to its place) and a 4-stage decoder from a 15x15 grid.
    "small-tokens": ModelConfig(
        width=256,
        depth=4,
        heads=8,
        mlp_dim=512,
        bottleneck="tokens",
        token_dim=8,
        decoder_channels=(128, 64, 32, 16),
    ),
    "tiny": ModelConfig(
        image_size=48,
        patch_size=8,
        width=32,
        depth=1,
        heads=2,
        mlp_dim=64,
        bottleneck_dim=64,
        seed_size=4,
        decoder_channels=(16, 8, 8, 8),
    ),
}
