"""Train the MViT-AE on healthy slices.

MSE + SSIM loss (paper), AdamW with linear warm-up and cosine decay, augmentation and
modality dropout (``brats_goat.training.augment``), bf16 autocast on GPU, a resumable training state
every N steps, a validation loss on held-out healthy slices, label-free thresholds
calibrated on those same held-out slices, and data parallel training under ``torchrun``
(DistributedDataParallel; NCCL on GPUs, gloo on CPUs).

Determinism: the slice order of epoch ``e`` and the augmentation of step ``s`` are drawn
from generators seeded by (seed, e) and (seed, s), so a resumed run sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from brats_goat.device import pick_device
from brats_goat.io.discover import Case
from brats_goat.model.checkpoint import load_checkpoint, save_checkpoint
from brats_goat.model.network import ModelConfig, MViTAE, count_parameters
from brats_goat.serialise import to_dict
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.training.augment import augment_batch
from brats_goat.training.calibrate import calibrate_thresholds
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import HealthySlices, collect_healthy_slices
from brats_goat.training.losses import ReconstructionLoss


@dataclass
class TrainResult:
    checkpoint: Path
    sha256: str
    history: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size())


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of ``n`` slices (at least one of each if n > 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` (multiplies the base lr)."""
    warmup = max(1, round(total * cfg.warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 7)


def evaluate_loss(
    model: torch.nn.Module,
    data: torch.Tensor,
    loss_fn: ReconstructionLoss,
    batch: int,
    device: torch.device,
) -> float:
    """Mean loss over ``data`` with all modalities present and no augmentation."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch):
            x = data[start : start + batch].float().to(device)
            total += float(loss_fn(model(x), x)) * len(x)
            count += len(x)
    return total / max(count, 1)


def state_path(out_path: Path) -> Path:
    """The resumable training state that sits next to the checkpoint."""
    return out_path.with_name(out_path.stem + ".state.pt")


def save_state(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def init_from(model: MViTAE, checkpoint: Path) -> None:
    """Start from a trained checkpoint (fine-tuning); new layers keep their own init."""
    source, _ = load_checkpoint(checkpoint, expected_sha256=None)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    allowed = {"modality_embed.weight"}
    if set(missing) - allowed or unexpected:
        raise ValueError(
            f"{checkpoint} does not fit this architecture (missing {missing}, "
            f"unexpected {unexpected})"
        )


def train_on_slices(
    healthy: HealthySlices,
    out_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    device: str = "auto",
    norm_cfg: NormaliseConfig | None = None,
    provenance: dict[str, Any] | None = None,
    quiet: bool = False,
    resume: bool = False,
    init: Path | None = None,
    postprocess: PostprocessConfig | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train from already collected slices; keeps the best-validation checkpoint.

    With ``resume``, continues from ``<out>.state.pt`` (written every
    ``checkpoint_every`` steps and after every epoch) at the step it recorded.
    ``stop_after`` ends this run after that many steps with a resumable state (time-boxed
    or preemptible jobs); the result then has ``info["finished"] = False``.
    """
    norm_cfg = norm_cfg or NormaliseConfig()
    post = postprocess or PostprocessConfig()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    ctx = init_distributed(dev)
    if dev.type == "cuda" and ctx.world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    torch.manual_seed(train_cfg.seed)
    model = MViTAE(model_cfg)
    if init is not None and not resume:
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
    data = torch.from_numpy(healthy.slices)
    train_idx, val_idx = split_indices(len(data), train_cfg.val_fraction, train_cfg.seed)
    train_data, val_data = data[train_idx], data[val_idx]
    if train_cfg.batch_size % ctx.world:
        raise ValueError(
            f"batch size {train_cfg.batch_size} is not divisible by {ctx.world} processes"
        )
    steps_per_epoch = max(1, len(train_data) // train_cfg.batch_size)
    total_steps = train_cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, train_cfg))

    step, history, best, sha, best_info = 0, [], float("inf"), "", {}
    spath = state_path(out_path)
    if resume:
        if not spath.is_file():
            raise FileNotFoundError(f"--resume: no training state {spath} to continue from")
        state = torch.load(spath, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, history, best = state["step"], state["history"], state["best_val"]
        sha, best_info = state.get("sha256", ""), state.get("best_info", {})
    ddp: torch.nn.Module = model
    if ctx.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    use_amp = train_cfg.amp and dev.type == "cuda"
    per_rank = train_cfg.batch_size // ctx.world
    started = time.time() - (history[-1]["elapsed_s"] if history else 0.0)

    def snapshot() -> None:
        if ctx.main:
            save_state(
                spath,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "step": step,
                    "history": history,
                    "best_val": best,
                    "sha256": sha,
                    "best_info": best_info,
                },
            )

    bar = tqdm(
        total=total_steps, initial=step, disable=quiet or not ctx.main, file=sys.stderr,
        desc="train",
    )  # fmt: skip
    running, seen = 0.0, 0
    last_step = total_steps if stop_after is None else min(total_steps, step + stop_after)
    while step < last_step:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = epoch_order(len(train_data), train_cfg.seed, epoch)
        model.train()
        batch_idx = order[in_epoch * train_cfg.batch_size : (in_epoch + 1) * train_cfg.batch_size]
        mine = batch_idx[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]
        gen = step_generator(train_cfg.seed, step)
        x_in, target, present = augment_batch(train_data[mine].float(), train_cfg.augment, gen)
        x_in, target, present = x_in.to(dev), target.to(dev), present.to(dev)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
            recon = ddp(x_in, present)
        loss = loss_fn(recon, target, present)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        loss_value = float(loss.detach())
        running += loss_value * len(mine)
        seen += len(mine)
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
        end_of_epoch = step % steps_per_epoch == 0
        if end_of_epoch:
            val = evaluate_loss(model, val_data, loss_fn, train_cfg.batch_size, dev)
            row = {
                "epoch": epoch + 1,
                "step": step,
                "lr": round(sched.get_last_lr()[0], 8),
                "train_loss": round(running / max(seen, 1), 5),
                "val_loss": round(val, 5),
                "elapsed_s": round(time.time() - started, 1),
            }
            running, seen = 0.0, 0
            history.append(row)
            if not quiet and ctx.main:
                tqdm.write(json.dumps(row), file=sys.stderr)
            if val < best:
                best = val
                best_info = {
                    "best_epoch": epoch + 1,
                    "best_step": step,
                    "best_val_loss": round(val, 5),
                }
                if ctx.main:
                    sha = save_checkpoint(out_path, model, postprocess=post, info=best_info)
        periodic = train_cfg.checkpoint_every and step % train_cfg.checkpoint_every == 0
        if end_of_epoch or periodic or step == last_step:
            snapshot()
    bar.close()
    finished = step >= total_steps
    info: dict[str, Any] = {
        **(provenance or {}),
        "train_config": to_dict(train_cfg),
        "normalise": to_dict(norm_cfg),
        "parameters": count_parameters(model),
        "device": str(dev),
        "processes": ctx.world,
        "steps": step,
        "total_steps": total_steps,
        "finished": finished,
        "n_train_slices": len(train_data),
        "n_val_slices": len(val_data),
        "tumour_source": healthy.source,
        **best_info,
        "history": history,
        "wall_time_s": round(time.time() - started, 1),
    }
    if init is not None:
        info["initialised_from"] = str(init)
    if finished and ctx.main and out_path.is_file():
        best_model, _ = load_checkpoint(out_path, expected_sha256=None)
        post, calibration = calibrate_thresholds(
            best_model,
            val_data.numpy(),
            post,
            train_cfg.calibration_percentile,
            InferenceConfig(batch_size=train_cfg.batch_size),
            dev,
        )
        info["calibration"] = calibration
        slim = {k: v for k, v in info.items() if k != "history"}
        sha = save_checkpoint(out_path, best_model, postprocess=post, info=slim)
    if ctx.world > 1:
        dist.barrier()
    return TrainResult(out_path, sha, history, info)


def train(
    cases: Sequence[Case],
    out_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    healthy_cases: Sequence[Case] = (),
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
    quiet: bool = False,
    resume: bool = False,
    init: Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Collect healthy slices from ``cases`` (tumour slices excluded) and from
    ``healthy_cases`` (every slice used, e.g. ``brats-goat synth --healthy``), then train."""
    norm_cfg = NormaliseConfig()
    healthy = collect_healthy_slices(
        list(cases), train_cfg, norm_cfg, image_size=model_cfg.image_size,
        all_healthy=list(healthy_cases),
    )  # fmt: skip
    if not quiet:
        per_case: dict[str, int] = {}
        for cid, _ in healthy.origin:
            per_case[cid] = per_case.get(cid, 0) + 1
        tqdm.write(f"healthy slices: {len(healthy.origin)} from {per_case}", file=sys.stderr)
    prov = {**(provenance or {}), "cases": sorted({cid for cid, _ in healthy.origin})}
    return train_on_slices(
        healthy,
        out_path,
        model_cfg,
        train_cfg,
        device=device,
        norm_cfg=norm_cfg,
        provenance=prov,
        quiet=quiet,
        resume=resume,
        init=init,
        stop_after=stop_after,
    )


def save_history(result: TrainResult, path: str | Path) -> Path:
    """Loss curve as JSON (and PNG when matplotlib is installed)."""
    path = Path(path)
    path.write_text(json.dumps(result.info, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return path
    epochs = [h["epoch"] for h in result.history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(epochs, [h["train_loss"] for h in result.history], label="train (augmented)")
    ax.plot(epochs, [h["val_loss"] for h in result.history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE + 100 (1 - SSIM)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=100)
    plt.close(fig)
    return path
