"""What training sees when: the train/validation split, the learning-rate schedule, and
the seeds of each epoch's slice order and each step's augmentation.

Determinism: the slice order of epoch ``e`` and the augmentation of step ``s`` are drawn
from generators seeded by (seed, e) and (seed, s), so a resumed run sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from brats_goat.training.config import TrainConfig


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
