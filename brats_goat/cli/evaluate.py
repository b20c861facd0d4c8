"""``brats-goat evaluate``: BraTS lesion-wise scores of a prediction folder.

Exit codes follow ``brats-goat predict``: 0 every case scored, 1 at least one case could not be
scored (e.g. geometry mismatch) or the metrics could not be written after the scoring, 2
usage error (missing folder, nothing to pair, an output folder that cannot be written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from brats_goat.cli.options import quiet_option
from brats_goat.evaluation.evaluate import (
    EvaluationOutputError,
    EvaluationUsageError,
    evaluate_folder,
)
from brats_goat.evaluation.metrics import COHORTS


@click.command("evaluate")
@click.argument("pred_dir", metavar="PRED_DIR", type=click.Path(path_type=Path))
@click.argument("ref_dir", metavar="REF_DIR", type=click.Path(path_type=Path))
@click.option(
    "--cohort",
    type=click.Choice(list(COHORTS), case_sensitive=False),
    default="gli",
    show_default=True,
    help="Lesion-wise parameters (dilation, minimum lesion size) of this BraTS cohort.",
)
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for metrics.csv and metrics.json (default: PRED_DIR).",
)
@click.option(
    "--legacy-et4",
    is_flag=True,
    help="Read label 4 (ET in BraTS releases before 2023) as 3 in references and predictions. "
    "Without it a label map with any value outside 0-3 fails its case.",
)
@quiet_option("Print only failures, not the table.")
def evaluate(
    pred_dir: Path,
    ref_dir: Path,
    cohort: str,
    output_dir: Path | None,
    legacy_et4: bool,
    quiet: bool,
):
    """Score PRED_DIR/<ID>.nii.gz against references in REF_DIR.

    References are <ID>-seg.nii.gz (or _seg), <ID>-ref.nii.gz or <ID>.nii.gz (or .nii),
    directly in REF_DIR or in BraTS case folders REF_DIR/<ID>/. A reference without a
    prediction is scored as an empty prediction and listed. Writes metrics.csv and
    metrics.json (per case and region, plus means). A label map with values outside 0-3
    fails its case (exit 1) unless --legacy-et4.
    """
    try:
        result = evaluate_folder(
            pred_dir, ref_dir, cohort=cohort.lower(), output_dir=output_dir, legacy_et4=legacy_et4
        )
    except EvaluationUsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except EvaluationOutputError as exc:  # a full disk after the scoring: no traceback
        click.echo(f"brats-goat evaluate: {exc}", err=True)
        sys.exit(1)
    if quiet:
        for case, reason in result.failed.items():
            click.echo(f"FAILED {case}: {reason}", err=True)
    else:
        click.echo(result.table())
        click.echo(f"metrics: {result.csv_path} {result.json_path}")
    sys.exit(0 if result.ok else 1)
