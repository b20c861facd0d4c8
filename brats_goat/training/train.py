"""Train the MViT-AE on healthy slices.

MSE + SSIM loss (paper), AdamW with linear warm-up and cosine decay, augmentation and
modality dropout (``brats_goat.training.augment``), bf16 autocast on GPU, a resumable training state
every N steps, a validation loss on held-out healthy slices, label-free thresholds
calibrated on those same held-out slices, and data parallel training under ``torchrun``
(DistributedDataParallel; NCCL on GPUs, gloo on CPUs).

Determinism: the slice order of epoch ``e`` and the augmentation of step ``s`` are drawn
from generators seeded by (seed, e) and (seed, s), so a resumed run sees exactly the
batches the uninterrupted run would have seen.

The pieces: ``session`` (set-up), ``loop`` (steps and epochs), ``checkpointing`` (resumable
state and best checkpoint), ``schedule`` (split, learning rate, seeds) and ``distributed``;
this module runs them in order and then calibrates the thresholds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from brats_goat.calibration.thresholds import calibrate_thresholds
from brats_goat.io.discover import Case
from brats_goat.model.checkpoint import load_checkpoint, save_checkpoint
from brats_goat.model.network import ModelConfig, count_parameters
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.serialise import to_dict
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.training.checkpointing import TrainState, init_from, save_state, state_path
from brats_goat.training.config import TrainConfig
from brats_goat.training.distributed import DistContext, barrier, init_distributed
from brats_goat.training.healthy import HealthySlices, collect_healthy_slices
from brats_goat.training.loop import evaluate_loss, run_steps
from brats_goat.training.schedule import epoch_order, lr_factor, split_indices, step_generator
from brats_goat.training.session import TrainSession, build_session

# Helpers that moved to the modules above keep being importable from here.
__all__ = [
    "DistContext",
    "TrainResult",
    "epoch_order",
    "evaluate_loss",
    "init_distributed",
    "init_from",
    "lr_factor",
    "save_history",
    "save_state",
    "split_indices",
    "state_path",
    "step_generator",
    "train",
    "train_on_slices",
]


@dataclass
class TrainResult:
    checkpoint: Path
    sha256: str
    history: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


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
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    session, state = build_session(
        healthy, out_path, model_cfg, train_cfg, norm_cfg, postprocess or PostprocessConfig(),
        device=device, quiet=quiet, resume=resume, init=init,
    )  # fmt: skip
    state.start_clock()
    total = session.total_steps
    run_steps(session, state, total if stop_after is None else min(total, state.step + stop_after))
    info = run_info(session, state, healthy, norm_cfg, provenance, init)
    sha = state.sha
    if info["finished"] and session.ctx.main and out_path.is_file():
        sha = calibrate_best(session, info)
    barrier(session.ctx)
    return TrainResult(out_path, sha, state.history, info)


def run_info(
    s: TrainSession,
    state: TrainState,
    healthy: HealthySlices,
    norm_cfg: NormaliseConfig,
    provenance: dict[str, Any] | None,
    init: Path | None,
) -> dict[str, Any]:
    """The run summary returned in ``TrainResult.info`` (and, without the history, stored
    in the calibrated checkpoint)."""
    info: dict[str, Any] = {
        **(provenance or {}),
        "train_config": to_dict(s.cfg),
        "normalise": to_dict(norm_cfg),
        "parameters": count_parameters(s.model),
        "device": str(s.dev),
        "processes": s.ctx.world,
        "steps": state.step,
        "total_steps": s.total_steps,
        "finished": state.step >= s.total_steps,
        "n_train_slices": len(s.train_data),
        "n_val_slices": len(s.val_data),
        "tumour_source": healthy.source,
        **state.best_info,
        "history": state.history,
        "wall_time_s": round(time.time() - state.started, 1),
    }
    if init is not None:
        info["initialised_from"] = str(init)
    return info


def calibrate_best(s: TrainSession, info: dict[str, Any]) -> str:
    """Label-free thresholds from the best model's residuals on the held-out healthy
    slices that have every modality and no lesion; rewrites the best checkpoint with them
    and returns its sha256."""
    best_model, _ = load_checkpoint(s.out_path, expected_sha256=None)
    post, calibration = calibrate_thresholds(
        best_model,
        s.val_data.for_calibration(),
        s.post,
        s.cfg.calibration_percentile,
        InferenceConfig(batch_size=s.cfg.batch_size),
        s.dev,
    )
    info["calibration"] = calibration
    slim = {k: v for k, v in info.items() if k != "history"}
    return save_checkpoint(s.out_path, best_model, postprocess=post, info=slim)


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
