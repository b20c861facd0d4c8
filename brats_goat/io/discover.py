"""Find BraTS cases in a folder, whatever naming generation they use.

Challenge data arrives with 2023 names (``<ID>-t1n.nii.gz``), legacy names
(``<ID>_t1ce.nii``), ``-`` or ``_`` separators and ``.nii`` or ``.nii.gz``. Naming mismatches
are a top complaint about challenge containers, so discovery accepts all of them and
reports ambiguity per case instead of guessing. The name rules are in ``io.names``, one
case folder's reading in ``io.case_folder``, nnU-Net's numbered files in ``io.nnunet``;
this module walks the folders.

The layout rule (docs/cli.md, "Which folders are cases"): a folder that directly holds
modality files is a case folder; INPUT itself is one only when none of its sub-folders is.
Other folders are searched for case folders down to ``MAX_CASE_DEPTH`` levels below INPUT.
A layout that could be read two ways (image files next to case folders) or that hides
images deeper than the search goes is refused as a whole (``DiscoveryError``), because
picking one reading would drop cases in silence. A folder that cannot be listed becomes a
case with a problem, so one unreadable folder fails alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from brats_goat.io.case_folder import Case, scan_case, unreadable_problem
from brats_goat.io.errors import DiscoveryError
from brats_goat.io.names import (
    NIFTI_NAME,
    listed,
    modality_files,
    modality_prefixes,
    nifti_files,
    other_format_modality_files,
    sub_folders,
)
from brats_goat.io.nnunet import (
    NNUNET_NAME,
    dataset_channels,
    nnunet_case,
    nnunet_cases,
    nnunet_error,
)

__all__ = ["MAX_CASE_DEPTH", "Case", "DiscoveryError", "discover_cases"]

#: Folder levels below INPUT searched for case folders (``INPUT/<ID>/`` is level 1), so
#: ``INPUT/<cohort>/<split>/<ID>/`` is still found.
MAX_CASE_DEPTH = 3


def case_folders_below(folder: Path, depth: int) -> list[Path]:
    """Folders below ``folder`` (itself at ``depth``) that directly hold modality files,
    down to ``MAX_CASE_DEPTH``; folders that cannot be listed are passed over."""
    found: list[Path] = []
    if depth >= MAX_CASE_DEPTH:
        return found
    try:
        subs = sub_folders(folder)
    except PermissionError:
        return found
    for sub in subs:
        try:
            is_case = bool(modality_prefixes(sub))
        except PermissionError:
            continue
        found += [sub] if is_case else case_folders_below(sub, depth + 1)
    return found


def _first_modality_file_below(folder: Path) -> Path | None:
    """Any modality file anywhere below ``folder`` (hidden folders and files left out)."""
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        images = [Path(parent) / f for f in sorted(files) if NIFTI_NAME.match(f)]
        found = modality_files([p for p in images if not p.name.startswith(".")])
        if found:
            return found[0]
    return None


def mixed_layout_error(
    root: Path, folder: Path, nested: list[Path], files: list[Path] | None = None
) -> DiscoveryError:
    """Image files (``files``, default: the modality files in ``folder``) next to case
    folders: one case or a folder of cases? Refuse to guess."""
    files = modality_files(nifti_files(folder)) if files is None else files
    where = "INPUT" if folder == root else "case folder"
    return DiscoveryError(
        f"{where} {folder} holds image files of its own ({listed(files)}) and also case "
        f"folders ({listed(nested, folder)}): it cannot be both one case and a folder of "
        "cases. Move the loose image files into a case folder of their own "
        "(or remove them), or pass one case folder as INPUT"
    )


def too_deep_error(root: Path, image: Path) -> DiscoveryError:
    """Images below the searched depth would be dropped without a word: refuse instead."""
    return DiscoveryError(
        f"{image} is more than {MAX_CASE_DEPTH} folder levels below INPUT {root}: case "
        f"folders are searched {MAX_CASE_DEPTH} levels deep (INPUT/<ID>/ is level 1). Move "
        "those cases up, or pass the folder that holds them as INPUT"
    )


def nnunet_folder(root: Path, folder: Path, depth: int, ids: list[str]) -> list[Case]:
    """The cases of a folder of nnU-Net channel files: read in the order its dataset.json
    declares, else refused (``nnunet_error``), as is one next to case folders."""
    source, order = dataset_channels(folder)
    if source is None or isinstance(order, str):
        raise nnunet_error(folder, ids, order if isinstance(order, str) else "")
    nested = case_folders_below(folder, depth)
    if nested:
        channel_files = [p for p in nifti_files(folder) if NNUNET_NAME.match(p.name)]
        raise mixed_layout_error(root, folder, nested, channel_files)
    return [nnunet_case(folder, case_id, order, source) for case_id in ids]


def _walk(root: Path, folder: Path, depth: int) -> list[Case]:
    """Cases at or below ``folder``, which is ``depth`` levels below ``root``."""
    try:
        prefixes = modality_prefixes(folder)
        subs = sub_folders(folder)
        nnunet = [] if prefixes else nnunet_cases(folder)
    except PermissionError as exc:
        if depth == 0:
            raise DiscoveryError(f"cannot read INPUT {folder}: {exc.strerror}") from exc
        return [Case(folder.name, folder, problems=[unreadable_problem(folder, exc)])]
    if nnunet:
        return nnunet_folder(root, folder, depth, nnunet)
    if prefixes:
        nested = case_folders_below(folder, depth)
        if nested:
            raise mixed_layout_error(root, folder, nested)
        if depth == 0 and len(prefixes) > 1:  # several cases' files side by side in INPUT
            return [scan_case(folder, case_id=p, prefix=p) for p in prefixes]
        return [scan_case(folder)]
    if depth == MAX_CASE_DEPTH:
        deeper = next(filter(None, map(_first_modality_file_below, subs)), None)
        if deeper is not None:
            raise too_deep_error(root, deeper)
        cases = []
    else:
        cases = [case for sub in subs for case in _walk(root, sub, depth + 1)]
    if not cases and depth > 0 and (nifti_files(folder) or other_format_modality_files(folder)):
        # NIfTI files but no recognisable modality, or modality files in another format
        # (X-t1n.mha): reported, not skipped.
        cases = [scan_case(folder)]
    return cases


def flag_duplicates(cases: list[Case]) -> None:
    """Two case IDs that differ only by letter case (or one ID in two folders) would write
    the same output file, on a case-insensitive file system too: both get a problem."""
    seen: dict[str, Case] = {}
    for case in cases:
        key = case.case_id.lower()
        if key not in seen:
            seen[key] = case
            continue
        other = seen[key]
        msg = (
            f"duplicate case ID: folders {other.folder} and {case.folder} "
            "would write the same output file"
        )
        case.problems.append(msg)
        if msg not in other.problems:
            other.problems.append(msg)


def discover_cases(root: str | Path) -> list[Case]:
    """Cases under ``root``: ``root`` itself if it is a case folder, else the case folders
    found below it (see the module docstring for the rule).

    Files of several cases directly in ``root`` are grouped by file-name prefix. Folders
    without any NIfTI file are not cases, unless they hold modality files in another
    format (``X-t1n.mha``); such a folder, or one with NIfTI files but no recognisable
    modality, is a case with a problem. Raises ``DiscoveryError`` when ``root`` cannot be
    read or its layout is ambiguous.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"input is not a folder: {root}")
    cases = _walk(root, root, 0)
    flag_duplicates(cases)
    return cases
