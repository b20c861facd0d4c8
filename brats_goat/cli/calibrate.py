"""``brats-goat calibrate``: one subcommand per stored calibration result. ``thresholds``
(also what ``brats-goat calibrate DATA...`` runs) re-derives a checkpoint's thresholds from
a site's healthy scans (``brats_goat.calibration.thresholds`` and ``.tissue``); the others
(``brats_goat.cli.calibrate_results``) measure the JSON files the package ships. Exit 2 on
a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from brats_goat.cli.calibrate_results import RESULT_COMMANDS
from brats_goat.cli.options import (
    checkpoint_output_option,
    data_argument,
    device_option,
    register_option,
    weights_option,
)
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseError
from brats_goat.model.manifest import WeightsError, register_calibrated
from brats_goat.training.config import TrainConfig


def restore_overrides(
    restore_iterations: int | None, restore_maps: str | None, fusion_weight: float | None = None
) -> dict[str, Any]:
    """Only the post-processing settings given on the command line: the rest stay the
    checkpoint's."""
    restore: dict[str, Any] = {}
    if fusion_weight is not None:
        restore["fusion_weight"] = fusion_weight
    if restore_iterations is not None:
        restore["restore_iterations"] = restore_iterations
    if restore_maps is not None:
        restore["restore_maps"] = tuple(restore_maps.split(","))
    return restore


def echo_calibration(info: dict[str, Any], output: Path, sha: str) -> None:
    """What the new checkpoint will do differently, so a site can judge it before using it."""
    click.echo(
        f"restoration passes: {info['restore_iterations']} "
        f"(maps: {', '.join(info['restore_maps'])})"
    )
    if "fusion_weight" in info:
        click.echo(f"late fusion weight of the image: {info['fusion_weight']}")
    click.echo(f"thresholds (z units): {info['thresholds']}")
    click.echo(f"component peak values (z units): {info['peak_thresholds']}")
    click.echo(f"ET minimum (voxels): {info['et_min_voxels']}")
    click.echo(f"checkpoint: {output} sha256 {sha}")


@click.command("thresholds")
@data_argument(required=True)
@weights_option("Checkpoint (or weights folder) to calibrate (default: the shipped weights).")
@checkpoint_output_option("Where to write the re-calibrated checkpoint.")
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
@click.option(
    "--fusion-weight",
    type=click.FloatRange(0, 1),
    default=None,
    help="Late fusion: the anomaly map is (1 - W) x the model's residual + W x the z-scored "
    "image; default: the checkpoint's own setting.",
)
@click.option(
    "--tissue",
    is_flag=True,
    help="Measure on whole volumes as predict reads them: DATA are healthy subjects (every "
    "voxel, except known lesions in an <ID>-lesion mask); the threshold is the median over "
    "subjects of each subject's percentile.",
)
@click.option(
    "--tumour-cases",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    multiple=True,
    help="With --tissue: tumour cases whose slices far from their label map (or rough "
    "mask) count as healthy too; cases without one are skipped.",
)
@device_option()
@register_option("the new checkpoint")
def thresholds_cmd(
    data: tuple[Path, ...],
    weights: Path | None,
    output: Path,
    percentile: float,
    min_brain_voxels: int,
    restore_iterations: int | None,
    restore_maps: str | None,
    fusion_weight: float | None,
    tissue: bool,
    tumour_cases: tuple[Path, ...],
    device: str,
    register: bool,
) -> None:
    """Re-derive the anomaly thresholds from a site's own healthy scans in DATA.

    Uses the healthy slices of DATA (slices near a label map or FLAIR outliers are left
    out, as in training) and no tumour label; with --tissue, whole healthy volumes.
    Writes a new checkpoint with the thresholds.
    """
    # Imported when run: the calibration code is not needed for --help or the other commands.
    from brats_goat.calibration.thresholds import recalibrate_checkpoint
    from brats_goat.calibration.tissue import TissueCalibrationConfig, recalibrate_on_tissue

    cases = [case for folder in data for case in discover_cases(folder)]
    if not cases:
        raise click.UsageError("no cases found in DATA")
    if tumour_cases and not tissue:
        raise click.UsageError("--tumour-cases needs --tissue")
    try:
        selection = TrainConfig(min_brain_voxels=min_brain_voxels)
        overrides = restore_overrides(restore_iterations, restore_maps, fusion_weight)
        if tissue:
            tumour = [case for folder in tumour_cases for case in discover_cases(folder)]
            cfg = TissueCalibrationConfig(percentile=percentile, selection=selection)
            sha, info = recalibrate_on_tissue(
                weights, cases, tumour, output, cfg, device, overrides, click.echo
            )
        else:
            sha, info = recalibrate_checkpoint(
                weights, cases, output, percentile, device, selection, overrides
            )
    except (CaseError, WeightsError) as exc:
        raise click.UsageError(str(exc)) from exc
    if register:
        register_calibrated(output, sha, info)
    echo_calibration(info, output, sha)


class CalibrateGroup(click.Group):
    """``calibrate`` with a subcommand per stored result; arguments that do not start with
    a subcommand's name go to ``thresholds``, so ``brats-goat calibrate DATA...`` keeps its
    meaning (a DATA folder named like a subcommand needs ``calibrate thresholds`` first)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["thresholds", *args]
        return super().parse_args(ctx, args)


@click.group("calibrate", cls=CalibrateGroup)
def calibrate_cmd() -> None:
    """Measure label-free thresholds on healthy scans: one subcommand per stored result.

    Without a subcommand: thresholds (brats-goat calibrate DATA... -o CHECKPOINT).
    """


calibrate_cmd.add_command(thresholds_cmd)
for _command in RESULT_COMMANDS:
    calibrate_cmd.add_command(_command)
