"""Resumable training state and the best-validation checkpoint.

``<out>.state.pt`` holds everything a resumed run needs to continue at the step it
recorded (weights, optimiser, scheduler, history, best validation loss so far);
``<out>`` itself is only ever the best-validation model.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from brats_goat.model.checkpoint import load_checkpoint, save_checkpoint
from brats_goat.model.network import MViTAE
from brats_goat.model.postprocess import PostprocessConfig


@dataclass
class TrainState:
    """What changes from step to step and survives a restart; the pieces of the loop share
    it instead of a long list of locals. ``started`` is the only field not saved."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float = float("inf")
    sha: str = ""
    best_info: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0

    def start_clock(self) -> None:
        """A resumed run's ``elapsed_s`` continues from the last recorded epoch."""
        self.started = time.time() - (self.history[-1]["elapsed_s"] if self.history else 0.0)


def state_path(out_path: Path) -> Path:
    """The resumable training state that sits next to the checkpoint."""
    return out_path.with_name(out_path.stem + ".state.pt")


def save_state(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def save_training_state(
    path: Path,
    state: TrainState,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Write the resumable state (callers write it from rank 0 only)."""
    save_state(
        path,
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": state.step,
            "history": state.history,
            "best_val": state.best,
            "sha256": state.sha,
            "best_info": state.best_info,
        },
    )


def load_training_state(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> TrainState:
    """``--resume``: restore model, optimiser and scheduler in place; return the state."""
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training state {path} to continue from")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    return TrainState(
        step=saved["step"],
        history=saved["history"],
        best=saved["best_val"],
        sha=saved.get("sha256", ""),
        best_info=saved.get("best_info", {}),
    )


def record_best(
    state: TrainState,
    val: float,
    epoch: int,
    model: MViTAE,
    out_path: Path,
    post: PostprocessConfig,
    *,
    write: bool,
) -> None:
    """A new best validation loss: remember it and (``write``: rank 0) save the model."""
    state.best = val
    state.best_info = {
        "best_epoch": epoch + 1,
        "best_step": state.step,
        "best_val_loss": round(val, 5),
    }
    if write:
        state.sha = save_checkpoint(out_path, model, postprocess=post, info=state.best_info)


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
