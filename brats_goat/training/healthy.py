"""Pick the "healthy" axial slices a label-free model may be trained on.

The method needs labels only to *exclude* slices: any axial slice within a margin of the
tumour is dropped. Where a case has no label map, a conservative FLAIR outlier rule marks
suspect slices instead, so unlabelled tumour cases can still contribute their far slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import Case
from brats_goat.io.read import CaseError, CaseVolumes, load_case, load_reference_labels
from brats_goat.stages.normalise import NormaliseConfig, bright_clusters, normalise_stack
from brats_goat.training.config import TrainConfig


@dataclass
class HealthySlices:
    """Normalised (N, C, X, Y) float16 slices and where each one came from."""

    slices: np.ndarray
    origin: list[tuple[str, int]]
    #: How each case's tumour was located: 'label map', 'rough mask', 'FLAIR outliers'.
    source: dict[str, str]


def reference_mask(case: Case, volumes: CaseVolumes, atol: float) -> np.ndarray | None:
    """Non-zero voxels of the case's label map / rough mask, in canonical order."""
    labels = load_reference_labels(case, volumes, atol)
    return None if labels is None else labels > 0


def suspect_mask(flair_z: np.ndarray, brain: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Unlabelled cases: 3D clusters of bright FLAIR voxels away from the brain edge."""
    inner = ndimage.binary_erosion(brain, iterations=3)
    min_voxels = cfg.unlabelled_max_fraction * int(brain.sum())
    return bright_clusters(flair_z, inner, cfg.unlabelled_flair_z, min_voxels)


def healthy_indices(brain: np.ndarray, tumour: np.ndarray | None, cfg: TrainConfig) -> list[int]:
    """Axial slices with enough brain and no tumour within ``healthy_margin`` slices."""
    depth = brain.shape[2]
    enough = brain.reshape(-1, depth).sum(axis=0) >= cfg.min_brain_voxels
    blocked = np.zeros(depth, dtype=bool)
    if tumour is not None and tumour.any():
        hit = tumour.reshape(-1, depth).any(axis=0)
        blocked = (
            ndimage.binary_dilation(hit, iterations=cfg.healthy_margin)
            if cfg.healthy_margin
            else hit
        )
    return [int(z) for z in np.flatnonzero(enough & ~blocked)]


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
    every slice with enough brain is used, and a label map next to one is an error.
    """
    chunks: list[np.ndarray] = []
    origin: list[tuple[str, int]] = []
    source: dict[str, str] = {}
    known = {id(c) for c in all_healthy or []}
    for case in [*cases, *(all_healthy or [])]:
        volumes = load_case(case, affine_atol)
        normalised, brain = normalise_stack(volumes.stack(MODALITIES), norm_cfg)
        tumour = reference_mask(case, volumes, affine_atol)
        if id(case) in known:
            if tumour is not None and tumour.any():
                raise CaseError(
                    f"case {case.case_id} was given as healthy but its label map "
                    f"{case.reference} is not empty"
                )
            tumour = None
            source[case.case_id] = "healthy"
        elif tumour is not None:
            assert case.reference is not None
            source[case.case_id] = case.reference.name
        else:
            tumour = suspect_mask(normalised[MODALITIES.index("t2f")], brain, train_cfg)
            source[case.case_id] = "FLAIR outliers"
        keep = healthy_indices(brain, tumour, train_cfg)
        if not keep:
            continue
        x, y = normalised.shape[1:3]
        if (x, y) != (image_size, image_size):
            raise CaseError(
                f"case {case.case_id}: in-plane size {x}x{y}, "
                f"training needs {image_size}x{image_size}"
            )
        chunks.append(normalised[..., keep].transpose(3, 0, 1, 2).astype(np.float16))
        origin += [(case.case_id, z) for z in keep]
    if not chunks:
        raise CaseError("no healthy slices found in the training data")
    return HealthySlices(np.concatenate(chunks), origin, source)
