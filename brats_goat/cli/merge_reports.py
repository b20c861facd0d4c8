"""``brats-goat merge-reports``: one report.json from the reports of ``predict --shard`` runs.

Exit codes follow ``predict``: 0 all shards present and every case succeeded, 1 a shard is
missing, a case appears twice or any case failed, 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from brats_goat.cli.options import quiet_option
from brats_goat.run.merge_reports import MergeError, merge_folder


@click.command("merge-reports")
@click.argument(
    "output_dir",
    metavar="OUTPUT",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.argument(
    "reports", metavar="[REPORT]...", nargs=-1, type=click.Path(dir_okay=False, path_type=Path)
)
@quiet_option("Print only problems.")
def merge_reports(output_dir: Path, reports: tuple[Path, ...], quiet: bool) -> None:
    """Join shard reports into OUTPUT/report.json.

    REPORTs default to OUTPUT/report-shard-K-of-N.json (shards sharing one OUTPUT); name them
    when the shards wrote into separate folders. Each case's output file is looked for next
    to its shard's report.
    """
    try:
        result = merge_folder(output_dir, reports)
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
