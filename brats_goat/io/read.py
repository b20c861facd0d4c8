"""Read a case's four NIfTI volumes into one canonical, validated array stack.

The model was trained on axial slices in the BraTS storage order (LPS). Cases stored in
another order (BraTS-MET-00110-000 is RAS) are reoriented on read and oriented back on
write, so results never depend on how the array happens to be stored.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    io_orientation,
    ornt_transform,
)

from brats_goat.conventions import MODALITIES
from brats_goat.io.budget import check_memory
from brats_goat.io.case_folder import other_format_files
from brats_goat.io.discover import Case
from brats_goat.io.errors import CaseError
from brats_goat.io.intensity import sanitise_intensities
from brats_goat.io.sequences import swap_warning
from brats_goat.io.stripped import check_stripped
from brats_goat.parallel import channel_results

#: Storage order the model works in (that of BraTS 2023 releases).
CANONICAL_AXCODES: tuple[str, str, str] = ("L", "P", "S")
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


class CorruptFileError(CaseError):
    """One modality file that cannot be decoded (truncated, not NIfTI): with
    ``allow_missing`` the case goes on without it, as without a missing sequence."""


@dataclass
class CaseVolumes:
    """The modalities of one case, float32, in canonical (LPS) array order.

    Usually all four; a case may lack some as long as it has t2f or t1c (the residuals
    the segmentation is made of). Absent modalities enter the model as zero images.
    """

    case_id: str
    arrays: dict[str, np.ndarray]
    #: Input image whose header geometry every output copies.
    reference: nib.Nifti1Image
    #: nibabel orientation transform from the stored order to canonical.
    to_canonical: np.ndarray
    warnings: list[str] = field(default_factory=list)
    #: The file of each modality, to name it in errors of later stages.
    files: dict[str, str] = field(default_factory=dict)

    @property
    def present(self) -> tuple[str, ...]:
        """The modalities this case has, in the model's channel order."""
        return tuple(m for m in MODALITIES if m in self.arrays)

    def release_images(self) -> None:
        """Free the images (the run does once the case is normalised, unless it draws them
        in a QC picture: 144 MB less at a case's peak, issue 18). ``present``, ``where`` and
        the geometry still answer; ``stack`` no longer can."""
        self.arrays = {m: np.empty((0, 0, 0), dtype=np.float32) for m in self.arrays}

    def stack(self, modalities: tuple[str, ...] = MODALITIES) -> np.ndarray:
        """(C, X, Y, Z) array in the model's channel order; absent modalities are zeros."""
        shape = next(iter(self.arrays.values())).shape
        zeros = np.zeros(shape, dtype=np.float32)
        return np.stack([self.arrays.get(m, zeros) for m in modalities])

    def where(self, modality: str) -> str:
        """``case <ID>: <modality> file <path>``: how errors name one input file."""
        return f"case {self.case_id}: {modality} file {self.files.get(modality, '(unknown)')}"

    def to_stored(self, canonical: np.ndarray) -> np.ndarray:
        """Orient a canonical-order (X, Y, Z) array back to the input's storage order."""
        return np.ascontiguousarray(apply_orientation(canonical, stored_transform(self.reference)))

    def from_stored(self, stored: np.ndarray) -> np.ndarray:
        """An array on the input's grid (a reference label map) in the order of ``arrays``."""
        return np.ascontiguousarray(apply_orientation(stored, self.to_canonical))

    @property
    def resampled(self) -> dict[str, Any] | None:
        """How the case was resampled for the pipeline (``brats_goat.io.resample``); None
        for a case used on its own grid."""
        return None


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


def affine_gap(image: nib.Nifti1Image, reference: nib.Nifti1Image, atol: float) -> str:
    """How far two voxel-to-world matrices are apart, for a message: the largest
    difference of an entry and of a voxel's position (mm), against the tolerance."""
    gap = float(np.abs(image.affine - reference.affine).max())
    if gap <= atol:
        return "affines equal"
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in image.shape[:3]])).reshape(3, -1)
    moved = nib.affines.apply_affine(image.affine, corners.T)
    moved -= nib.affines.apply_affine(reference.affine, corners.T)
    shift = float(np.linalg.norm(moved, axis=1).max())
    return (
        f"affines differ by up to {gap:.3g} in an entry, a voxel placed up to {shift:.3g} mm "
        f"apart; tolerance {atol:g}"
    )


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, atol: float) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=atol)


def load_case(
    case: Case, affine_atol: float = 1e-3, allow_missing: bool = False, skip_corrupt: bool = False
) -> CaseVolumes:
    """Read and validate the modalities of ``case``; raise ``CaseError`` on any problem.

    ``allow_missing``: accept a case without some sequences if it has t2f or t1c
    (inference, and training, which records what each slice lacks). ``skip_corrupt``
    (inference, with ``allow_missing``): a file that cannot be decoded is left out like a
    missing one, with a warning; training and calibration fail on it instead.
    """
    if case.problems:
        raise CaseError(f"case {case.case_id}: " + "; ".join(case.problems))
    if case.missing and (not allow_missing or not {"t1c", "t2f"} & set(case.files)):
        need = "t2f or t1c" if allow_missing else ", ".join(case.missing)
        raise CaseError(
            f"case {case.case_id}: missing modality {', '.join(case.missing)} in {case.folder} "
            f"(needs {need}; expected files like {case.case_id}-t2f.nii.gz)"
        )
    arrays: dict[str, np.ndarray] = {}
    warnings: list[str] = list(case.warnings)
    reference: nib.Nifti1Image | None = None
    ref_modality = ""
    present = [m for m in MODALITIES if m in case.files]
    check_memory(case.case_id, {m: case.files[m] for m in present}, MAX_VOXELS)
    # Two files at a time (gzip and numpy leave the GIL), checked in the modalities' order:
    # the error a case gets is the one reading them in turn would have raised first.
    loads = channel_results(
        lambda m: load_or_corrupt(case.case_id, m, case.files[m], allow_missing and skip_corrupt),
        present,
        pool="file",
    )
    transform = None
    corrupt: dict[str, CorruptFileError] = {}
    with contextlib.closing(loads):
        for modality, loaded in zip(present, loads, strict=True):
            if isinstance(loaded, CorruptFileError):
                corrupt[modality] = loaded
                continue
            image, data, warns = loaded
            warnings += warns
            path = case.files[modality]
            if reference is None:
                reference, ref_modality = image, modality
                transform = canonical_transform(reference)
            elif not same_grid(reference, image, affine_atol):
                raise CaseError(
                    f"case {case.case_id}: {modality} file {path} is on a different grid "
                    f"than {ref_modality} (shape {image.shape[:3]} vs {reference.shape[:3]}, "
                    f"{affine_gap(image, reference, affine_atol)})"
                    "; co-register the modalities first"
                )
            arrays[modality] = in_order_of(transform, data, image)
    warnings = absent_warnings(case, tuple(arrays), corrupt) + warnings
    assert reference is not None and transform is not None
    files = {m: str(case.files[m]) for m in arrays}
    check_distinct(case.case_id, arrays, files)
    check_overlap(case.case_id, arrays, files)
    if swapped := swap_warning(arrays, files):
        warnings.append(swapped)
    return CaseVolumes(case.case_id, arrays, reference, transform, warnings, files)


def load_or_corrupt(
    case_id: str, modality: str, path, skip: bool
) -> tuple[nib.Nifti1Image, np.ndarray, list[str]] | CorruptFileError:
    """``load_canonical``, or (``skip``) the ``CorruptFileError`` of a file that cannot be
    decoded, returned so that the case's other files are still read."""
    try:
        return load_canonical(case_id, modality, path)
    except CorruptFileError as exc:
        if not skip:
            raise
        return exc


def absent_warnings(
    case: Case, used: tuple[str, ...], corrupt: dict[str, CorruptFileError]
) -> list[str]:
    """The warning of a case segmented without some sequences (missing, or their file
    corrupt: issue 27, a truncated t2f failed the whole case); a ``CaseError`` when what
    is left has neither t2f nor t1c (every file broken included)."""
    if corrupt and not {"t1c", "t2f"} & set(used):
        left = f"; {', '.join(used)} alone cannot be segmented" if used else ""
        raise CaseError(
            "; ".join(str(exc) for exc in corrupt.values())
            + f"{left} (a case needs a readable t2f or t1c: replace the file)"
        )
    if not case.missing and not corrupt:
        return []
    others = other_format_files(case)
    passed_over = [p.name for m in case.missing for p in others.get(m, [])]
    lacking = [m for m in MODALITIES if m not in used]
    warning = f"case {case.case_id}: no {', '.join(lacking)}; segmented from {', '.join(used)} only"
    if passed_over:
        warning += f" ({', '.join(passed_over)}: not NIfTI (.nii/.nii.gz), not read)"
    return [warning] + [
        f"{exc}: segmented without it, as without a missing {m} (replace the file to use it)"
        for m, exc in corrupt.items()
    ]


#: Pearson correlation over the brain above which two modalities are one image rescaled
#: (a copy saved with another scaling or type, or with noise added). Distinct sequences of
#: the 31 development cases correlate at most 0.88 (MS-PAT19's t1c and t1n;
#: ``scripts/measure_skull_strip.py --correlations``); a copy of BrainLes-example's t2f with
#: 3% noise, 0.997 (it gave 125,001 ET voxels, "ok", at the former limit of 0.9999).
SAME_IMAGE_CORRELATION = 0.98
#: Dice of two modalities' brain masks (non-zero voxels) below which they are not one
#: co-registered, skull-stripped scan: at least 0.961 on the development cases
#: (BraTS-MET-00110-000), 0.953 with t1c shifted by 3 mm, 0.908 by 6 mm (which gave
#: labels "ok" on the misplaced enhancement).
MIN_MASK_DICE = 0.93
#: Every n-th voxel enters the comparison (enough for four decimals, and cheap).
CORRELATION_STRIDE = 7


def same_image(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal voxel for voxel, or a linear function of each other where both have brain, up
    to noise (``SAME_IMAGE_CORRELATION``)."""
    if np.array_equal(a, b):
        return True
    x, y = a.ravel()[::CORRELATION_STRIDE], b.ravel()[::CORRELATION_STRIDE]
    inside = (x != 0) & (y != 0)
    x, y = x[inside].astype(np.float64), y[inside].astype(np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) > SAME_IMAGE_CORRELATION


def check_overlap(case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]) -> None:
    """``CaseError`` when two modalities' brains do not overlap as one co-registered,
    skull-stripped scan's do (``MIN_MASK_DICE``): a sequence moved against the others
    puts its residual, and so the labels, in the wrong place without any other sign."""
    masks = {m: a != 0 for m, a in arrays.items()}
    sizes = {m: int(np.count_nonzero(v)) for m, v in masks.items()}
    present = list(arrays)
    for i, first in enumerate(present):
        for other in present[i + 1 :]:
            total = sizes[first] + sizes[other]
            both = int(np.count_nonzero(masks[first] & masks[other]))
            overlap = 2 * both / total if total else 1.0
            if overlap < MIN_MASK_DICE:
                raise CaseError(
                    f"case {case_id}: the brains of {first} file {files[first]} and {other} "
                    f"file {files[other]} overlap by Dice {overlap:.3f} only (one co-registered, "
                    f"skull-stripped scan: >= {MIN_MASK_DICE}): co-register the sequences "
                    "and strip them with one brain mask (the BraTS preprocessing)"
                )


def check_distinct(case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]) -> None:
    """``CaseError`` when two modalities hold the same image: one file copied under two
    names (a t1c that is the t2f gave 12x the normal ET; four copies of one file, labels
    unrelated to the tumour), also when saved with another scaling. No two real sequences
    of a scan are one image."""
    present = list(arrays)
    for i, first in enumerate(present):
        same = [m for m in present[i + 1 :] if same_image(arrays[first], arrays[m])]
        if same:
            names = ", ".join(f"{m} file {files[m]}" for m in [first, *same])
            raise CaseError(
                f"case {case_id}: {names} hold the same image (voxel for voxel, or up to a "
                "scale, offset and noise): one file copied under several sequences' names. Put "
                "each sequence's own image in its file (or leave a sequence out: t2f or "
                "t1c is enough)"
            )


def canonical_transform(image: nib.Nifti1Image) -> np.ndarray:
    """The axis flips and swaps that take ``image``'s stored order to the canonical one."""
    return ornt_transform(io_orientation(image.affine), axcodes2ornt(CANONICAL_AXCODES))


def stored_transform(image: nib.Nifti1Image) -> np.ndarray:
    """The flips and swaps that take the canonical order back to ``image``'s stored one."""
    return ornt_transform(axcodes2ornt(CANONICAL_AXCODES), io_orientation(image.affine))


def load_canonical(
    case_id: str, modality: str, path
) -> tuple[nib.Nifti1Image, np.ndarray, list[str]]:
    """``load_image``, reoriented to canonical order (C-contiguous float32) by the same job,
    so that the stored-order array is freed before the next file is read (the peak memory
    of a case read beside another one's refinement, issue 18)."""
    image, data, warnings = load_image(case_id, modality, path)
    return image, _reoriented(data, canonical_transform(image)), warnings


def in_order_of(transform: np.ndarray, canonical: np.ndarray, image: nib.Nifti1Image) -> np.ndarray:
    """``canonical`` (``image`` in its own canonical order) in the order ``transform`` (the
    case's reference file's) gives. The two agree unless the affines, equal within the
    grid tolerance, sit on an orientation's edge (an oblique scan near 45 degrees)."""
    own = canonical_transform(image)
    if np.array_equal(own, transform):
        return canonical
    return _reoriented(apply_orientation(canonical, stored_transform(image)), transform)


def _reoriented(array: np.ndarray, transform: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(apply_orientation(array, transform), dtype=np.float32)


def load_reference_labels(
    case: Case, volumes: CaseVolumes, atol: float = 1e-3
) -> np.ndarray | None:
    """The case's reference label map (or rough mask), in the same canonical order as
    ``volumes``; ``None`` when the case has none."""
    if case.reference is None:
        return None
    image = nib.load(str(case.reference))
    if not same_grid(volumes.reference, image, atol):
        raise CaseError(f"case {case.case_id}: reference {case.reference} is on another grid")
    return volumes.from_stored(np.asarray(image.dataobj).astype(np.uint8))
