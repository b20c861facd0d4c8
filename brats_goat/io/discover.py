"""Find BraTS cases in a folder, whatever naming generation they use.

Challenge data arrives with 2023 names (``<ID>-t1n.nii.gz``), legacy names
(``<ID>_t1ce.nii``), ``-`` or ``_`` separators and ``.nii`` or ``.nii.gz``. Naming mismatches
are a top complaint about challenge containers, so discovery accepts all of them and
reports ambiguity per case instead of guessing.

The layout rule (docs/cli.md, "Which folders are cases"): a folder that directly holds
modality files is a case folder; INPUT itself is one only when none of its sub-folders is.
Other folders are searched for case folders down to ``MAX_CASE_DEPTH`` levels below INPUT.
A layout that could be read two ways (image files next to case folders) or that hides
images deeper than the search goes is refused as a whole (``DiscoveryError``), because
picking one reading would drop cases in silence. A folder that cannot be listed becomes a
case with a problem, so one unreadable folder fails alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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

# DOTALL: a name with a newline in it is still a name (it used to be skipped in silence).
_NIFTI = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE | re.DOTALL)

#: Folder levels below INPUT searched for case folders (``INPUT/<ID>/`` is level 1), so
#: ``INPUT/<cohort>/<split>/<ID>/`` is still found.
MAX_CASE_DEPTH = 3
#: Folders that are never cases: ext4's ``lost+found`` is root-only on a mounted volume and
#: would otherwise fail as an unreadable case in every non-root container run.
IGNORED_FOLDERS: frozenset[str] = frozenset({"lost+found"})
#: How many names an error message lists before it says how many there are in all.
LISTED_NAMES = 6

#: nnU-Net's numbered channel files, ``<ID>_0000.nii.gz`` ... (``imagesTs``).
_NNUNET = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})(?P<ext>\.nii(?:\.gz)?)$", re.IGNORECASE)
#: The channel order of nnU-Net's own BraTS conversions (Dataset137_BraTS21, 226
#: BraTS2024-GLI: T1, T1ce, T2, FLAIR), offered in the conversion a refusal prints. Not
#: assumed when reading: the Decathlon's Task01_BrainTumour, nnU-Net's Dataset001, numbers
#: the same files FLAIR, T1w, T1gd, T2w, and a wrong order gives wrong labels in silence.
NNUNET_BRATS_ORDER: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
#: A dataset.json's channel name (lower case, letters and digits only) -> modality: the
#: names nnU-Net's BraTS conversions and the Decathlon's Task01 give.
CHANNEL_NAMES: dict[str, str] = {**MODALITY_ALIASES, "t1w": "t1n", "t2flair": "t2f"}


class DiscoveryError(Exception):
    """INPUT as a whole cannot be read as a set of cases: a usage error, no case is run."""


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


def folder_id(folder: Path) -> str:
    """The case ID a folder gives: its name, taken from the resolved path when the path
    names none (``.``, ``..``, ``CASE/..``), so that ``cd CASE && brats-goat predict . OUT``
    writes ``OUT/CASE.nii.gz``, not the hidden ``OUT/.nii.gz``."""
    if folder.name not in ("", ".", ".."):
        return folder.name
    return folder.resolve().name


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
    for path in files:
        parts = split_suffix(path.name)
        if parts is None or (prefix is not None and parts[0] != prefix):
            continue
        _, suffix = parts
        if suffix in REFERENCE_SUFFIXES:
            if case.reference is None and path.is_file():
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
        if _is_dangling(path):
            case.problems.append(dangling_problem(modality, path))
        elif not path.is_file():
            case.problems.append(
                f"{modality} file {path} is not a regular file (it is {_kind(path)}); "
                "put the image file there"
            )
    if prefix is None:
        check_one_prefix(case)
    if prefix == "" and case.files:
        names = ", ".join(p.name for p in case.files.values())
        case.problems.append(
            f"{names} in {folder}: no case ID before the modality in the file name "
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


def check_one_prefix(case: Case) -> None:
    """A case folder's modality files must be one case's: files of two prefixes (``P1-t1n``
    beside ``P2-t2f``) would mix two patients in one segmentation, so they are a problem.
    One prefix unlike the folder's name is used (the case ID is the folder's), with a
    warning: the output is named after the folder, not the files."""
    prefixes: dict[str, list[str]] = {}
    for path in case.files.values():
        parts = split_suffix(path.name)
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


def other_format_modality_files(folder: Path) -> list[Path]:
    """Regular files directly in ``folder`` named like a modality but not NIfTI
    (``X-t1n.mha``, ``X_flair.img``): a case folder in a format brats-goat does not read."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if _other_format_modality(p) is not None]


def _other_format_modality(path: Path) -> tuple[str, str] | None:
    """(prefix, modality) of a non-NIfTI file named like a modality file, else None."""
    if path.name.startswith(".") or _NIFTI.match(path.name) or "." not in path.name:
        return None
    if not path.is_file():
        return None
    parts = split_suffix(path.name.split(".", 1)[0] + ".nii")
    if parts is None or parts[1] not in MODALITY_ALIASES:
        return None
    return parts[0], MODALITY_ALIASES[parts[1]]


def other_format_files(case: Case) -> dict[str, list[Path]]:
    """Files of ``case`` named like a modality but in another format (``X-t1n.img``,
    ``X_flair.mha``, ``X-t2w.nii.bz2``): never read, so the modality counts as absent. By
    modality, so that the warning about an absent modality can name what was passed over."""
    found: dict[str, list[Path]] = {}
    for path in other_format_modality_files(case.folder):
        prefix, modality = _other_format_modality(path) or ("", "")
        if prefix == case.case_id or folder_id(case.folder) == case.case_id:
            found.setdefault(modality, []).append(path)
    return found


def nifti_files(folder: Path) -> list[Path]:
    """Entries directly in ``folder`` named like NIfTI files, hidden ones left out.

    Not only regular files: a dangling symbolic link, a folder or a FIFO named like an
    image is kept, so that it fails its case as what it is instead of passing as an absent
    modality (and a FIFO is never opened: reading it would wait forever).
    """
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and _NIFTI.match(p.name)
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


def listed(paths: list[Path], under: Path | None = None) -> str:
    """Names for a message (relative to ``under``): the first few, then how many in all."""
    names = ", ".join(str(p.relative_to(under)) if under else p.name for p in paths[:LISTED_NAMES])
    return names + (f", ... ({len(paths)} in all)" if len(paths) > LISTED_NAMES else "")


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
        images = [Path(parent) / f for f in sorted(files) if _NIFTI.match(f)]
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


def nnunet_cases(folder: Path) -> list[str]:
    """IDs of the nnU-Net-style cases directly in ``folder``: of every ``<ID>_NNNN.nii.gz``
    there, once one of them is a channel 0000 (an ``atlas_0001.nii.gz`` alone is none)."""
    found = [m for m in map(_NNUNET.match, (p.name for p in nifti_files(folder))) if m]
    if not any(m["channel"] == "0000" for m in found):
        return []
    return sorted({m["id"] for m in found})


def dataset_channels(folder: Path) -> tuple[Path | None, dict[str, str] | str]:
    """The channel order an nnU-Net ``dataset.json`` in ``folder`` or its parent (where
    nnU-Net keeps it, beside ``imagesTs``) declares: its path and channel (``'0000'``) ->
    modality, or why it gives none; ``(None, ...)`` when there is no dataset.json."""
    path = next(
        (p for p in (folder / "dataset.json", folder.parent / "dataset.json") if p.is_file()), None
    )
    if path is None:
        return None, "no dataset.json beside them"
    try:
        data = json.loads(path.read_text())
        names = data.get("channel_names") or data.get("modality")  # nnU-Net v2, v1
        channels = {f"{int(k):04d}": str(v) for k, v in names.items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return path, f"{path} gives no channel_names ({type(exc).__name__})"
    order = {
        k: CHANNEL_NAMES.get(re.sub(r"[^a-z0-9]", "", v.lower()), "") for k, v in channels.items()
    }
    unknown = [f"{k} {channels[k]!r}" for k, m in order.items() if not m]
    if unknown or len(set(order.values())) != len(order):
        why = f"unknown {', '.join(unknown)}" if unknown else "two channels name one sequence"
        return path, f"{path} names channels brats-goat cannot map to t1n/t1c/t2w/t2f ({why})"
    return path, order


def nnunet_case(folder: Path, case_id: str, order: dict[str, str], source: Path) -> Case:
    """One nnU-Net case, its channel files mapped by ``order`` (from ``source``); a channel
    the dataset.json does not name is a problem, one it names but that is absent is a
    missing sequence, as in a case folder."""
    case = Case(case_id=case_id, folder=folder)
    for path in nifti_files(folder):
        match = _NNUNET.match(path.name)
        if match is None or match["id"] != case_id:
            continue
        modality = order.get(match["channel"])
        if modality is None:
            case.problems.append(f"{path.name}: channel {match['channel']} is not in {source}")
        elif modality in case.files:
            case.problems.append(
                f"two files for {modality}: {case.files[modality].name} and {path.name}"
            )
        else:
            case.files[modality] = path
    named = ", ".join(f"{k} {m}" for k, m in sorted(order.items()))
    case.warnings.append(f"nnU-Net channel files read in the order {source} gives: {named}")
    return case


def nnunet_error(folder: Path, ids: list[str], why: str) -> DiscoveryError:
    """nnU-Net's numbered channels say nothing of which sequence each is: without a
    dataset.json that names them, refuse, and give the conversion to named files in the
    order of nnU-Net's own BraTS datasets."""
    matches = (_NNUNET.match(p.name) for p in nifti_files(folder))
    first = next(m for m in matches if m is not None and m["channel"] == "0000")
    ext = first["ext"]
    moves = " && ".join(
        f'mv "${{id}}_{i:04d}{ext}" "$id/$id-{m}{ext}"' for i, m in enumerate(NNUNET_BRATS_ORDER)
    )
    where = shlex.quote(str(folder))
    return DiscoveryError(
        f"{folder} holds nnU-Net-style channel files ({first.group(0)} ..., {len(ids)} "
        "case(s)), whose numbers do not say which sequence each is (nnU-Net's BraTS "
        "datasets: 0000 t1n, 0001 t1c, 0002 t2w, 0003 t2f; the Decathlon's BrainTumour: "
        f"0000 FLAIR, 0001 T1w, 0002 T1gd, 0003 T2w) and {why}; check the channel_names "
        "of your dataset.json, then put it beside them or make case folders, for the BraTS "
        "order: "
        f'cd {where} && for f in *_0000{ext}; do id="${{f%_0000{ext}}}"; '
        f'mkdir "$id" && {moves}; done'
    )


def nnunet_folder(root: Path, folder: Path, depth: int, ids: list[str]) -> list[Case]:
    """The cases of a folder of nnU-Net channel files: read in the order its dataset.json
    declares, else refused (``nnunet_error``), as is one next to case folders."""
    source, order = dataset_channels(folder)
    if source is None or isinstance(order, str):
        raise nnunet_error(folder, ids, order if isinstance(order, str) else "")
    nested = case_folders_below(folder, depth)
    if nested:
        channel_files = [p for p in nifti_files(folder) if _NNUNET.match(p.name)]
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
