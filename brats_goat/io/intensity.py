"""Intensity sanity of one input volume: a background of 0 and a brain that is an image.

Everything after reading assumes the BraTS preprocessing: skull-stripped images whose
background is exactly 0, so that "brain" means "not 0" (``stages.normalise.brain_mask``).
An input that breaks that assumption used to pass with garbage and exit 0: data already
z-scored over the whole volume (a constant negative background: the whole volume became
brain), a header ``scl_inter`` offset (a background of -1000: all-zero labels), negated
intensities, a constant image. The rule (docs/how-it-works.md, "Input intensities"):

* The background is the most common value on the volume's six faces. It must cover at
  least ``BACKGROUND_MIN_SHARE`` of them, else the image has no constant background (not
  skull-stripped, or the brain fills the field of view) and the case fails.
* A background that is not 0 (an offset) is subtracted, with a warning: the brain is then
  the voxels that differ from it, exactly as for BraTS data.
* More than ``NEGATED_MAX_SHARE`` of the brain below the background (a negated image) fails
  the case; a brain partly below it (data already z-scored inside the brain) is warned
  about and used (the z-score does not depend on a shift or a positive scale).
* A brain with fewer than ``MIN_BRAIN_LEVELS`` distinct intensities (a constant image, a
  mask or a label map under a modality's name) fails the case.

Every failure is a ``CaseError`` naming the file and what was seen.
"""

from __future__ import annotations

import numpy as np

from brats_goat.io.errors import CaseError

#: Share of the volume's border voxels that the background value must cover. BraTS images
#: have a border of 0 only (100%); a brain cropped tightly still leaves most of each face
#: background. An unstripped head or pure noise has no such value.
BACKGROUND_MIN_SHARE = 0.25
#: Share of the brain below the background beyond which the image is taken as negated.
#: Real scans: under 0.2% (interpolation ringing); data z-scored inside the brain: ~50%.
NEGATED_MAX_SHARE = 0.9
#: Share of the brain below the background above which the image is said to look already
#: normalised (a warning only).
SIGNED_WARN_SHARE = 0.05
#: Fewest distinct intensities inside the brain of an image: fewer is a constant image, a
#: mask or a label map, whose "brain" and statistics mean nothing.
MIN_BRAIN_LEVELS = 8
#: Brain voxels sampled (evenly) to count the distinct intensities: enough to find 8
#: levels in any real image, cheap on a 240x240x155 volume.
LEVEL_SAMPLE = 200_000


def border_values(data: np.ndarray) -> np.ndarray:
    """The voxels on the six faces of a 3D volume (edges counted more than once)."""
    faces = [data[0], data[-1], data[:, 0], data[:, -1], data[:, :, 0], data[:, :, -1]]
    return np.concatenate([f.ravel() for f in faces])


def background_value(where: str, data: np.ndarray) -> float:
    """The most common value on the volume's border; ``CaseError`` when no value covers
    ``BACKGROUND_MIN_SHARE`` of it (no constant background to tell the brain from)."""
    border = border_values(data)
    border = border[np.isfinite(border)]
    if border.size == 0:
        raise CaseError(f"{where} has no finite voxel on the volume's border")
    values, counts = np.unique(border, return_counts=True)
    top = int(counts.argmax())
    share = counts[top] / border.size
    if share < BACKGROUND_MIN_SHARE:
        raise CaseError(
            f"{where} has no constant background: the most common value on the volume's "
            f"border ({values[top]:.6g}) covers {share:.0%} of it (at least "
            f"{BACKGROUND_MIN_SHARE:.0%} needed). brats-goat needs skull-stripped images "
            "with a constant background (the BraTS preprocessing)"
        )
    return float(values[top])


def replace_non_finite(
    where: str, data: np.ndarray, background: float
) -> tuple[np.ndarray, list[str]]:
    """NaN/Inf voxels take the background value (0 once it is subtracted), with a warning
    naming the file."""
    finite = np.isfinite(data)
    if finite.all():
        return data, []
    n_bad = int((~finite).sum())
    fixed = np.where(finite, data, np.float32(background))
    return fixed, [f"{where}: {n_bad} NaN/Inf voxels set to 0 (the background)"]


def subtract_background(
    where: str, data: np.ndarray, background: float
) -> tuple[np.ndarray, list[str]]:
    """Shift the volume so that its background is exactly 0, with a warning when it was
    not 0 already."""
    if background == 0:
        return data, []
    warning = (
        f"{where}: its background is {background:.6g}, not 0 (a header scl_inter offset, "
        "or data already normalised over the whole volume); the background value was "
        "subtracted so that the brain is the voxels that differ from it"
    )
    shifted = (data.astype(np.float64) - background).astype(np.float32)
    shifted[data == background] = 0  # exactly 0, whatever float32 rounding did elsewhere
    return shifted, [warning]


def check_brain(where: str, data: np.ndarray) -> list[str]:
    """The brain (voxels not 0, after ``subtract_background``) is an MR magnitude image:
    mostly above the background and with more than a few intensities."""
    brain = data[data != 0]
    levels = np.unique(brain[:: max(1, brain.size // LEVEL_SAMPLE)])
    if levels.size < MIN_BRAIN_LEVELS:
        shown = ", ".join(f"{v:.6g}" for v in levels)
        what = "the same intensity" if levels.size == 1 else f"only {levels.size} intensities"
        raise CaseError(
            f"{where}: every voxel that is not background has {what} ({shown}): a constant "
            "image, a mask or a label map, not an MR scan with contrast to segment"
        )
    below = float(np.mean(brain < 0))
    if below > NEGATED_MAX_SHARE:
        raise CaseError(
            f"{where}: {below:.0%} of the brain is darker than the background (median "
            f"{float(np.median(brain)):.6g} against 0): negated intensities? brats-goat needs "
            "MR magnitude images, brighter than their background"
        )
    if below > SIGNED_WARN_SHARE:
        return [
            f"{where}: {below:.0%} of the brain is below the background: the image looks "
            "already normalised; it is z-scored again (its result does not depend on that)"
        ]
    return []


def sanitise_intensities(where: str, data: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``data`` (float32, 3D) with a background of exactly 0 and NaN/Inf voxels set to it,
    and the warnings about what was changed; ``CaseError`` naming ``where`` (the case and
    the file) for an image whose brain cannot be found or is no image."""
    if not np.isfinite(data).any():
        raise CaseError(f"{where} contains only NaN/Inf voxels")
    background = background_value(where, data)
    data, warnings = replace_non_finite(where, data, background)
    if np.all(data == background):
        what = "all zero" if background == 0 else f"the value {background:.6g} in every voxel"
        raise CaseError(f"{where} is {what} (empty volume)")
    data, shifted = subtract_background(where, data, background)
    return data, warnings + shifted + check_brain(where, data)
