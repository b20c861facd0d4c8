"""How BraTS file names map to modalities, and which entries of a folder count.

Challenge data arrives with 2023 names (``<ID>-t1n.nii.gz``), legacy names
(``<ID>_t1ce.nii``), ``-`` or ``_`` separators and ``.nii`` or ``.nii.gz``: the rules that
read all of them live here, apart from the folder walk (``discover``) that uses them.
"""

from __future__ import annotations

import re
from collections import Counter
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
    "t2flair": "t2f",
    # BIDS suffixes (``sub-01_T1w``; ``_T2w`` and ``_FLAIR`` are above). A contrast-enhanced
    # T1w is named by an entity (``sub-01_ce-gd_T1w``): ``BIDS_CONTRAST`` reads it as t1c.
    "t1w": "t1n",
    # Two-part names (BraTS 2015 and TCIA: ``P1_T2_FLAIR``, ``P1_T1_GD``): a name is read
    # with its longest known suffix first, so ``P1_T2_FLAIR`` is the t2f of ``P1``, not
    # the FLAIR of a case ``P1_T2`` beside it (that split one patient in two cases).
    "t2_flair": "t2f",
    "t1_ce": "t1c",
    "t1_gd": "t1c",
    "ce_t1w": "t1c",
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
#: A BIDS contrast-enhanced T1w (``sub-01_ses-1_ce-gd_run-1_T1w``): its case prefix is the
#: name without the ``ce-<label>`` entity and the suffix (``sub-01_ses-1_run-1``), the
#: prefix of the same subject's ``sub-01_ses-1_run-1_T1w``.
BIDS_CONTRAST = re.compile(
    r"^(?P<before>.+?)_ce-[a-z0-9]+(?P<after>(?:_[a-z0-9]+-[a-z0-9]+)*)_t1w$",
    re.IGNORECASE | re.DOTALL,
)

#: Folders that are never cases: ext4's ``lost+found`` is root-only on a mounted volume and
#: would otherwise fail as an unreadable case in every non-root container run.
IGNORED_FOLDERS: frozenset[str] = frozenset({"lost+found"})
#: How many names an error message lists before it says how many there are in all.
LISTED_NAMES = 6


def split_suffix(name: str) -> tuple[str, str] | None:
    """``'X-t1c.nii.gz'`` -> ``('X', 't1c')``: the first of ``name_readings``, else the part
    after the last ``-`` or ``_`` (an unknown suffix); ``None`` for a name that is not NIfTI."""
    readings = name_readings(name)
    if readings:
        return readings[0]
    match = NIFTI_NAME.match(name)
    if not match:
        return None
    stem = match.group("stem")
    parts = re.split(r"[-_]", stem)
    if len(parts) < 2:
        return None
    return stem[: len(stem) - len(parts[-1]) - 1], parts[-1].lower()


def _known(suffix: str) -> bool:
    return suffix in MODALITY_ALIASES or suffix in REFERENCE_SUFFIXES


def name_readings(name: str) -> list[tuple[str, str]]:
    """Every (case prefix, known suffix) a NIfTI name reads as, the longest suffix first:
    ``P1_T2_FLAIR`` -> ``[('P1', 't2_flair'), ('P1_T2', 'flair')]``. Two-part suffixes are
    joined by ``_`` whatever the separator; a BIDS ``_ce-<label>_T1w`` reads as ``ce_t1w``."""
    match = NIFTI_NAME.match(name)
    if not match:
        return []
    stem = match.group("stem")
    readings = []
    if bids := BIDS_CONTRAST.match(stem):
        readings.append((bids["before"] + bids["after"], "ce_t1w"))
    cuts = [m.start() for m in re.finditer(r"[-_]", stem)]
    for cut in cuts[-2:] if len(cuts) > 1 else cuts:
        suffix = re.sub(r"[-_]", "_", stem[cut + 1 :]).lower()
        if _known(suffix):
            readings.append((stem[:cut], suffix))
    return readings


def read_names(paths: list[Path]) -> dict[Path, tuple[str, str]]:
    """(case prefix, known suffix) of each of ``paths`` (one folder's files) that has one.

    A name with two readings (``P1_T2_FLAIR``) takes the one whose prefix more of the other
    files have as theirs: ``P1`` beside ``P1_T1``, ``P1_T2``; ``P1_T2`` beside
    ``P1_T2_t1``, ``P1_T2_t2`` (a case whose ID ends in ``_T2``); the longest on a tie."""
    readings = {p: name_readings(p.name) for p in paths}
    firsts = Counter(r[0][0] for r in readings.values() if r)
    chosen: dict[Path, tuple[str, str]] = {}
    for path, options in readings.items():
        if options:
            own = options[0][0]
            chosen[path] = max(options, key=lambda r: firsts[r[0]] - (r[0] == own))
    return chosen


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
    return [p for p in read_names(files).values() if p[1] in MODALITY_ALIASES]


def modality_files(files: list[Path]) -> list[Path]:
    """The files among ``files`` named like a modality (``<ID>-t1c.nii.gz``, ...)."""
    return [p for p in files if _modality_parts([p])]


def listed(paths: list[Path], under: Path | None = None) -> str:
    """Names for a message (relative to ``under``): the first few, then how many in all."""
    names = ", ".join(str(p.relative_to(under)) if under else p.name for p in paths[:LISTED_NAMES])
    return names + (f", ... ({len(paths)} in all)" if len(paths) > LISTED_NAMES else "")
