"""Training set-up: device and process group, model, loss, optimiser, schedule, data split
and (``--resume``) the saved state, built in one fixed order so that the global RNG
(seeded just before the model is built) is consumed exactly as in every other run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brats_goat.device import pick_device
from brats_goat.model.network import ModelConfig, MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.training.checkpointing import (
    TrainState,
    init_from,
    load_training_state,
    state_path,
)
from brats_goat.training.config import TrainConfig
from brats_goat.training.distributed import DistContext, init_distributed, local_device, wrap_ddp
from brats_goat.training.healthy import HealthySlices, calibration_rows
from brats_goat.training.losses import ReconstructionLoss
from brats_goat.training.schedule import lr_factor, split_indices


@dataclass
class SliceSet:
    """Training or validation slices as tensors, with what each one really has."""

    #: (N, C, X, Y) float16 normalised slices (absent modalities are zero images).
    images: torch.Tensor
    #: (N, C) float 1/0: the modalities each slice's case has.
    present: torch.Tensor
    #: (N, 1, X, Y) bool voxels left out of the loss, or None when there are none.
    ignore: torch.Tensor | None

    @classmethod
    def of(cls, healthy: HealthySlices, rows: np.ndarray) -> SliceSet:
        """The slices ``rows`` of ``healthy``."""
        ignore = None if healthy.ignore is None else torch.from_numpy(healthy.ignore[rows, None])
        return cls(
            torch.from_numpy(healthy.slices[rows]),
            torch.from_numpy(healthy.present[rows]).float(),
            ignore,
        )

    def __len__(self) -> int:
        return len(self.images)

    def batch(
        self, rows: torch.Tensor | slice
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(float32 images, presence, ignored voxels) of ``rows``."""
        ignore = None if self.ignore is None else self.ignore[rows]
        return self.images[rows].float(), self.present[rows], ignore

    def for_calibration(self) -> np.ndarray:
        """Slices with every modality and no ignored voxel (what calibration may use)."""
        ignore = None if self.ignore is None else self.ignore.numpy()
        rows = calibration_rows(self.present.numpy() > 0, ignore)
        return self.images.numpy()[rows]


@dataclass
class TrainSession:
    """Everything set-up builds once and the loop only reads: one object to pass around
    instead of a dozen locals (the optimiser and scheduler still change in place)."""

    cfg: TrainConfig
    model: MViTAE
    ddp: torch.nn.Module  # what the forward pass goes through (``model`` unless DDP)
    loss_fn: ReconstructionLoss
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    train_data: SliceSet
    val_data: SliceSet
    dev: torch.device
    ctx: DistContext
    steps_per_epoch: int
    total_steps: int
    out_path: Path
    post: PostprocessConfig
    quiet: bool

    @property
    def per_rank(self) -> int:
        """Each process takes its own slice of every batch."""
        return self.cfg.batch_size // self.ctx.world

    @property
    def use_amp(self) -> bool:
        return self.cfg.amp and self.dev.type == "cuda"

    @property
    def state_file(self) -> Path:
        """``<out>.state.pt``, next to the checkpoint."""
        return state_path(self.out_path)


def build_model(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    norm_cfg: NormaliseConfig,
    dev: torch.device,
    init: Path | None,
) -> tuple[MViTAE, ReconstructionLoss, torch.optim.AdamW]:
    """Seeded model (optionally from ``init``), loss and optimiser on ``dev``."""
    torch.manual_seed(train_cfg.seed)
    model = MViTAE(model_cfg)
    if init is not None:
        init_from(model, init)
    model = model.to(dev)
    loss_fn = ReconstructionLoss(
        model_cfg.in_channels,
        train_cfg.ssim_window,
        train_cfg.ssim_sigma,
        train_cfg.ssim_weight,
        data_range=2 * norm_cfg.clip_z,
    ).to(dev)
    opt = torch.optim.AdamW(
        model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
    )
    return model, loss_fn, opt


def split_data(
    healthy: HealthySlices, train_cfg: TrainConfig, ctx: DistContext
) -> tuple[SliceSet, SliceSet]:
    """Training and held-out validation slices; every process must get an equal share, and
    calibration needs held-out slices with every modality and no lesion."""
    train_idx, val_idx = split_indices(len(healthy.slices), train_cfg.val_fraction, train_cfg.seed)
    train_data, val_data = SliceSet.of(healthy, train_idx), SliceSet.of(healthy, val_idx)
    if train_cfg.batch_size % ctx.world:
        raise ValueError(
            f"batch size {train_cfg.batch_size} is not divisible by {ctx.world} processes"
        )
    if len(val_data) and not len(val_data.for_calibration()):
        raise ValueError(
            "no held-out slice has all four modalities and no lesion voxel, so the thresholds "
            "cannot be calibrated: add complete healthy cases (e.g. --healthy phantoms)"
        )
    return train_data, val_data


def build_session(
    healthy: HealthySlices,
    out_path: Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    norm_cfg: NormaliseConfig,
    post: PostprocessConfig,
    *,
    device: str,
    quiet: bool,
    resume: bool,
    init: Path | None,
) -> tuple[TrainSession, TrainState]:
    """Set up a run; with ``resume``, restore the state saved next to ``out_path``
    (``init`` is then ignored: the saved weights win)."""
    dev = pick_device(device)
    ctx = init_distributed(dev)
    dev = local_device(dev, ctx)
    model, loss_fn, opt = build_model(model_cfg, train_cfg, norm_cfg, dev, None if resume else init)
    train_data, val_data = split_data(healthy, train_cfg, ctx)
    steps_per_epoch = max(1, len(train_data) // train_cfg.batch_size)
    total_steps = train_cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, train_cfg))
    spath = state_path(out_path)
    state = load_training_state(spath, model, opt, sched) if resume else TrainState()
    session = TrainSession(
        cfg=train_cfg,
        model=model,
        ddp=wrap_ddp(model, ctx, dev),
        loss_fn=loss_fn,
        opt=opt,
        sched=sched,
        train_data=train_data,
        val_data=val_data,
        dev=dev,
        ctx=ctx,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        out_path=out_path,
        post=post,
        quiet=quiet,
    )
    return session, state
