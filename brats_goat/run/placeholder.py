"""An empty label map in place of a case that failed (``--on-case-failure placeholder``).

The BraTS orchestrator (the PyPI package ``brats``) counts the files in the output folder
after the container exits: with fewer files than input cases it raises and deletes the
whole output folder, so one broken case would cost every good one. A placeholder keeps the
count right: an all-zero uint8 label map in the geometry of the case's own input, written
only for a case that failed, with ``FAILED`` in its header's description. The failure
itself stays visible everywhere else: the case's ``status`` is ``failed`` in the report,
the log names it, and the orchestrator warns that the file holds only zeros.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import Case
from brats_goat.io.write import like_reference, write_nifti_atomic

#: The NIfTI header description of a placeholder (the field holds 80 bytes at most).
PLACEHOLDER_DESCRIP = "brats-goat: FAILED, no segmentation (empty placeholder)"


def geometry_source(case: Case) -> nib.Nifti1Image | None:
    """The first input (in modality order, as ``load_case`` picks its reference) whose
    header can be read; the voxel data is not needed, so a truncated file still serves."""
    for modality in MODALITIES:
        path = case.files.get(modality)
        if path is None:
            continue
        try:
            image = nib.load(str(path))
        except Exception:  # any unreadable header: try the next modality
            continue
        if isinstance(image, nib.Nifti1Image | nib.Nifti2Image) and len(image.shape) in (3, 4):
            return image
    return None


def write_placeholder(case: Case, output_dir: Path) -> Path | None:
    """Write ``OUTPUT/<ID>.nii.gz`` as an empty label map; ``None`` when no input header of
    the case can be read (then there is no geometry to give it, and nothing is written)."""
    reference = geometry_source(case)
    if reference is None:
        return None
    image = like_reference(np.zeros(reference.shape[:3], np.uint8), reference, np.uint8)
    image.header["descrip"] = PLACEHOLDER_DESCRIP.encode()
    return write_nifti_atomic(image, Path(output_dir) / f"{case.case_id}.nii.gz")


def is_placeholder(path: str | Path) -> bool:
    """True for a label map written by ``write_placeholder``."""
    descrip = nib.load(str(path)).header["descrip"].item()
    return descrip.decode(errors="replace").strip() == PLACEHOLDER_DESCRIP
