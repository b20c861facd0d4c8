"""Files that earlier runs, killed while writing, left behind: found and removed at the
start of a run, so that a half-written file is never taken for a result."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from brats_goat.io.discover import Case
from brats_goat.io.write import find_temp_files, temp_key
from brats_goat.run.folders import PROBE_NAME
from brats_goat.run.lock import stale_shard_locks
from brats_goat.run.outputs import case_output_files
from brats_goat.run.report import RunReport

#: The write probe (``PROBE_NAME``), with the PID of its run or without (the container's).
_PROBE = re.compile(rf"^{re.escape(PROBE_NAME)}(?:\.\d+)?$")


def _output_id(target: str) -> str | None:
    """The case ID of an output file name: ``<ID>.nii.gz``, ``<ID>-anomaly-<map>.nii.gz``,
    ``<ID>.png`` (QC); ``None`` for anything else."""
    match = re.fullmatch(r"(.+?)(?:-anomaly-[a-z0-9]+)?\.(?:nii\.gz|png)", target)
    return match.group(1) if match else None


def owned_by(case_ids: Iterable[str], report_name: str) -> Callable[[str], bool]:
    """Whether a temporary file's target (``find_temp_files``) is one this run writes: its
    cases' outputs and its report, named as they are or by ``temp_key``'s digest."""
    ids = set(case_ids)
    keys = {temp_key(p.name) for i in ids for p in case_output_files(i, Path("."))}
    return lambda target: target == report_name or _output_id(target) in ids or target in keys


def remove_stale_files(folders: Iterable[Path], owns: Callable[[str], bool] | None) -> list[str]:
    """Remove what earlier runs, killed while writing, left in ``folders``: temporary files
    (``brats_goat.io.write``) of the files ``owns`` accepts. With ``owns=None`` (the run
    holds the folders alone, so nothing in them belongs to a live run) every temporary
    file, write probe and unheld shard lock. Returns the paths removed."""
    stale: list[Path] = []
    for folder in folders:
        stale += [p for p, target in find_temp_files(folder) if owns is None or owns(target)]
        if owns is None and folder.is_dir():
            stale += [p for p in sorted(folder.iterdir()) if _PROBE.match(p.name)]
            stale += stale_shard_locks(folder)
    removed = []
    for path in stale:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(str(path))
    return removed


def clean_up_killed_runs(
    report: RunReport, cases: list[Case], report_dir: Path | None, exclusive: bool
) -> None:
    """``remove_stale_files`` on OUTPUT, OUTPUT/qc and the report folder, said on stderr and
    in the report. A run without the folders to itself (a shard; no locks) removes only
    the temporary files of its own outputs and report."""
    output_dir = Path(report.output)
    folders = [output_dir, output_dir / "qc"] + ([report_dir] if report_dir else [])
    owns = None if exclusive else owned_by((c.case_id for c in cases), report.file_name)
    removed = remove_stale_files(dict.fromkeys(p.resolve() for p in folders), owns)
    report.stale_files_removed = removed
    if removed:
        print(
            f"brats-goat predict: removed {len(removed)} file(s) left by an earlier run that "
            f"was killed while writing: {', '.join(removed)}",
            file=sys.stderr,
        )
