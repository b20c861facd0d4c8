"""Read a case's NIfTI volumes into one canonical, validated array stack.

Each file is read and checked on its own (``io.image``), put in the model's storage order
(``io.orientation``), then checked against the case's other files (``io.consistency``).
The model was trained on axial slices in the BraTS storage order (LPS). Cases stored in
another order (BraTS-MET-00110-000 is RAS) are reoriented on read and oriented back on
write, so results never depend on how the array happens to be stored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation

from brats_goat.conventions import MODALITIES
from brats_goat.io.budget import check_memory
from brats_goat.io.case_folder import Case, other_format_files
from brats_goat.io.consistency import (
    affine_gap,
    check_distinct,
    check_mirrored,
    check_overlap,
    same_grid,
)
from brats_goat.io.errors import CaseError
from brats_goat.io.image import MAX_VOXELS, CorruptFileError, load_image
from brats_goat.io.orientation import (
    canonical_transform,
    in_order_of,
    reoriented,
    stored_transform,
)
from brats_goat.io.same_patient import other_patient_warnings
from brats_goat.io.sequences import swap_warning
from brats_goat.parallel import channel_results

__all__ = ["CaseError", "CaseVolumes", "load_case", "load_reference_labels"]


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


def load_case(
    case: Case, affine_atol: float = 1e-3, allow_missing: bool = False, skip_corrupt: bool = False
) -> CaseVolumes:
    """Read and validate the modalities of ``case``; raise ``CaseError`` on any problem.

    ``allow_missing``: accept a case without some sequences if it has t2f or t1c
    (inference, and training, which records what each slice lacks). ``skip_corrupt``
    (inference, with ``allow_missing``): a file that cannot be decoded is left out like a
    missing one, with a warning (so is one whose data look mirrored against the
    others'); training and calibration fail on it instead.
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
            assert transform is not None  # set with the first readable file
            arrays[modality] = in_order_of(transform, data, image)
    absent = absent_warnings(case, tuple(arrays), corrupt)
    assert reference is not None and transform is not None
    files = {m: str(case.files[m]) for m in arrays}
    check_distinct(case.case_id, arrays, files)
    check_overlap(case.case_id, arrays, files)
    if mirrored := check_mirrored(case.case_id, arrays, files):
        if not (allow_missing and skip_corrupt):
            raise next(iter(mirrored.values()))
        corrupt |= mirrored
        arrays = {m: a for m, a in arrays.items() if m not in mirrored}
        files = {m: f for m, f in files.items() if m not in mirrored}
        absent = absent_warnings(case, tuple(arrays), corrupt)
    warnings = absent + warnings
    if swapped := swap_warning(arrays, files):
        warnings.append(swapped)
    warnings += other_patient_warnings(case.case_id, arrays, files)
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


def load_canonical(
    case_id: str, modality: str, path
) -> tuple[nib.Nifti1Image, np.ndarray, list[str]]:
    """``load_image``, reoriented to canonical order (C-contiguous float32) by the same job,
    so that the stored-order array is freed before the next file is read (the peak memory
    of a case read beside another one's refinement, issue 18)."""
    image, data, warnings = load_image(case_id, modality, path)
    return image, reoriented(data, canonical_transform(image)), warnings


def load_reference_labels(
    case: Case, volumes: CaseVolumes, atol: float = 1e-3
) -> np.ndarray | None:
    """The case's reference label map (or rough mask), in the same canonical order as
    ``volumes``; ``None`` when the case has none."""
    if case.reference is None:
        return None
    image = cast(nib.Nifti1Image, nib.load(str(case.reference)))
    if not same_grid(volumes.reference, image, atol):
        raise CaseError(f"case {case.case_id}: reference {case.reference} is on another grid")
    return volumes.from_stored(np.asarray(image.dataobj).astype(np.uint8))
