"""The run's folders: INPUT and its cases checked, OUTPUT (and the report folder) checked,
created, proven writable and held for this run alone, and removed again when the run ends
in a usage error before writing anything.

Every check here is a usage error (``InputError``, exit 2), found before any case runs.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

from brats_goat.io.discover import MAX_CASE_DEPTH, Case, discover_cases
from brats_goat.run.lock import FolderBusy, lock_folders
from brats_goat.run.shard import Shard

#: The write probe of ``make_folders`` (``.<name>.<PID>``) and of the container's entry
#: point (the same name): left behind only by a run killed in that instant.
PROBE_NAME = ".brats-goat-write-test"


class InputError(Exception):
    """A problem with the run as a whole (usage), as opposed to one case."""


def check_folders(input_dir: Path, output_dir: Path, report_dir: Path | None = None) -> None:
    """Usage errors that make the whole run pointless, found without creating anything:
    INPUT is no folder; OUTPUT (or the report folder) is a file, or is INPUT or inside it.
    Checked first, so that discovery never walks into a folder the run would write."""
    if not input_dir.is_dir():
        raise InputError(f"INPUT {input_dir} is not a folder")
    inp = input_dir.resolve()
    for what, folder in out_folders(output_dir, report_dir):
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"{what} {folder} exists and is not a folder; give a folder (it is created "
                "when missing)"
            )
        out = folder.resolve()
        if out == inp or inp in out.parents:
            raise InputError(
                f"{what} {folder} is INPUT or inside it: outputs would mix with the inputs "
                "(and inputs are never modified); choose a separate folder"
            )


def make_folders(output_dir: Path, report_dir: Path | None = None) -> None:
    """Create OUTPUT (and the report folder) and prove them writable with a probe file.
    Called only once the cases and the segmenter are known to be usable, so that a usage
    error leaves no folder behind."""
    for what, folder in out_folders(output_dir, report_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f"{PROBE_NAME}.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(f"{what} {folder} is not writable: {exc}") from exc


def out_folders(output_dir: Path, report_dir: Path | None) -> list[tuple[str, Path]]:
    """``(what, folder)`` for OUTPUT and, when the report goes elsewhere, its folder."""
    folders = [("OUTPUT", output_dir)]
    if report_dir is not None and report_dir.resolve() != output_dir.resolve():
        folders.append(("the report folder", report_dir))
    return folders


def find_cases(input_dir: Path) -> list[Case]:
    """The cases under INPUT (``discover_cases``); ``InputError`` when there are none, with
    the rule, so that a user sees where the cases were looked for."""
    cases = discover_cases(input_dir)
    if not cases:
        raise InputError(
            f"no cases found in {input_dir}: expected case folders holding files like "
            "<ID>-t1n.nii.gz, <ID>-t1c.nii.gz, <ID>-t2w.nii.gz, <ID>-t2f.nii.gz (or INPUT "
            f"being one), searched down to {MAX_CASE_DEPTH} folder levels below INPUT "
            "(INPUT/<ID>/ is level 1)"
        )
    return cases


def lock_run(
    stack: ExitStack, output_dir: Path, report_dir: Path | None, shard: Shard | None
) -> bool:
    """Hold OUTPUT (and the report folder) for this run; ``InputError`` when another run
    holds either. Returns whether the locks are real (not on a file system without them)."""
    try:
        locked = stack.enter_context(lock_folders(out_folders(output_dir, report_dir), shard))
    except FolderBusy as exc:
        raise InputError(str(exc)) from exc
    if not locked:
        print(
            "brats-goat predict: WARNING: the file system of OUTPUT has no file locks; a "
            "second run into the same folder would not be detected",
            file=sys.stderr,
        )
    return locked


def missing_folders(*folders: Path | None) -> list[Path]:
    """Each of ``folders`` that does not exist yet, and its missing parents, deepest first:
    what a run may create and must remove again when it ends in a usage error."""
    missing: set[Path] = set()
    for folder in folders:
        while folder is not None and not folder.exists():
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.absolute().parts), reverse=True)


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created, as long as they are still empty (a folder
    something else wrote into in the meantime is left alone)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            continue
