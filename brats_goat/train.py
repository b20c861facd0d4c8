"""Train the MViT-AE on healthy slices (MSE + SSIM, Adam), with a validation split."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .config import ModelConfig, NormaliseConfig, PostprocessConfig, TrainConfig, to_dict
from .discover import Case
from .healthy import HealthySlices, collect_healthy_slices
from .losses import ReconstructionLoss
from .model import MViTAE, count_parameters
from .reconstruct import pick_device
from .weights import save_checkpoint


@dataclass
class TrainResult:
    checkpoint: Path
    sha256: str
    history: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of ``n`` slices (at least one of each if n > 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random left-right flips: brains are roughly symmetric, tumours are not side-bound."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    if flip.any():
        batch = batch.clone()
        batch[flip] = batch[flip].flip(dims=(2,))
    return batch


def evaluate_loss(
    model: MViTAE, data: torch.Tensor, loss_fn: ReconstructionLoss, batch: int, device: torch.device
) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch):
            x = data[start : start + batch].float().to(device)
            total += float(loss_fn(model(x), x)) * len(x)
            count += len(x)
    return total / max(count, 1)


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
) -> TrainResult:
    """Train from already collected slices; saves the best-validation checkpoint."""
    norm_cfg = norm_cfg or NormaliseConfig()
    torch.manual_seed(train_cfg.seed)
    generator = torch.Generator().manual_seed(train_cfg.seed)
    dev = pick_device(device)
    model = MViTAE(model_cfg).to(dev)
    loss_fn = ReconstructionLoss(
        model_cfg.in_channels,
        train_cfg.ssim_window,
        train_cfg.ssim_sigma,
        train_cfg.ssim_weight,
        data_range=2 * norm_cfg.clip_z,
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    data = torch.from_numpy(healthy.slices)
    train_idx, val_idx = split_indices(len(data), train_cfg.val_fraction, train_cfg.seed)
    train_data, val_data = data[train_idx], data[val_idx]
    out_path = Path(out_path)
    history: list[dict[str, float]] = []
    best = float("inf")
    sha = ""
    started = time.time()
    info: dict[str, Any] = {}
    steps_per_epoch = max(1, -(-len(train_data) // train_cfg.batch_size))
    bar = tqdm(
        total=train_cfg.epochs * steps_per_epoch, disable=quiet, file=sys.stderr, desc="train"
    )
    for epoch in range(1, train_cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(train_data), generator=generator)
        running, seen = 0.0, 0
        for start in range(0, len(order), train_cfg.batch_size):
            idx = order[start : start + train_cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one sample
                continue
            x = augment(train_data[idx].float(), generator).to(dev)
            loss = loss_fn(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss = loss.detach()
            running += loss.item() * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        val = evaluate_loss(model, val_data, loss_fn, train_cfg.batch_size, dev)
        row = {
            "epoch": epoch,
            "train_loss": round(running / max(seen, 1), 5),
            "val_loss": round(val, 5),
            "elapsed_s": round(time.time() - started, 1),
        }
        history.append(row)
        if not quiet:
            tqdm.write(json.dumps(row), file=sys.stderr)
        if val < best:
            best = val
            info = {
                **(provenance or {}),
                "train_config": to_dict(train_cfg),
                "normalise": to_dict(norm_cfg),
                "parameters": count_parameters(model),
                "device": str(dev),
                "best_epoch": epoch,
                "best_val_loss": round(val, 5),
                "n_train_slices": len(train_data),
                "n_val_slices": len(val_data),
                "tumour_source": healthy.source,
            }
            sha = save_checkpoint(out_path, model, postprocess=PostprocessConfig(), info=info)
    bar.close()
    info["history"] = history
    info["wall_time_s"] = round(time.time() - started, 1)
    return TrainResult(out_path, sha, history, info)


def train(
    cases: Sequence[Case],
    out_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Collect healthy slices from ``cases`` and train on them."""
    norm_cfg = NormaliseConfig()
    healthy = collect_healthy_slices(
        list(cases), train_cfg, norm_cfg, image_size=model_cfg.image_size
    )
    if not quiet:
        per_case: dict[str, int] = {}
        for cid, _ in healthy.origin:
            per_case[cid] = per_case.get(cid, 0) + 1
        tqdm.write(f"healthy slices per case: {per_case}", file=sys.stderr)
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
    ax.plot(epochs, [h["train_loss"] for h in result.history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in result.history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE + 100 (1 - SSIM)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=100)
    plt.close(fig)
    return path
