"""One case folder read as a case: which file holds which modality, and what is wrong.

A problem (two files for one modality, a dangling link, no image at all) fails that case
alone; what is odd but usable (file names unlike the folder's) becomes a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from brats_goat.conventions import MODALITIES
from brats_goat.io.names import (
    MODALITY_ALIASES,
    REFERENCE_SUFFIXES,
    folder_id,
    listed,
    nifti_files,
    other_format_modality,
    other_format_modality_files,
    read_names,
    split_suffix,
)

#: BIDS keeps a subject's anatomical images in ``sub-<label>/[ses-<label>/]anat/``.
BIDS_DATATYPE_FOLDER = "anat"
#: The file names a case folder's sequences are read from, for a warning (docs/cli.md).
READ_NAMES = (
    "<ID>-t1n/-t1c/-t2w/-t2f, <ID>_t1/_t1ce/_t1gd/_t2/_flair, <ID>_T2_FLAIR, BIDS "
    "<ID>_T1w/_ce-<label>_T1w/_T2w/_FLAIR (.nii or .nii.gz)"
)


@dataclass
class Case:
    """One case folder: which file holds which modality, and what is wrong with it."""

    case_id: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    reference: Path | None = None
    #: Discovery problems (ambiguous or duplicate files); a case with any is not processed.
    problems: list[str] = field(default_factory=list)
    #: What is odd but usable (file names unlike the folder's): the report's warnings.
    warnings: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [m for m in MODALITIES if m not in self.files]


def scan_case(folder: Path, case_id: str | None = None, prefix: str | None = None) -> Case:
    """Assign NIfTI files in ``folder`` to modalities (or a reference label map).

    ``prefix`` restricts the scan to files of one case when several cases share a folder.
    A folder that cannot be listed gives a case with a problem (the run goes on).
    """
    case = Case(case_id=case_id or folder_id(folder), folder=folder)
    try:
        files = nifti_files(folder)
    except PermissionError as exc:
        case.problems.append(unreadable_problem(folder, exc))
        return case
    names = read_names(files)
    for path in files:
        parts = names.get(path)
        if parts is None or (prefix is not None and parts[0] != prefix):
            continue
        assign(case, path, parts[1])
    if prefix is None:
        if case_id is None:
            case.case_id = bids_case_id(case, names)
        check_one_prefix(case, names)
        note_unread(case, files)
    if prefix == "" and case.files:
        names_found = ", ".join(p.name for p in case.files.values())
        case.problems.append(
            f"{names_found} in {folder}: no case ID before the modality in the file name "
            "(expected <ID>-t1n.nii.gz, ...)"
        )
    if not case.files:
        others = other_format_modality_files(folder)
        found = f"found: {listed(files)}" if files else "found no NIfTI file"
        if others:
            found += f"; in another format, not read: {listed(others)} (convert them to .nii.gz)"
        case.problems.append(
            f"no image named like <ID>-t1n/-t1c/-t2w/-t2f.nii.gz in {folder} ({found})"
        )
    return case


def assign(case: Case, path: Path, suffix: str) -> None:
    """``path`` as the case's reference or as the modality its ``suffix`` names."""
    if suffix in REFERENCE_SUFFIXES:
        if case.reference is None and path.is_file():
            case.reference = path
        return
    modality = MODALITY_ALIASES.get(suffix)
    if modality is None:
        return
    if modality in case.files:
        case.problems.append(
            f"two files for {modality}: {case.files[modality].name} and {path.name}"
        )
        return
    case.files[modality] = path
    if _is_dangling(path):
        case.problems.append(dangling_problem(modality, path))
    elif not path.is_file():
        case.problems.append(
            f"{modality} file {path} is not a regular file (it is {_kind(path)}); "
            "put the image file there"
        )


def bids_case_id(case: Case, names: dict[Path, tuple[str, str]]) -> str:
    """A BIDS ``anat`` folder's case ID is its files' prefix (``sub-01/anat/sub-01_T1w``
    is case ``sub-01``, ``sub-01_ses-1`` with a session): every subject's folder is named
    ``anat``, and one ID for all would fail them all as duplicates."""
    prefixes = {names[p][0] for p in case.files.values() if p in names}
    if case.folder.name.lower() == BIDS_DATATYPE_FOLDER and len(prefixes) == 1:
        return prefixes.pop() or case.case_id
    return case.case_id


def note_unread(case: Case, files: list[Path]) -> None:
    """A case folder that lacks a sequence and holds NIfTI files nothing was read from
    (``T1_MPRAGE.nii.gz``, ``sub-01_T1map.nii.gz``): the warning names them and the names
    that are read, since one of them may be the missing sequence under another name."""
    used = {*case.files.values(), case.reference}
    unread = [p for p in files if p not in used and (split_suffix(p.name) or ("", ""))[1]
              not in REFERENCE_SUFFIXES]  # fmt: skip
    if not case.files or not case.missing or not unread:
        return
    case.warnings.append(
        f"case {case.case_id}: no file named like a {', '.join(case.missing)} image, and "
        f"{listed(unread)} in its folder {case.folder} were not read: the names read are "
        f"{READ_NAMES} (docs/cli.md); rename a file that is one of these sequences"
    )


def check_one_prefix(case: Case, names: dict[Path, tuple[str, str]]) -> None:
    """A case folder's modality files must be one case's: files of two prefixes (``P1-t1n``
    beside ``P2-t2f``) would mix two patients in one segmentation, so they are a problem.
    One prefix unlike the folder's name is used (the case ID is the folder's), with a
    warning: the output is named after the folder, not the files."""
    prefixes: dict[str, list[str]] = {}
    for path in case.files.values():
        parts = names.get(path)
        if parts is not None:
            prefixes.setdefault(parts[0], []).append(path.name)
    if len(prefixes) > 1:
        groups = "; ".join(f"{p or '(none)'}: {', '.join(n)}" for p, n in sorted(prefixes.items()))
        case.problems.append(
            f"folder {case.folder} holds the files of more than one case ({groups}): a "
            "case folder must hold one case's files; move the other case's files into a "
            "folder of their own"
        )
    elif len(prefixes) == 1 and (prefix := next(iter(prefixes))).lower() not in (
        "",
        case.case_id.lower(),
    ):
        case.warnings.append(
            f"case {case.case_id}: its files are named {prefix}-... but their folder "
            f"{case.folder} is named {case.case_id}; the case ID (and the output's name) is "
            "the folder's: rename one of them if they are not the same case"
        )


def other_format_files(case: Case) -> dict[str, list[Path]]:
    """Files of ``case`` named like a modality but in another format (``X-t1n.img``,
    ``X_flair.mha``, ``X-t2w.nii.bz2``): never read, so the modality counts as absent. By
    modality, so that the warning about an absent modality can name what was passed over."""
    found: dict[str, list[Path]] = {}
    for path in other_format_modality_files(case.folder):
        prefix, modality = other_format_modality(path) or ("", "")
        if prefix == case.case_id or folder_id(case.folder) == case.case_id:
            found.setdefault(modality, []).append(path)
    return found


def _kind(path: Path) -> str:
    """What a path that is no regular file is, for a message."""
    if path.is_dir():
        return "a folder"
    if path.is_fifo():
        return "a named pipe (FIFO)"
    if path.is_socket():
        return "a socket"
    if path.is_block_device() or path.is_char_device():
        return "a device"
    return "not a file"


def _is_dangling(path: Path) -> bool:
    """A symbolic link whose target does not exist (or that loops)."""
    return path.is_symlink() and not path.exists()


def dangling_problem(modality: str, path: Path) -> str:
    """Why a modality file that is a link to nothing fails its case."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (
        f"{modality} file {path} is a dangling symbolic link: its target {target} does not "
        "exist (restore the target or copy the file in)"
    )


def unreadable_problem(folder: Path, exc: PermissionError) -> str:
    """Why a folder that cannot be listed fails as a case."""
    where = "" if exc.filename in (None, str(folder)) else f" (at {exc.filename})"
    return (
        f"cannot read folder {folder}: permission denied{where}; give the user running "
        "brats-goat read and execute permission on it"
    )
