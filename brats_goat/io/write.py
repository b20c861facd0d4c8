"""Atomic output: never leave a partial file behind, and recognise the temporary files a
killed run left, so that the next run can remove them.

Every output (label maps, anomaly maps, QC pictures, reports) is written to a temporary
file ``.<NAME>.<8 random chars>.tmp[.nii.gz|.png]`` in the target's folder (``NAME``
replaced by a digest where that name would be too long, ``temp_key``), flushed to disk,
then renamed onto ``NAME``. A failure (a full disk, a signal) removes the temporary
file; only a SIGKILL or a power cut can leave one, and ``find_temp_files`` finds those.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

#: The names ``write_atomic`` gives its temporary files (``tempfile.mkstemp``'s 8 random
#: characters); ``target`` is the name of the file being written.
TEMP_NAME = re.compile(
    r"^\.(?P<target>.+\.(?:nii\.gz|json|png))\.[a-z0-9_]{8}\.tmp(?:\.nii\.gz|\.png)?$"
)


#: Longest file name (in bytes) of the file systems outputs go to (ext4, XFS, btrfs, NTFS
#: through most drivers): a longer one fails with ``ENAMETOOLONG``.
NAME_MAX = 255
#: The temporary name's characters beyond the target's: ``.``, ``.`` + 8 random, ``.tmp``
#: and the longest suffix (``.nii.gz``).
_TEMP_EXTRA = len("..12345678.tmp.nii.gz")
_EXTENSION = re.compile(r"\.(?:nii\.gz|json|png)$")


def temp_key(name: str) -> str:
    """What a temporary file's name says of its target ``name``: the name itself, or, when
    that would make the temporary name longer than ``NAME_MAX`` bytes (a legal 240-character
    case ID, issue 27), a digest of it with its extension. ``owned_by`` in
    ``brats_goat.run.stale`` computes the same key to recognise a run's own files."""
    if len(name.encode()) + _TEMP_EXTRA <= NAME_MAX:
        return name
    match = _EXTENSION.search(name)
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return digest + (match.group(0) if match else "")


def write_atomic(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Write ``path`` by calling ``write(temporary_name)``, then rename the complete file.

    The temporary file is fsynced before the rename, so a full disk fails here (not later,
    inside a renamed file), and ``os.replace`` is atomic on one file system: a reader sees
    the old file, no file, or the complete new one. On any failure, a signal included, the
    temporary file is removed before the exception goes on. ``suffix`` keeps the extension
    that ``write`` may need to pick a format (``.tmp.nii.gz`` for nibabel).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = ""
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{temp_key(path.name)}.", suffix=suffix, dir=path.parent
        )
        os.close(fd)
        write(tmp_name)
        _fsync(tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _fsync(name: str) -> None:
    """Force the file's data to disk: where space runs out, the error is raised here."""
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_nifti_atomic(image: nib.Nifti1Image, path: str | Path) -> Path:
    """Write ``image`` to ``path`` atomically (``write_atomic``): never a truncated ``.nii.gz``."""
    return write_atomic(path, lambda name: nib.save(image, name), suffix=".tmp.nii.gz")


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically (``write_atomic``), readable by everyone."""

    def write(name: str) -> None:
        with open(name, "w") as fh:
            fh.write(text)

    return write_atomic(path, write)


def find_temp_files(folder: str | Path) -> list[tuple[Path, str]]:
    """``(temporary file, name of the file it was to become)`` for every temporary file of
    ``write_atomic`` directly in ``folder`` (none when the folder does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        match = TEMP_NAME.match(path.name)
        if match and path.is_file():
            found.append((path, match.group("target")))
    return found


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
    # A NIfTI-2 input gets a NIfTI-2 output: its header does not fit a NIfTI-1 image.
    kind = nib.Nifti2Image if isinstance(reference, nib.Nifti2Image) else nib.Nifti1Image
    out = kind(np.asarray(data, dtype=dtype), reference.affine, header)
    qform, qcode = reference.get_qform(coded=True)
    sform, scode = reference.get_sform(coded=True)
    out.set_qform(qform if qform is not None else reference.affine, int(qcode or 0))
    out.set_sform(sform if sform is not None else reference.affine, int(scode or 0))
    # Labels and maps are stored as is: no intensity scaling inherited from the input, nor
    # its display window (cal_max 3000 showed labels 0-3 black), intent or description
    # (the placeholder's text in an input made a real segmentation read as one, issue 27).
    out.header.set_slope_inter(1.0, 0.0)
    out.header["cal_min"] = out.header["cal_max"] = 0  # 0/0: viewers use the data range
    out.header.set_intent("none", (), name="")
    out.header["descrip"] = b""
    out.header["aux_file"] = b""
    return out


#: The NIfTI description of a label map brats-goat wrote (80 bytes at most).
LABELS_DESCRIP = "brats-goat segmentation: 1 NETC, 2 SNFH, 3 ET"


def as_label_map(image: nib.Nifti1Image, descrip: str = LABELS_DESCRIP) -> nib.Nifti1Image:
    """Mark ``image`` (from ``like_reference``) as a BraTS label map: display window 0-3, so
    that a viewer shows every label, and our own description."""
    image.header["cal_min"], image.header["cal_max"] = 0, 3
    image.header["descrip"] = descrip.encode()
    return image
