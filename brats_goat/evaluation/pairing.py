"""Which files of the prediction and reference folders are label maps, and of which case.

Pairs ``PRED/<ID>.nii.gz`` with ``REF/<ID>-seg.nii.gz`` (or BraTS 2021's ``_seg``),
``REF/<ID>-ref.nii.gz`` or ``REF/<ID>.nii.gz`` (each also ``.nii``), directly in REF or in
BraTS case folders ``REF/<ID>/``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FolderLayout:
    """How files are recognised; tolerances of the geometry check."""

    extension: str = ".nii.gz"
    #: Extensions of references, in order of preference: what ``predict`` reads, reads here.
    reference_extensions: tuple[str, ...] = (".nii.gz", ".nii")
    #: Reference names tried for case ``<ID>``, in order of preference (``_seg``: BraTS
    #: 2021 and earlier).
    reference_suffixes: tuple[str, ...] = ("-seg", "_seg", "-ref", "_ref", "")
    #: Files in the prediction folder that are not label maps: hidden ones, and the anomaly
    #: maps of ``predict --save-maps`` (unless a reference has that ID: a case may be named
    #: ``X-anomaly-t2f``).
    ignore_prediction: str = r"^\."
    anomaly_map: str = r"-anomaly-"
    #: A plain ``<ID>.nii.gz`` directly in REF is not a reference if it is an MRI channel.
    image_suffix: str = r"[-_](t1n|t1c|t2w|t2f|t1|t1ce|t2|flair)$"
    #: Affines may differ by float32 header rounding.
    affine_atol: float = 1e-3
    csv_name: str = "metrics.csv"
    json_name: str = "metrics.json"


DEFAULT_LAYOUT = FolderLayout()


def _strip(name: str, extension: str) -> str | None:
    return name[: -len(extension)] if name.endswith(extension) else None


def find_predictions(
    pred_dir: Path, layout: FolderLayout = DEFAULT_LAYOUT, references: Collection[str] = ()
) -> dict[str, Path]:
    """``<ID>.nii.gz`` label maps directly in the prediction folder; a name with
    ``-anomaly-`` in it is an anomaly map, unless it is the ID of one of ``references``."""
    ignore, anomaly = re.compile(layout.ignore_prediction), re.compile(layout.anomaly_map)
    out = {}
    for path in sorted(pred_dir.iterdir()):
        case = _strip(path.name, layout.extension)
        if not case or not path.is_file() or ignore.search(path.name):
            continue
        if anomaly.search(path.name) and case not in references:
            continue
        out[case] = path
    return out


def find_references(ref_dir: Path, layout: FolderLayout = DEFAULT_LAYOUT) -> dict[str, Path]:
    """References directly in REF or in case folders, preferring ``-seg`` over ``-ref``/plain
    and ``.nii.gz`` over ``.nii``."""
    image = re.compile(layout.image_suffix)
    found: dict[str, dict[tuple[int, int], Path]] = {}  # case -> (suffix, extension) -> path

    def add(case: str, suffix: str, ext: str, path: Path) -> None:
        rank = (layout.reference_suffixes.index(suffix), layout.reference_extensions.index(ext))
        found.setdefault(case, {}).setdefault(rank, path)

    entries = sorted(ref_dir.iterdir())
    for path in entries:  # flat files first: they win over case folders
        named = _reference_name(path.name, layout)
        if named is None or not path.is_file():
            continue
        stem, ext = named
        for suffix in layout.reference_suffixes:
            if suffix and stem.endswith(suffix):
                add(stem[: -len(suffix)], suffix, ext, path)
                break
        else:
            if "" in layout.reference_suffixes and not image.search(stem):
                add(stem, "", ext, path)
    for folder in entries:
        if not folder.is_dir():
            continue
        for suffix in layout.reference_suffixes:
            for ext in layout.reference_extensions:
                path = folder / f"{folder.name}{suffix}{ext}"
                if path.is_file():
                    add(folder.name, suffix, ext, path)
    return {case: by[min(by)] for case, by in sorted(found.items())}


def _reference_name(name: str, layout: FolderLayout) -> tuple[str, str] | None:
    """``(stem, extension)`` of a file named like a reference, else ``None``."""
    for ext in layout.reference_extensions:
        stem = _strip(name, ext)
        if stem:
            return stem, ext
    return None
