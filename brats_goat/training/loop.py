"""The training loop: one optimiser step per batch, a validation loss and (when it improves)
the best checkpoint at the end of every epoch, and the resumable state every
``checkpoint_every`` steps, after every epoch and when the run stops."""

from __future__ import annotations

import json
import sys
import time

import torch
from tqdm import tqdm

from brats_goat.training.augment import augment_batch
from brats_goat.training.checkpointing import TrainState, record_best, save_training_state
from brats_goat.training.losses import ReconstructionLoss
from brats_goat.training.schedule import epoch_order, step_generator
from brats_goat.training.session import SliceSet, TrainSession


def evaluate_loss(
    model: torch.nn.Module,
    data: SliceSet,
    loss_fn: ReconstructionLoss,
    batch: int,
    device: torch.device,
) -> float:
    """Mean loss over ``data`` without augmentation, with every modality the data has (the
    model is told which; absent ones and ignored voxels do not count)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch):
            x, present, ignore = data.batch(slice(start, start + batch))
            x = x.to(device)
            shown = None if bool(present.all()) else present.to(device)
            ignore = None if ignore is None else ignore.to(device)
            total += float(loss_fn(model(x, shown), x, shown, ignore)) * len(x)
            count += len(x)
    return total / max(count, 1)


def train_step(s: TrainSession, step: int) -> tuple[float, int]:
    """One optimiser step on this process's share of batch ``step``; returns
    (loss, slices seen). Batch and augmentation depend only on (seed, step)."""
    epoch, in_epoch = divmod(step, s.steps_per_epoch)
    order = epoch_order(len(s.train_data), s.cfg.seed, epoch)
    s.model.train()
    batch_idx = order[in_epoch * s.cfg.batch_size : (in_epoch + 1) * s.cfg.batch_size]
    mine = batch_idx[s.ctx.rank * s.per_rank : (s.ctx.rank + 1) * s.per_rank]
    gen = step_generator(s.cfg.seed, step)
    x, available, ignore = s.train_data.batch(mine)
    aug = augment_batch(x, s.cfg.augment, gen, available, ignore)
    x_in, target, present = aug.input.to(s.dev), aug.target.to(s.dev), aug.present.to(s.dev)
    ignore = None if aug.ignore is None else aug.ignore.to(s.dev)
    with torch.autocast(device_type=s.dev.type, dtype=torch.bfloat16, enabled=s.use_amp):
        recon = s.ddp(x_in, present)
    loss = s.loss_fn(recon, target, present, ignore)
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    s.sched.step()
    return float(loss.detach()), len(mine)


def end_epoch(s: TrainSession, state: TrainState, epoch: int, train_loss: float) -> None:
    """Validation loss into the history (printed unless quiet); keep the best model."""
    val = evaluate_loss(s.model, s.val_data, s.loss_fn, s.cfg.batch_size, s.dev)
    row = {
        "epoch": epoch + 1,
        "step": state.step,
        "lr": round(float(s.sched.get_last_lr()[0]), 8),
        "train_loss": round(train_loss, 5),
        "val_loss": round(val, 5),
        "elapsed_s": round(time.time() - state.started, 1),
    }
    state.history.append(row)
    if not s.quiet and s.ctx.main:
        tqdm.write(json.dumps(row), file=sys.stderr)
    if val < state.best:
        record_best(state, val, epoch, s.model, s.out_path, s.post, write=s.ctx.main)


def run_steps(s: TrainSession, state: TrainState, last_step: int) -> None:
    """Train from ``state.step`` up to ``last_step``, with a progress bar on rank 0.

    The mean training loss of an epoch covers the steps of this run only (a run resumed
    mid-epoch starts counting afresh)."""
    bar = tqdm(
        total=s.total_steps, initial=state.step, disable=s.quiet or not s.ctx.main,
        file=sys.stderr, desc="train",
    )  # fmt: skip
    running, seen = 0.0, 0
    while state.step < last_step:
        epoch = state.step // s.steps_per_epoch
        loss_value, n = train_step(s, state.step)
        state.step += 1
        running += loss_value * n
        seen += n
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
        end_of_epoch = state.step % s.steps_per_epoch == 0
        if end_of_epoch:
            end_epoch(s, state, epoch, running / max(seen, 1))
            running, seen = 0.0, 0
        periodic = s.cfg.checkpoint_every and state.step % s.cfg.checkpoint_every == 0
        if (end_of_epoch or periodic or state.step == last_step) and s.ctx.main:
            save_training_state(s.state_file, state, s.model, s.opt, s.sched)
    bar.close()
