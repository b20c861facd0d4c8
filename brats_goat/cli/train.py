"""``brats-goat train``: train the MViT-AE with ``brats_goat.training.train``.

Provenance and manifest registration live in ``brats_goat.model.manifest``; this module only
turns options into configs and reports the result. Exit 2 on a usage error.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brats_goat.cli.options import (
    batch_size_option,
    checkpoint_output_option,
    data_argument,
    device_option,
    quiet_option,
    register_option,
)
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseError
from brats_goat.model.manifest import WeightsError, provenance_record, register_trained
from brats_goat.model.network import MODEL_PRESETS, ModelConfig
from brats_goat.training.augment import AugmentConfig
from brats_goat.training.config import TrainConfig

if TYPE_CHECKING:
    from brats_goat.training.train import TrainResult


def train_configs(
    arch: str,
    modality_dropout: float,
    noise_std: float,
    no_augment: bool,
    **train_options: Any,
) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs; a model trained with modality dropout learns to be masked."""
    augment = AugmentConfig.none() if no_augment else AugmentConfig()
    augment = dataclasses.replace(augment, modality_dropout=modality_dropout, noise_std=noise_std)
    cfg = TrainConfig(augment=augment, **train_options)
    model_cfg = dataclasses.replace(MODEL_PRESETS[arch], modality_mask=modality_dropout > 0)
    return model_cfg, cfg


def finish(result: TrainResult, output: Path, register: bool) -> None:
    """Write the history; register and report a finished run, or say how to resume one."""
    from brats_goat.training.train import save_history

    history_path = save_history(result, output.with_suffix(".train.json"))
    if not result.info.get("finished", True):
        click.echo(
            f"stopped at step {result.info['steps']} of {result.info['total_steps']}; "
            "continue with the same command plus --resume"
        )
        return
    if register:
        register_trained(output, result.sha256, result.info)
    click.echo(f"checkpoint: {output} sha256 {result.sha256}")
    click.echo(f"thresholds: {result.info.get('calibration', {}).get('thresholds')}")
    click.echo(f"history: {history_path}")


@click.command("train")
@data_argument()
@checkpoint_output_option("Checkpoint to write (e.g. weights/mvitae-small-v2.pt).")
@click.option(
    "--healthy",
    "healthy_dirs",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Folder of known-healthy cases (e.g. from `synth --healthy`): every slice is used.",
)
@click.option(
    "--arch",
    type=click.Choice(sorted(MODEL_PRESETS)),
    default="small",
    show_default=True,
    help="Architecture preset (paper = published size).",
)
@click.option("--epochs", type=click.IntRange(1), default=TrainConfig.epochs, show_default=True)
@batch_size_option(2, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@device_option()
@click.option(
    "--modality-dropout",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Per-modality drop probability; > 0 makes a model that accepts missing sequences.",
)
@click.option(
    "--noise-std",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Coarse input noise (z units) for a denoising objective; 0 = plain autoencoder.",
)
@click.option("--no-augment", is_flag=True, help="Train without flips/affine/intensity changes.")
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Start from this checkpoint's weights (fine-tuning).",
)
@click.option("--resume", is_flag=True, help="Continue from OUTPUT's .state.pt training state.")
@click.option(
    "--stop-after",
    type=click.IntRange(1),
    default=None,
    help="End this run after N steps with a resumable state (time-boxed jobs).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(0),
    default=TrainConfig.checkpoint_every,
    show_default=True,
    help="Steps between resumable training states.",
)
@register_option("the checkpoint")
@quiet_option()
def train_cmd(
    data: tuple[Path, ...],
    output: Path,
    healthy_dirs: tuple[Path, ...],
    arch: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    modality_dropout: float,
    noise_std: float,
    no_augment: bool,
    init: Path | None,
    resume: bool,
    stop_after: int | None,
    checkpoint_every: int,
    register: bool,
    quiet: bool,
) -> None:
    """Train the MViT-AE on the healthy axial slices of DATA (case folders or folders of them).

    Slices within a margin of a reference label map (<ID>-seg/-ref/-roughmask) are excluded;
    cases without one lose the slices around their FLAIR outlier clusters. Cases under
    --healthy contribute every slice. A mask of known non-tumour lesions (<ID>-lesion) keeps
    the slices but leaves its voxels out of the loss; sequences a case lacks are never
    reconstructed or scored. Thresholds are calibrated on the held-out healthy slices that
    have all four sequences and no lesion, and stored in the checkpoint. Multi-GPU:
    `torchrun --nproc-per-node N -m brats_goat.cli train ...`.
    """
    # Imported when run: the training loop is not needed for --help or the other commands.
    from brats_goat.training.train import train

    cases = [case for folder in data for case in discover_cases(folder)]
    healthy = [case for folder in healthy_dirs for case in discover_cases(folder)]
    if not cases and not healthy:
        raise click.UsageError("no cases found in DATA or --healthy")
    model_cfg, cfg = train_configs(
        arch,
        modality_dropout,
        noise_std,
        no_augment,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        checkpoint_every=checkpoint_every,
    )
    try:
        result = train(
            cases,
            output,
            model_cfg,
            cfg,
            healthy_cases=healthy,
            device=device,
            provenance=provenance_record(sys.argv[2:], data, healthy_dirs, seed, arch),
            quiet=quiet,
            resume=resume,
            init=init,
            stop_after=stop_after,
        )
    except (CaseError, FileNotFoundError, ValueError, WeightsError) as exc:
        raise click.UsageError(str(exc)) from exc
    if result.info.get("processes", 1) > 1 and os.environ.get("RANK", "0") != "0":
        return  # one history and report per run: from rank 0 only
    finish(result, output, register)
