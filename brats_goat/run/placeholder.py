"""An empty label map in place of a case that failed (``--on-case-failure placeholder``).

The BraTS orchestrator (the PyPI package ``brats``) counts the files in the output folder
after the container exits: with fewer files than input cases it raises and deletes the
whole output folder, so one broken case would cost every good one. A placeholder keeps the
count right: an all-zero uint8 label map in the geometry of the case's own input, written
only for a case that failed, with ``FAILED`` in its header's description. A case whose
every header is unusable (the one it failed for included) gets the BraTS grid. The failure
itself stays visible everywhere else: the case's ``status`` is ``failed`` in the report,
the log names it, and the orchestrator warns that the file holds only zeros.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import Case
from brats_goat.io.errors import CaseError
from brats_goat.io.grid import BRATS_SHAPE, brats_affine
from brats_goat.io.image import check_header, check_size
from brats_goat.io.write import as_label_map, like_reference, write_nifti_atomic

#: The NIfTI header description of a placeholder (the field holds 80 bytes at most).
PLACEHOLDER_DESCRIP = "brats-goat: FAILED, no segmentation (empty placeholder)"


def geometry_source(case: Case) -> nib.Nifti1Image | None:
    """The first input (in modality order, as ``load_case`` picks its reference) whose
    header passes the checks reading makes before any voxel (``usable_header``); the voxel
    data is not needed, so a truncated file still serves. ``None`` when no header does."""
    for modality in MODALITIES:
        path = case.files.get(modality)
        if path is None:
            continue
        try:
            image = cast(nib.Nifti1Image, nib.load(str(path)))
        except Exception:  # any unreadable header: try the next modality
            continue
        if usable_header(image, f"case {case.case_id}: {modality} file {path}"):
            return image
    return None


def usable_header(image: object, where: str) -> bool:
    """A NIfTI header that ``load_image`` would accept before reading a voxel: a real
    voxel type, a usable affine, at most ``MAX_VOXELS`` voxels in one 3D volume of at least
    ``MIN_VOXELS_PER_AXIS`` per axis. A header the case was refused for (a t1c claiming
    4000^3 voxels) would give a placeholder nobody can hold in memory."""
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        return False
    shape = tuple(image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    try:
        check_header(where, image)
        if len(shape) != 3:
            return False
        check_size(where, shape)
    except (CaseError, ValueError, np.linalg.LinAlgError):
        return False
    return True


def brats_grid() -> nib.Nifti1Image:
    """An image on the BraTS grid (240 x 240 x 155, 1 mm, LPS): the placeholder's geometry
    when no input header of the case is usable."""
    image = nib.Nifti1Image(np.zeros(BRATS_SHAPE, np.uint8), brats_affine())
    image.set_qform(brats_affine(), 1)
    image.set_sform(brats_affine(), 1)
    return image


def write_placeholder(case: Case, output_dir: Path) -> tuple[Path, bool]:
    """Write ``OUTPUT/<ID>.nii.gz`` as an empty label map, in the geometry of the case's
    first usable input header, else on the BraTS grid. Returns the path and whether the
    BraTS grid stood in (then the file may not overlay the case's images)."""
    reference = geometry_source(case)
    on_brats_grid = reference is None
    if reference is None:
        reference = brats_grid()
    image = like_reference(np.zeros(reference.shape[:3], np.uint8), reference, np.uint8)
    as_label_map(image, PLACEHOLDER_DESCRIP)
    path = write_nifti_atomic(image, Path(output_dir) / f"{case.case_id}.nii.gz")
    return path, on_brats_grid


def is_placeholder(path: str | Path) -> bool:
    """True for a label map written by ``write_placeholder``."""
    descrip = cast(nib.Nifti1Image, nib.load(str(path))).header["descrip"].item()
    return descrip.decode(errors="replace").strip() == PLACEHOLDER_DESCRIP
