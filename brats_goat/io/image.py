"""Read one NIfTI file fully and refuse, named, what is no brain scan.

A wrong file (truncated, complex, a single slice, a corrupt header, a skull left on) fails
here with the case, the modality and the path in its message, instead of giving garbage
labels later. The per-case reader (``read``) calls ``load_image`` once per modality.
"""

from __future__ import annotations

import gzip
import os
import zlib

import nibabel as nib
import numpy as np

from brats_goat.io.errors import CaseError
from brats_goat.io.intensity import border_values, sanitise_intensities
from brats_goat.io.stripped import check_stripped

#: Fewest voxels along any axis of a volume that is segmented. A single slice or a 10 mm
#: cube is no brain scan: its "brain", statistics and 3D components are meaningless, and a
#: quiet "ok" on it would hide a wrong file. Thick-slice clinical scans (24+ slices) pass.
MIN_VOXELS_PER_AXIS = 16
#: Largest difference between a valid qform and a valid sform that is not warned about
#: (the qform's quaternion storage rounds an sform by up to ~1e-4).
QFORM_SFORM_ATOL = 1e-3
#: Most voxels a volume may have (1024^3: 4 GiB as float32, 1800x as many as a BraTS
#: volume). A header that claims more is corrupt or not a brain scan; reading it would
#: end in a MemoryError (a 10-byte file whose header says 4000^3 voxels), never a result.
MAX_VOXELS = 1024**3
#: Smallest voxel volume (mm^3) of a usable voxel-to-world matrix: below it the matrix is
#: singular (a zero voxel size, parallel axes) or the voxels are no scan's (0.01 mm cubes).
MIN_VOXEL_VOLUME = 1e-6
#: An integer image whose values wrapped around its type (stored in one too small for
#: them: int16 above 32767 becomes negative) has voxels below WRAP_SHARE x the type's
#: minimum while its brightest pass WRAP_SHARE x its maximum. The 97 int16 files of the
#: development data reach at most 0.47 of the maximum (BraTS-GLI-00001-000's t1c) and
#: 0.004 of the minimum (TCGA-DU-7294's t2w, -122: interpolation ringing); t1c stored x45
#: as int16 wraps 12,160 brain voxels, down to about -32,768.
WRAP_SHARE = 0.5


class CorruptFileError(CaseError):
    """One modality file that cannot be decoded (truncated, not NIfTI): with
    ``allow_missing`` the case goes on without it, as without a missing sequence."""


def load_image(case_id: str, modality: str, path) -> tuple[nib.Nifti1Image, np.ndarray, list[str]]:
    """Load one volume fully (so truncation is detected now) and validate it: its shape,
    its intensities (``brats_goat.io.intensity``: a background of 0, a brain that is an
    image) and that it is skull-stripped (``brats_goat.io.stripped``), so that a wrong file
    fails here, named, instead of giving garbage labels."""
    where = f"case {case_id}: {modality} file {path}"
    check_readable(where, path)
    try:
        image = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, gzip.BadGzipFile, OSError, EOFError) as exc:
        raise CorruptFileError(
            f"{where} is not a readable NIfTI image ({exc}){_hint(path)}"
        ) from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise CaseError(f"{where} is not a NIfTI image (got {type(image).__name__})")
    check_header(where, image)
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise CorruptFileError(f"{where} is truncated or corrupt ({exc})") from exc
    except MemoryError as exc:
        raise CaseError(
            f"{where}: not enough memory to read it (shape {image.shape}, "
            f"{_gib(image.shape)} as float32)"
        ) from exc
    check_scaling(where, image, data)
    check_wraparound(where, image, data)
    while data.ndim > 3 and data.shape[-1] == 1:  # (X, Y, Z, 1) or (X, Y, Z, 1, 1): 3D
        data = data[..., 0]
    if data.ndim != 3:
        raise CaseError(f"{where} has shape {data.shape}: a single 3D volume is required")
    check_size(where, data.shape)
    data, warnings = sanitise_intensities(where, data)
    check_stripped(where, modality, data)
    return image, data, header_warnings(where, image) + warnings


def _hint(path: str | os.PathLike[str]) -> str:
    """What to do about a file nibabel cannot place: a gzip stream named ``.nii`` (it
    reads ``.nii`` as uncompressed) is the common one."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError:
        return ""
    if magic == b"\x1f\x8b" and str(path).lower().endswith(".nii"):
        return ": it is gzip-compressed but named .nii; rename it to end in .nii.gz (or gunzip it)"
    return ""


def header_warnings(where: str, image: nib.Nifti1Image) -> list[str]:
    """A qform and an sform that both claim to be valid but place the image differently:
    nibabel (and so brats-goat) uses the sform, ITK-based tools the qform. The output
    copies both, so it overlays its input in either; the user should know the two disagree."""
    qform, qcode = image.get_qform(coded=True)
    sform, scode = image.get_sform(coded=True)
    if not qcode or not scode or qform is None or sform is None:
        return []
    gap = float(np.abs(qform - sform).max())
    if gap <= QFORM_SFORM_ATOL:
        return []
    return [
        f"{where}: its qform and sform disagree (largest difference {gap:.3g}); the sform "
        "is used, as nibabel does (ITK-based tools use the qform), and the output keeps both"
    ]


def _gib(shape: tuple[int, ...]) -> str:
    return f"{float(np.prod(shape, dtype=np.float64)) * 4 / 2**30:.3g} GiB"


def check_header(where: str, image: nib.Nifti1Image) -> None:
    """Refuse, before any voxel is read, what the header alone shows to be no scan: complex
    voxels (k-space or phase data: their real part is no magnitude image, and nibabel
    would drop the imaginary part in silence), a voxel-to-world matrix that is singular or
    not finite (no orientation, no grid to compare the modalities on) and more voxels than
    any brain scan has."""
    dtype = image.get_data_dtype()
    if dtype.kind == "c":
        raise CaseError(
            f"{where} holds complex voxels ({dtype}): a magnitude image is required "
            "(reconstruct the magnitude, e.g. abs(), before segmenting)"
        )
    if dtype.kind not in "biuf":
        raise CaseError(f"{where} holds voxels of type {dtype}: not an intensity image")
    affine = image.affine
    finite = bool(np.isfinite(affine).all())
    if not finite or abs(np.linalg.det(affine[:3, :3])) < MIN_VOXEL_VOLUME:
        what = _singular(affine) if finite else "entries that are not finite"
        raise CaseError(
            f"{where}: its header's voxel-to-world matrix has {what} "
            f"({np.round(affine[:3], 4).tolist()}): no grid to segment on; fix the "
            "file's sform/qform"
        )
    voxels = float(np.prod(image.shape, dtype=np.float64))
    if voxels > MAX_VOXELS:
        raise CaseError(
            f"{where}: its header claims shape {image.shape} ({voxels:.3g} voxels, "
            f"{_gib(image.shape)} as float32), more than any brain scan "
            f"(at most {MAX_VOXELS} voxels): a corrupt header or not a scan"
        )


def _singular(affine: np.ndarray) -> str:
    """What makes a finite voxel-to-world matrix unusable, for a message: a voxel size of
    0, axes (nearly) parallel, or voxels too small to be a scan's (0.001 mm is no zero)."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    listed = ", ".join(f"{v:.3g}" for v in sizes)
    if sizes.min() == 0:
        return f"a zero voxel size or axis (voxel sizes {listed} mm)"
    volume = abs(np.linalg.det(affine[:3, :3]))
    if volume < 1e-3 * float(np.prod(sizes)):
        return f"axes that are (nearly) parallel (voxel sizes {listed} mm)"
    return (
        f"voxels of {listed} mm ({volume:.3g} mm^3; a scan's are at least "
        f"{MIN_VOXEL_VOLUME:g} mm^3)"
    )


def check_scaling(where: str, image: nib.Nifti1Image, data: np.ndarray) -> None:
    """Integer voxels are finite: when they read as NaN/Inf, the header's scaling
    (``scl_slope``, ``scl_inter``) overflowed float32. Say so, rather than let the image
    pass as one whose voxels were NaN (or as an empty one, once they are replaced)."""
    slope = float(getattr(image.dataobj, "slope", 1.0))
    inter = float(getattr(image.dataobj, "inter", 0.0))
    if image.get_data_dtype().kind not in "biu" or (slope, inter) == (1.0, 0.0):
        return
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise CaseError(
            f"{where}: its header's intensity scaling (scl_slope {slope:g}, scl_inter "
            f"{inter:g}) overflows float32 ({bad} voxels become infinite); fix "
            "scl_slope/scl_inter"
        )


def check_wraparound(where: str, image: nib.Nifti1Image, data: np.ndarray) -> None:
    """``CorruptFileError`` when a signed-integer image's values wrapped around its type
    (``WRAP_SHARE``): its brightest voxels then read as very negative, and the tumour's
    enhancement as the darkest brain (ET 0 in the probe). Float images (z-scored input)
    cannot wrap and are not checked."""
    dtype = image.get_data_dtype()
    if dtype.kind != "i":
        return
    slope = float(getattr(image.dataobj, "slope", 1.0)) or 1.0
    inter = float(getattr(image.dataobj, "inter", 0.0))
    low, high = float(data.min()), float(data.max())
    limits = np.iinfo(dtype)
    stored_low, stored_high = sorted(((low - inter) / slope, (high - inter) / slope))
    if stored_low > WRAP_SHARE * limits.min or stored_high < WRAP_SHARE * limits.max:
        return
    negative = int(np.count_nonzero(data < 0))
    # No negative intensity (a scaled header whose 0 is stored as the type's minimum), or
    # no background of 0: not a scan's values wrapped around.
    if not negative or np.mean(border_values(data) == 0) < 0.5:
        return
    raise CorruptFileError(
        f"{where}: its intensities wrapped around the integer type ({dtype}): {negative} "
        f"voxels are negative, down to {low:g}, while the brightest reach {high:g}, near "
        f"the type's maximum {limits.max}: the values were stored in a type too small for "
        "them; convert the image again into a wider type (float32 or int32)"
    )


def check_readable(where: str, path: str | os.PathLike[str]) -> None:
    """Name a permission problem as one: nibabel turns it into "Could not read file"."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError as exc:
        raise CaseError(
            f"{where} cannot be read: permission denied (give the user running brats-goat "
            "read permission on it)"
        ) from exc
    except OSError:
        return  # missing, a folder, ...: nibabel's own error says it


def check_size(where: str, shape: tuple[int, ...]) -> None:
    """Refuse a volume too small on some axis to be a brain scan (``MIN_VOXELS_PER_AXIS``)."""
    if min(shape) < MIN_VOXELS_PER_AXIS:
        raise CaseError(
            f"{where} has shape {tuple(shape)}: at least {MIN_VOXELS_PER_AXIS} voxels per "
            "axis are needed (a single slice or a tiny crop is not a brain scan)"
        )
