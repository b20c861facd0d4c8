"""Checks between a case's modalities: one grid, one brain, distinct images, one side.

Each file can be a valid scan and the case still wrong: a sequence on another grid or
moved against the others puts its residual, and so the labels, in the wrong place; one
file copied under two names gives labels unrelated to the tumour. These refuse such a case
with a ``CaseError`` naming the files. A sequence whose data were mirrored (header kept)
is left out like a corrupt file (``check_mirrored``).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from brats_goat.io.errors import CaseError
from brats_goat.io.image import CorruptFileError

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


#: Flipping a sequence must raise its agreement with another sequence of the case by more
#: than this for the two to look mirrored against each other. Agreement is the correlation
#: of their gradient magnitudes inside both brains (``agreement``, at 2 mm). On the 31
#: development cases flipping one sequence of a pair along any axis lowers it by 0.136 or
#: more (least: Brats18_CBICA_ARW_1's t1c/t2w, left-right); with one sequence of a case
#: mirrored left-right (or along another axis), flipping it back raises its agreement with
#: every other sequence by 0.136 or more (both measured with ``without_spikes``). Not 0:
#: a brain symmetric along an axis (a phantom) gains about 0 either way and is no sign of a
#: mirror.
MIRROR_GAIN = 0.05
#: ... and the flipped pair must agree by more than this: the sequences of one real scan
#: agree by 0.21 or more (BrainLes-example's t1n and t2f), so a mirrored one flipped back
#: does too; images that hardly agree either way (noise, a byte-overflowed uint8 phantom:
#: -0.16 stored, -0.01 flipped) are no evidence of a mirror.
MIRROR_MIN_AGREEMENT = 0.1
#: Volumes with fewer voxels than this are compared at full resolution.
MIRROR_FULL_RESOLUTION = 1_000_000
#: The array axes in canonical (LPS) order, for messages.
AXIS_NAMES = ("left-right", "front-back", "top-bottom")


def halved(data: np.ndarray) -> np.ndarray:
    """Half the resolution (2 mm on BraTS data: the ventricles and larger sulci, a few
    hundredths of a second per sequence), mirror-symmetric: pairs of voxels averaged along
    an axis of even length, every other voxel along an odd one. So flipping the result is
    flipping the image (a plain stride would move the mirror by a voxel on even axes)."""
    out = data
    for axis, n in enumerate(data.shape):
        first = [slice(None)] * 3
        first[axis] = slice(0, None, 2)
        if n % 2:
            out = out[tuple(first)]
            continue
        second = list(first)
        second[axis] = slice(1, None, 2)
        out = (out[tuple(first)] + out[tuple(second)]) * np.float32(0.5)
    return np.ascontiguousarray(out, dtype=np.float32)


#: Intensities are clipped to these percentiles of the brain before edges are compared: a
#: few hot voxels (1e7 in one voxel of a real t2f) would otherwise own the correlation, or
#: overflow its squares, and make a sequence look mirrored or foreign.
EDGE_CLIP_PERCENTILES = (0.5, 99.5)


def without_spikes(sample: np.ndarray) -> np.ndarray:
    """``sample`` with the brain's intensities clipped to ``EDGE_CLIP_PERCENTILES`` (taken
    on every 7th brain voxel: the same values, a tenth of the time); background stays 0."""
    inside = sample[sample != 0][::7]
    if inside.size == 0:
        return sample
    low, high = np.percentile(inside, EDGE_CLIP_PERCENTILES)
    return np.where(sample != 0, np.clip(sample, low, high), 0).astype(np.float32)


def edge_features(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude (contrast-free: edges of one anatomy agree across sequences) and
    the brain without its outer layer (whose edge every brain has, mirrored or not)."""
    sample = halved(data) if data.size > MIRROR_FULL_RESOLUTION else data.astype(np.float32)
    sample = without_spikes(sample)
    magnitude = np.sqrt(sum(g * g for g in np.gradient(sample)))
    inside = sample != 0
    core = inside.copy()
    for axis in range(3):
        ahead = [slice(None)] * 3
        behind = [slice(None)] * 3
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        core[tuple(ahead)] &= inside[tuple(behind)]
        core[tuple(behind)] &= inside[tuple(ahead)]
    return magnitude, core


def agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Correlation of two ``edge_features`` inside both brains (0 when undefined)."""
    both = a[1] & b[1]
    x, y = a[0][both].astype(np.float64), b[0][both].astype(np.float64)
    if x.size < 100 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def mirror_gains(arrays: dict[str, np.ndarray]) -> dict[tuple[str, str], tuple[float, int, float]]:
    """For each pair of sequences: the largest gain in ``agreement`` from flipping the
    first along an axis, that axis, and the agreement as stored."""
    features = {m: edge_features(a) for m, a in arrays.items()}
    gains = {}
    present = list(arrays)
    for i, first in enumerate(present):
        for other in present[i + 1 :]:
            stored = agreement(features[first], features[other])
            magnitude, core = features[first]
            flipped = [
                agreement((np.flip(magnitude, axis), np.flip(core, axis)), features[other])
                for axis in range(3)
            ]
            axis = int(np.argmax(flipped))
            gains[first, other] = (flipped[axis] - stored, axis, stored)
    return gains


def check_mirrored(
    case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]
) -> dict[str, CorruptFileError]:
    """The sequences whose data look mirrored against the others', each as the error of a
    corrupt file (the reader leaves it out like one): a conversion that flipped the array
    but kept the header puts that sequence's tumour on the wrong side without any other
    sign. A sequence is mirrored when flipping it agrees better with more than half of the
    others (``MIRROR_GAIN``, ``MIRROR_MIN_AGREEMENT``). When that cannot say which (two
    sequences, or half of them): ``CaseError`` naming the files."""
    gains = mirror_gains(arrays)
    flips = {
        pair: (gain, axis, stored)
        for pair, (gain, axis, stored) in gains.items()
        if gain > MIRROR_GAIN and stored + gain > MIRROR_MIN_AGREEMENT
    }
    if not flips:
        return {}
    count = {m: sum(m in pair for pair in flips) for m in arrays}
    mirrored = [m for m in arrays if count[m] > (len(arrays) - 1) / 2]
    if not mirrored or 2 * len(mirrored) >= len(arrays):
        names = sorted({m for pair in flips for m in pair}, key=list(arrays).index)
        (gain, axis, stored), *_ = flips.values()
        raise CaseError(
            f"case {case_id}: the data of "
            + " and ".join(f"{m} file {files[m]}" for m in names)
            + f" look mirrored {AXIS_NAMES[axis]} against each other (their edges agree by "
            f"{stored:.2f} as stored, {stored + gain:.2f} with one flipped), and which one "
            "is cannot be told: check the conversion of these files (a flipped array kept "
            "with an unchanged header)"
        )
    found = {}
    for m in mirrored:
        (gain, axis, stored), *_ = [v for pair, v in flips.items() if m in pair]
        found[m] = CorruptFileError(
            f"case {case_id}: {m} file {files[m]}: its data look mirrored {AXIS_NAMES[axis]} "
            f"against the case's other sequences (their edges agree by {stored:.2f} as "
            f"stored, {stored + gain:.2f} with it flipped): check its conversion (a flipped "
            "array kept with an unchanged header)"
        )
    return found
