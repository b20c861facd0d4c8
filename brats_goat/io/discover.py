"""Find BraTS cases in a folder, whatever naming generation they use.

Challenge data arrives with 2023 names (``<ID>-t1n.nii.gz``), legacy names
(``<ID>_t1ce.nii``), ``-`` or ``_`` separators and ``.nii`` or ``.nii.gz``. Naming mismatches
are a top complaint about challenge containers, so discovery accepts all of them and
reports ambiguity per case instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from brats_goat.conventions import MODALITIES

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

_NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)


@dataclass
class Case:
    """One case folder: which file holds which modality, and what is wrong with it."""

    case_id: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    reference: Path | None = None
    #: Discovery problems (ambiguous or duplicate files); a case with any is not processed.
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [m for m in MODALITIES if m not in self.files]


def split_suffix(name: str) -> tuple[str, str] | None:
    """``'X-t1c.nii.gz'`` -> ``('X', 't1c')``; ``None`` for a name that is not NIfTI."""
    match = _NIFTI.match(name)
    if not match:
        return None
    stem = match.group("stem")
    parts = re.split(r"[-_]", stem)
    if len(parts) < 2:
        return None
    suffix = parts[-1].lower()
    prefix = stem[: len(stem) - len(parts[-1]) - 1]
    return prefix, suffix


def scan_case(folder: Path, case_id: str | None = None, prefix: str | None = None) -> Case:
    """Assign NIfTI files in ``folder`` to modalities (or a reference label map).

    ``prefix`` restricts the scan to files of one case when several cases share a folder.
    """
    case = Case(case_id=case_id or folder.name, folder=folder)
    for path in nifti_files(folder):
        parts = split_suffix(path.name)
        if parts is None or (prefix is not None and parts[0] != prefix):
            continue
        _, suffix = parts
        if suffix in REFERENCE_SUFFIXES:
            if case.reference is None:
                case.reference = path
            continue
        modality = MODALITY_ALIASES.get(suffix)
        if modality is None:
            continue
        if modality in case.files:
            case.problems.append(
                f"two files for {modality}: {case.files[modality].name} and {path.name}"
            )
            continue
        case.files[modality] = path
    if not case.files:
        names = ", ".join(p.name for p in nifti_files(folder)[:6])
        case.problems.append(
            f"no image named like <ID>-t1n/-t1c/-t2w/-t2f.nii.gz in {folder} (found: {names})"
        )
    return case


def nifti_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and _NIFTI.match(p.name)
    )


def modality_prefixes(folder: Path) -> list[str]:
    """Distinct case prefixes of the modality files directly in ``folder``."""
    prefixes = set()
    for path in nifti_files(folder):
        parts = split_suffix(path.name)
        if parts and parts[1] in MODALITY_ALIASES:
            prefixes.add(parts[0])
    return sorted(prefixes)


def discover_cases(root: str | Path) -> list[Case]:
    """Cases under ``root``: ``root`` itself if it is a case folder, else its sub-folders.

    Files of several cases directly in ``root`` are grouped by file-name prefix. Sub-folders
    without any NIfTI file are ignored (they are not cases). Two case folders
    whose IDs differ only by letter case would write the same output file on a
    case-insensitive file system, so both are flagged as duplicates rather than one silently
    overwriting the other.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"input is not a folder: {root}")
    prefixes = modality_prefixes(root)
    if len(prefixes) == 1:
        cases = [scan_case(root)]
    elif prefixes:  # several cases' files side by side: one case per file-name prefix
        cases = [scan_case(root, case_id=p, prefix=p) for p in prefixes]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        # A sub-folder with NIfTI files but no recognisable modality is reported, not skipped.
        cases = [scan_case(f) for f in folders if nifti_files(f)]
    seen: dict[str, Case] = {}
    for case in cases:
        key = case.case_id.lower()
        if key in seen:
            other = seen[key]
            msg = (
                f"duplicate case ID: folders {other.folder} and {case.folder} "
                "would write the same output file"
            )
            case.problems.append(msg)
            if msg not in other.problems:
                other.problems.append(msg)
        else:
            seen[key] = case
    return cases
