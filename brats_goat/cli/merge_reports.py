"""``brats-goat merge-reports``: one report.json from the reports of ``predict --shard`` runs.

Exit codes follow ``predict``: 0 all shards present and every case succeeded, 1 a shard is
missing, a case appears twice or any case failed, 2 usage error (among them a file that is
not a shard report as ``predict`` wrote it: unreadable, hand-edited, renamed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from brats_goat.cli.options import quiet_option
from brats_goat.run.merge_reports import (
    MergeError,
    ReportNotWritten,
    ShardReportError,
    merge_folder,
)


@click.command("merge-reports")
@click.argument(
    "output_dir",
    metavar="FOLDER",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.argument(
    "reports", metavar="[REPORT]...", nargs=-1, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--outputs",
    "outputs_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of the label maps, when the shard reports were written elsewhere "
    "(predict --report-dir; the container's BRATS_GOAT_REPORT_DIR) [default: next to "
    "each shard report].",
)
@quiet_option("Print only problems.")
def merge_reports(
    output_dir: Path, reports: tuple[Path, ...], outputs_dir: Path | None, quiet: bool
) -> None:
    """Join shard reports into FOLDER/report.json.

    FOLDER is where the shards wrote their reports: OUTPUT, or the --report-dir they were
    given. REPORTs default to FOLDER/report-shard-K-of-N.json; name them when the shards
    wrote into separate folders. Each case's label map is looked for in --outputs, else next
    to its shard's report.
    """
    try:
        result = merge_folder(output_dir, reports, outputs_dir)
    except (ShardReportError, ReportNotWritten) as exc:  # not predict's, or FOLDER: usage
        raise click.UsageError(str(exc)) from exc
    except MergeError as exc:
        click.echo(f"merge-reports failed: {exc}", err=True)
        sys.exit(1)
    summary = result.report["summary"]
    if not quiet:
        shards = len(result.report["shards"])
        click.echo(
            f"merged {shards} shard reports: {summary['succeeded']}/{summary['cases']} "
            f"cases succeeded -> {result.path}"
        )
    for case_id, error in result.failed.items():
        click.echo(f"FAILED {case_id}: {error}", err=True)
    sys.exit(0 if result.ok else 1)
