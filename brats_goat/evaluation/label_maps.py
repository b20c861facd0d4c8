"""Read a label map for scoring, and refuse one that holds no BraTS 2023 labels.

A legacy map (ET = 4) or a probability map scored as it is would give wrong scores without
a word; each is a ``LabelError`` naming the file and the values instead.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np


class LabelError(ValueError):
    """A label map holds values that are not BraTS 2023 labels; that case is not scored."""


#: Labels of a BraTS 2023 label map: background, NETC, SNFH, ET.
VALID_LABELS: tuple[int, ...] = (0, 1, 2, 3)
#: ET before BraTS 2023 (2017-2021 releases); ``legacy_et4`` reads it as 3.
LEGACY_ET = 4
#: A float label map may carry header rounding (2.0000001); farther from a whole number it
#: is not a label map (a probability map, a resampled map) and is refused.
LABEL_ROUNDING_TOLERANCE = 1e-3


def load_labels(
    path: Path, legacy_et4: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Integer labels, affine and voxel spacing (mm) of a label map."""
    try:
        img = cast(nib.Nifti1Image, nib.load(str(path)))
        data = np.asanyarray(img.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, zlib.error, OSError, ValueError) as exc:
        # EOFError of a truncated gzip names neither the file nor what it means
        raise ValueError(
            f"{path}: not a readable NIfTI label map (truncated or corrupt: {exc})"
        ) from exc
    while data.ndim > 3 and data.shape[-1] == 1:  # (X, Y, Z, 1): one volume, as predict reads
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a 3-D label map, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        data = whole_numbers(data, path)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
    # Checked before the cast, which would wrap a value such as 65539 round to a label.
    labels = check_labels(data, path, legacy_et4).astype(np.int16, copy=False)
    return labels, np.asarray(img.affine), spacing


def whole_numbers(data: np.ndarray, path: Path) -> np.ndarray:
    """A float label map rounded to whole numbers; refused when it is not one (NaN, or
    values such as probabilities that rounding would silently turn into labels)."""
    rounded = np.rint(data)
    off = ~(np.abs(data - rounded) <= LABEL_ROUNDING_TOLERANCE)  # NaN counts as off
    if off.any():
        examples = ", ".join(f"{v:g}" for v in np.unique(data[off])[:5])
        raise LabelError(
            f"{path} holds values that are not whole numbers ({examples}, in "
            f"{int(off.sum())} voxels): a label map holds the labels 0, 1, 2, 3"
        )
    return rounded


def check_labels(data: np.ndarray, path: Path, legacy_et4: bool = False) -> np.ndarray:
    """``data`` if it holds only BraTS 2023 labels; with ``legacy_et4`` label 4 becomes 3.

    Anything else is a ``LabelError`` naming the file and the values: scoring a legacy map
    as it is would give ET a Dice of 0 without a word.
    """
    if data.min() >= min(VALID_LABELS) and data.max() <= max(VALID_LABELS):
        return data  # the usual case, without a full np.unique
    if legacy_et4:
        data = np.where(data == LEGACY_ET, VALID_LABELS[-1], data)
    values = np.unique(data)
    bad = values[~np.isin(values, VALID_LABELS)]
    if bad.size:
        hint = (
            " (4 is ET in BraTS releases before 2023: pass --legacy-et4 to read it as 3)"
            if LEGACY_ET in bad
            else ""
        )
        raise LabelError(
            f"{path} holds labels {', '.join(map(str, bad[:10]))} outside 0, 1, 2, 3{hint}"
        )
    return data
