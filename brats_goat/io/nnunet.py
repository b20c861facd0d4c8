"""nnU-Net's numbered channel files (``<ID>_0000.nii.gz`` ..., ``imagesTs``) as cases.

The numbers do not say which sequence each file is, so they are read only in the order a
``dataset.json`` beside them declares; without one the folder is refused with the
conversion to named files (``nnunet_error``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from brats_goat.io.case_folder import Case
from brats_goat.io.errors import DiscoveryError
from brats_goat.io.names import MODALITY_ALIASES, nifti_files

#: nnU-Net's numbered channel files, ``<ID>_0000.nii.gz`` ... (``imagesTs``).
NNUNET_NAME = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})(?P<ext>\.nii(?:\.gz)?)$", re.IGNORECASE)
#: The channel order of nnU-Net's own BraTS conversions (Dataset137_BraTS21, 226
#: BraTS2024-GLI: T1, T1ce, T2, FLAIR), offered in the conversion a refusal prints. Not
#: assumed when reading: the Decathlon's Task01_BrainTumour, nnU-Net's Dataset001, numbers
#: the same files FLAIR, T1w, T1gd, T2w, and a wrong order gives wrong labels in silence.
NNUNET_BRATS_ORDER: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
#: A dataset.json's channel name (lower case, letters and digits only) -> modality: the
#: names nnU-Net's BraTS conversions and the Decathlon's Task01 give.
CHANNEL_NAMES: dict[str, str] = {**MODALITY_ALIASES, "t1w": "t1n", "t2flair": "t2f"}


def nnunet_cases(folder: Path) -> list[str]:
    """IDs of the nnU-Net-style cases directly in ``folder``: of every ``<ID>_NNNN.nii.gz``
    there, once one of them is a channel 0000 (an ``atlas_0001.nii.gz`` alone is none)."""
    found = [m for m in map(NNUNET_NAME.match, (p.name for p in nifti_files(folder))) if m]
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
        match = NNUNET_NAME.match(path.name)
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
    matches = (NNUNET_NAME.match(p.name) for p in nifti_files(folder))
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
