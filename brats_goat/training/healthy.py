"""Pick the "healthy" axial slices a label-free model may be trained on.

The method needs labels only to *exclude* slices: any axial slice within a margin of the
tumour is dropped. Where a case has no label map, a conservative FLAIR outlier rule marks
suspect slices instead, so unlabelled tumour cases can still contribute their far slices.

Near-healthy subjects (``../shared/data/healthy-real``) bring masks of known non-tumour
lesions (``<ID>-lesion``): their slices are kept, because the lesions sit in the middle of
the brain and dropping those slices would leave mostly its top and bottom, and the (grown)
lesion voxels are left out of the loss instead. Those subjects also lack sequences (most
have no t1c): each slice records which modalities it really has, so training never asks
the model to reconstruct a zero image as if it were a scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import Case
from brats_goat.io.names import LESION_SUFFIX, REFERENCE_SUFFIXES, nifti_files, split_suffix
from brats_goat.io.read import CaseError, CaseVolumes, load_case, load_reference_labels
from brats_goat.stages.normalise import NormaliseConfig, bright_clusters, normalise_stack
from brats_goat.training.config import TrainConfig


@dataclass
class HealthySlices:
    """Normalised (N, C, X, Y) float16 slices and where each one came from."""

    slices: np.ndarray
    origin: list[tuple[str, int]]
    #: How each case's abnormal tissue was located: its reference file's name (label map,
    #: rough mask, lesion mask), 'FLAIR outliers', or 'healthy' (``--healthy``).
    source: dict[str, str]
    #: (N, C) bool: the modalities each slice's case really has (an absent one is a zero
    #: image in ``slices`` and must not be reconstructed or scored).
    present: np.ndarray
    #: (N, X, Y) bool: voxels left out of the loss (grown known lesions); None when no
    #: voxel is.
    ignore: np.ndarray | None = None

    def for_calibration(self) -> np.ndarray:
        """The slices thresholds may be calibrated on (see :func:`calibration_rows`)."""
        rows = calibration_rows(self.present, self.ignore)
        if not rows.any():
            raise CaseError(
                "no healthy slice has all four modalities and no lesion voxel: "
                "calibration needs some (add complete healthy cases)"
            )
        return self.slices[rows]


def calibration_rows(present: np.ndarray, ignore: np.ndarray | None) -> np.ndarray:
    """(N,) bool: slices with every modality and no ignored voxel. The thresholds are
    percentiles of healthy residuals for the full set and for t1c+t2f, so a zero t1c or a
    lesion would bias them."""
    rows = np.asarray(present.all(axis=1))
    if ignore is not None:
        rows &= ~ignore.reshape(len(ignore), -1).any(axis=1)
    return rows


def reference_mask(case: Case, volumes: CaseVolumes, atol: float) -> np.ndarray | None:
    """Non-zero voxels of the case's label map / rough mask, in canonical order."""
    labels = load_reference_labels(case, volumes, atol)
    return None if labels is None else labels > 0


def has_lesion_mask(case: Case) -> bool:
    """Whether the case's reference is a ``<ID>-lesion`` mask of non-tumour lesions.

    Discovery keeps one reference per case; a case with a lesion mask *and* a tumour label
    map is refused, since using either alone would train on tumour or on lesion."""
    if case.reference is None:
        return False
    prefix = (split_suffix(case.reference.name) or ("", ""))[0]
    kinds = {
        parts[1]
        for path in nifti_files(case.folder)
        if (parts := split_suffix(path.name)) and parts[0] == prefix
        if parts[1] in REFERENCE_SUFFIXES
    }
    if LESION_SUFFIX in kinds and len(kinds) > 1:
        raise CaseError(
            f"case {case.case_id}: both a lesion mask and a tumour label map in {case.folder}"
        )
    return LESION_SUFFIX in kinds


def suspect_mask(flair_z: np.ndarray, brain: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Unlabelled cases: 3D clusters of bright FLAIR voxels away from the brain edge."""
    inner = ndimage.binary_erosion(brain, iterations=3)
    min_voxels = cfg.unlabelled_max_fraction * int(brain.sum())
    return bright_clusters(flair_z, inner, cfg.unlabelled_flair_z, min_voxels)


def healthy_indices(brain: np.ndarray, tumour: np.ndarray | None, cfg: TrainConfig) -> list[int]:
    """Axial slices with enough brain and no tumour within ``healthy_margin`` slices."""
    depth = brain.shape[2]
    enough = brain.reshape(-1, depth).sum(axis=0) >= cfg.min_brain_voxels
    blocked: np.ndarray = np.zeros(depth, dtype=bool)
    if tumour is not None and tumour.any():
        hit = np.asarray(tumour.reshape(-1, depth).any(axis=0))
        blocked = (
            ndimage.binary_dilation(hit, iterations=cfg.healthy_margin)
            if cfg.healthy_margin
            else hit
        )
    return [int(z) for z in np.flatnonzero(enough & ~blocked)]


def grown_lesion(lesion: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Lesion voxels plus a ``lesion_margin`` cube around each: partial volume and blocky
    masks, and with a margin of 5 the whole SSIM window (11 x 11) of every voxel kept, so
    the loss does not depend on the lesion at all."""
    if not cfg.lesion_margin or not lesion.any():
        return lesion
    cube = ndimage.generate_binary_structure(3, 3)
    return ndimage.binary_dilation(lesion, structure=cube, iterations=cfg.lesion_margin)


def abnormal_masks(
    case: Case,
    volumes: CaseVolumes,
    normalised: np.ndarray,
    brain: np.ndarray,
    known_healthy: bool,
    cfg: TrainConfig,
    atol: float,
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(tumour, lesion, source): what drops slices, what is left out of the loss (known
    non-tumour lesions) and how the case's abnormal tissue was located."""
    labels = reference_mask(case, volumes, atol)
    if labels is not None and has_lesion_mask(case):
        assert case.reference is not None
        return None, grown_lesion(labels, cfg), case.reference.name
    if known_healthy:
        if labels is not None and labels.any():
            raise CaseError(
                f"case {case.case_id} was given as healthy but its label map "
                f"{case.reference} is not empty"
            )
        return None, None, "healthy"
    if labels is not None:
        assert case.reference is not None
        return labels, None, case.reference.name
    return suspect_mask(normalised[MODALITIES.index("t2f")], brain, cfg), None, "FLAIR outliers"


def case_slices(
    case: Case,
    known_healthy: bool,
    train_cfg: TrainConfig,
    norm_cfg: NormaliseConfig,
    atol: float,
    image_size: int,
) -> HealthySlices:
    """The healthy slices of one case (possibly none), with its presence and ignore masks."""
    volumes = load_case(case, atol, allow_missing=True)
    normalised, brain = normalise_stack(volumes.stack(MODALITIES), norm_cfg)
    tumour, lesion, source = abnormal_masks(
        case, volumes, normalised, brain, known_healthy, train_cfg, atol
    )
    keep = healthy_indices(brain, tumour, train_cfg)
    x, y = normalised.shape[1:3]
    if keep and (x, y) != (image_size, image_size):
        raise CaseError(
            f"case {case.case_id}: in-plane size {x}x{y}, training needs {image_size}x{image_size}"
        )
    has = np.array([m in volumes.present for m in MODALITIES])
    return HealthySlices(
        normalised[..., keep].transpose(3, 0, 1, 2).astype(np.float16),
        [(case.case_id, z) for z in keep],
        {case.case_id: source},
        np.repeat(has[None], len(keep), axis=0),
        None if lesion is None else lesion[..., keep].transpose(2, 0, 1),
    )


def ignored_voxels(part: HealthySlices) -> np.ndarray:
    """(N, X, Y) bool ignore mask of ``part``, all false when it has none."""
    if part.ignore is not None:
        return part.ignore
    return np.zeros((len(part.slices), *part.slices.shape[2:]), bool)


def concatenate(parts: list[HealthySlices]) -> HealthySlices:
    """One set from the cases' sets; ``ignore`` is None when nothing is ignored (no
    all-false mask of every slice for data without lesion masks)."""
    full = [p for p in parts if len(p.origin)]
    if not full:
        raise CaseError("no healthy slices found in the training data")
    ignore = None
    if any(p.ignore is not None and p.ignore.any() for p in full):
        ignore = np.concatenate([ignored_voxels(p) for p in full])
    return HealthySlices(
        np.concatenate([p.slices for p in full]),
        [o for p in full for o in p.origin],
        {k: v for p in parts for k, v in p.source.items()},
        np.concatenate([p.present for p in full]),
        ignore,
    )


def collect_healthy_slices(
    cases: list[Case],
    train_cfg: TrainConfig,
    norm_cfg: NormaliseConfig,
    affine_atol: float = 1e-3,
    image_size: int = 240,
    all_healthy: list[Case] | None = None,
) -> HealthySlices:
    """Read cases, drop tumour slices, return the normalised healthy slices.

    ``all_healthy`` cases are known to be healthy (e.g. ``synth --healthy`` phantoms):
    every slice with enough brain is used, and a tumour label map next to one is an error.
    Cases may lack sequences (t2f or t1c is enough): absent ones are zero images, marked
    absent in ``present``. Lesion masks (``<ID>-lesion``) are honoured in both lists.
    """
    known = {id(c) for c in all_healthy or []}
    return concatenate(
        [
            case_slices(c, id(c) in known, train_cfg, norm_cfg, affine_atol, image_size)
            for c in [*cases, *(all_healthy or [])]
        ]
    )
