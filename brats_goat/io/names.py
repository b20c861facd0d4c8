"""How BraTS file names map to modalities, and which entries of a folder count.

Challenge data arrives with 2023 names (``<ID>-t1n.nii.gz``), legacy names
(``<ID>_t1ce.nii``), ``-`` or ``_`` separators and ``.nii`` or ``.nii.gz``: the rules that
read all of them live here, apart from the folder walk (``discover``) that uses them.
"""

from __future__ import annotations

import re
from pathlib import Path

#: File-name suffix (after the last ``-`` or ``_``) -> modality, lower case.
MODALITY_ALIASES: dict[str, str] = {
    "t1n": "t1n",
    "t1": "t1n",
    "t1c": "t1c",
    "t1ce": "t1c",
    "t1gd": "t1c",
    "t2w": "t2w",
    "t2": "t2w",
    "t2f": "t2f",
    "flair": "t2f",
}

#: Suffix of a mask of known non-tumour lesions (MS, white-matter lesions) of a near-healthy
#: subject: a reference like the others, but training leaves its voxels out of the loss
#: instead of dropping its slices (``brats_goat.training.healthy``).
LESION_SUFFIX = "lesion"

#: Suffixes of reference files that may sit next to the images (never used by predict).
REFERENCE_SUFFIXES: tuple[str, ...] = (
    *("seg", "ref", "roughmask", "label", "labels", "mask"),
    LESION_SUFFIX,
)

# DOTALL: a name with a newline in it is still a name (it used to be skipped in silence).
NIFTI_NAME = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE | re.DOTALL)

#: Folders that are never cases: ext4's ``lost+found`` is root-only on a mounted volume and
#: would otherwise fail as an unreadable case in every non-root container run.
IGNORED_FOLDERS: frozenset[str] = frozenset({"lost+found"})
#: How many names an error message lists before it says how many there are in all.
LISTED_NAMES = 6


def split_suffix(name: str) -> tuple[str, str] | None:
    """``'X-t1c.nii.gz'`` -> ``('X', 't1c')``; ``None`` for a name that is not NIfTI."""
    match = NIFTI_NAME.match(name)
    if not match:
        return None
    stem = match.group("stem")
    parts = re.split(r"[-_]", stem)
    if len(parts) < 2:
        return None
    suffix = parts[-1].lower()
    prefix = stem[: len(stem) - len(parts[-1]) - 1]
    return prefix, suffix


def folder_id(folder: Path) -> str:
    """The case ID a folder gives: its name, taken from the resolved path when the path
    names none (``.``, ``..``, ``CASE/..``), so that ``cd CASE && brats-goat predict . OUT``
    writes ``OUT/CASE.nii.gz``, not the hidden ``OUT/.nii.gz``."""
    if folder.name not in ("", ".", ".."):
        return folder.name
    return folder.resolve().name


def other_format_modality_files(folder: Path) -> list[Path]:
    """Regular files directly in ``folder`` named like a modality but not NIfTI
    (``X-t1n.mha``, ``X_flair.img``): a case folder in a format brats-goat does not read."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if other_format_modality(p) is not None]


def other_format_modality(path: Path) -> tuple[str, str] | None:
    """(prefix, modality) of a non-NIfTI file named like a modality file, else None."""
    if path.name.startswith(".") or NIFTI_NAME.match(path.name) or "." not in path.name:
        return None
    if not path.is_file():
        return None
    parts = split_suffix(path.name.split(".", 1)[0] + ".nii")
    if parts is None or parts[1] not in MODALITY_ALIASES:
        return None
    return parts[0], MODALITY_ALIASES[parts[1]]


def nifti_files(folder: Path) -> list[Path]:
    """Entries directly in ``folder`` named like NIfTI files, hidden ones left out.

    Not only regular files: a dangling symbolic link, a folder or a FIFO named like an
    image is kept, so that it fails its case as what it is instead of passing as an absent
    modality (and a FIFO is never opened: reading it would wait forever).
    """
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and NIFTI_NAME.match(p.name)
    )


def sub_folders(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder`` that may hold cases (``lost+found`` never does).

    A symbolic link to a folder is followed (linked case folders are a common layout),
    unless it points back to ``folder`` or above it: such a loop holds no case of its own,
    only the ones already found, which it would show again one level deeper."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name not in IGNORED_FOLDERS
        and not _links_upwards(p, folder)
    )


def _links_upwards(path: Path, parent: Path) -> bool:
    """``path`` (an entry of ``parent``) is a link to ``parent`` or one of its ancestors."""
    if not path.is_symlink():
        return False
    try:
        target, here = path.resolve(strict=True), parent.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return target == here or target in here.parents


def modality_prefixes(folder: Path) -> list[str]:
    """Distinct case prefixes of the modality files directly in ``folder``."""
    return sorted({parts[0] for parts in _modality_parts(nifti_files(folder))})


def _modality_parts(files: list[Path]) -> list[tuple[str, str]]:
    parts = [split_suffix(p.name) for p in files]
    return [p for p in parts if p is not None and p[1] in MODALITY_ALIASES]


def modality_files(files: list[Path]) -> list[Path]:
    """The files among ``files`` named like a modality (``<ID>-t1c.nii.gz``, ...)."""
    return [p for p in files if _modality_parts([p])]


def listed(paths: list[Path], under: Path | None = None) -> str:
    """Names for a message (relative to ``under``): the first few, then how many in all."""
    names = ", ".join(str(p.relative_to(under)) if under else p.name for p in paths[:LISTED_NAMES])
    return names + (f", ... ({len(paths)} in all)" if len(paths) > LISTED_NAMES else "")
