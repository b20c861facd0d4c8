"""The trainer's settings (the loop, healthy-slice selection and the calibration that
follows training), with the augmentation they nest."""

from __future__ import annotations

from dataclasses import dataclass, field

from brats_goat.training.augment import AugmentConfig


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
    #: Known non-tumour lesions (``<ID>-lesion`` masks) are left out of the loss, grown by
    #: this many voxels in every direction (a cube): partial volume, masks blocky along z,
    #: and the radius of the SSIM window, so the loss of the voxels kept never sees a lesion.
    lesion_margin: int = 5
    #: Slices with fewer brain voxels than this are skipped (top/bottom of the head).
    min_brain_voxels: int = 2000
    #: Fraction of healthy slices held out for a validation loss.
    val_fraction: float = 0.1
    #: Without a label map, slices whose FLAIR outlier fraction exceeds this are excluded.
    unlabelled_flair_z: float = 3.0
    unlabelled_max_fraction: float = 0.002
