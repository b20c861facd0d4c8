"""Atomic NIfTI output: never leave a partial file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np


def write_nifti_atomic(image: nib.Nifti1Image, path: str | Path) -> Path:
    """Write ``image`` to ``path`` through a temporary file in the same folder, then rename.

    ``os.replace`` is atomic on one file system, so a reader (or a crash) sees either the
    old file, no file, or the complete new one; never a truncated ``.nii.gz``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.nii.gz", dir=path.parent)
    os.close(fd)
    try:
        nib.save(image, tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def like_reference(
    data: np.ndarray, reference: nib.Nifti1Image, dtype: type | np.dtype = np.uint8
) -> nib.Nifti1Image:
    """A new image with ``reference``'s exact header geometry (affine, qform/sform codes).

    Copying the header (rather than building one from the affine) keeps qform and sform
    codes as the input had them; the paper's release lost this and wrote identity affines.
    """
    if data.shape != reference.shape[:3]:
        raise ValueError(f"shape {data.shape} does not match reference {reference.shape}")
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    out = nib.Nifti1Image(np.asarray(data, dtype=dtype), reference.affine, header)
    qform, qcode = reference.get_qform(coded=True)
    sform, scode = reference.get_sform(coded=True)
    out.set_qform(qform if qform is not None else reference.affine, int(qcode or 0))
    out.set_sform(sform if sform is not None else reference.affine, int(scode or 0))
    # Labels and maps are stored as is: no intensity scaling inherited from the input.
    out.header.set_slope_inter(1.0, 0.0)
    return out
