"""Lesion plans: where lesions go, how big they are and which compartments they have.

Placement works on the coarse anatomy grid only (cheap); the shapes and their exact label
maps are drawn by :mod:`brats_goat.synth.lesion`, whose names are re-exported here so
callers keep one import site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from brats_goat.synth.config import TumourConfig
from brats_goat.synth.lesion import (
    COMPARTMENT_LABEL,
    COMPARTMENT_RATIO,
    CORE_COMPARTMENTS,
    Compartment,
    Lesion,
    TumourPlan,
    labels_from_compartments,
    rasterise,
)

__all__ = [
    "COMPARTMENT_LABEL",
    "COMPARTMENT_RATIO",
    "CORE_COMPARTMENTS",
    "CoarseAnatomy",
    "Compartment",
    "Lesion",
    "TumourPlan",
    "labels_from_compartments",
    "plan_tumour",
    "rasterise",
]


@dataclass(frozen=True)
class CoarseAnatomy:
    """The case's warped anatomy on the coarse grid (nodes every ``step`` voxels from 0)."""

    step: int
    brain: np.ndarray  # bool
    gm: np.ndarray
    wm: np.ndarray
    surface_distance: np.ndarray  # mm from the nearest non-brain node (0 outside)
    centre: np.ndarray  # brain centre (voxels)
    shape: tuple[int, int, int]  # full grid

    def positions(self, mask: np.ndarray) -> np.ndarray:
        """(N, 3) voxel positions of the nodes in ``mask``."""
        return np.argwhere(mask).astype(float) * self.step


def _ellipsoid(
    rng: np.random.Generator, radius: float, aspect: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes with geometric mean ``radius`` and a random orientation."""
    ratios = rng.uniform(*aspect, size=3)
    ratios /= np.prod(ratios) ** (1.0 / 3.0)
    return radius * ratios, Rotation.random(random_state=rng).as_matrix()


def _choose(rng: np.random.Generator, candidates: np.ndarray, step: int) -> np.ndarray | None:
    """A random candidate node, jittered within its cell."""
    if len(candidates) == 0:
        return None
    node = candidates[rng.integers(len(candidates))]
    return node + rng.uniform(-step / 2, step / 2, size=3)


def _separated(
    points: np.ndarray, others: Sequence[tuple[np.ndarray, float]], reach: float, gap: float
) -> np.ndarray:
    """Candidate rows whose distance to every placed lesion exceeds both reaches + gap."""
    keep = np.ones(len(points), bool)
    for centre, other_reach in others:
        keep &= np.linalg.norm(points - centre, axis=1) > reach + other_reach + gap
    return points[keep]


def plan_tumour(
    rng: np.random.Generator, kind: str, anatomy: CoarseAnatomy, config: TumourConfig
) -> TumourPlan:
    """Draw the lesions of one case of ``kind`` (glioma, metastases or meningioma)."""
    if kind == "glioma":
        lesions = _plan_glioma(rng, anatomy, config)
    elif kind == "metastases":
        lesions = _plan_metastases(rng, anatomy, config)
    elif kind == "meningioma":
        lesions = _plan_meningioma(rng, anatomy, config)
    else:
        raise ValueError(f"unknown tumour kind {kind!r}")
    if not lesions:  # the placement rules always leave room in a real-sized brain
        raise RuntimeError(f"could not place a {kind} lesion in this brain")
    return TumourPlan(kind=kind, lesions=tuple(lesions))


def _intra_axial(
    rng: np.random.Generator,
    centre: np.ndarray,
    radius: float,
    edema_factor: float,
    outer: Compartment,
    rim_mm: float | None,
    config: TumourConfig,
) -> Lesion:
    """A lesion inside the brain: its edema is drawn around the core, up to a cap."""
    axes, rot = _ellipsoid(rng, radius, config.aspect)
    edema_radius = min(radius * edema_factor, max(config.edema_max_radius_mm, radius + 2.0))
    edema_axes, edema_rot = _ellipsoid(rng, edema_radius, config.aspect)
    return Lesion(
        centre=centre,
        radius=radius,
        axes=axes,
        rotation=rot,
        edema_axes=edema_axes,
        edema_rotation=edema_rot,
        outer=outer,
        rim_mm=rim_mm,
        irregularity=float(rng.uniform(*config.irregularity)),
        extra_axial=False,
    )


def _plan_glioma(
    rng: np.random.Generator, anatomy: CoarseAnatomy, config: TumourConfig
) -> list[Lesion]:
    n_foci = 2 if rng.random() < config.glioma_second_focus_probability else 1
    non_enhancing = rng.random() < config.glioma_non_enhancing_probability
    lesions: list[Lesion] = []
    placed: list[tuple[np.ndarray, float]] = []
    for focus in range(n_foci):
        scale = config.glioma_second_focus_scale if focus else 1.0
        radius = rng.uniform(*config.glioma_core_diameter_mm) / 2 * scale
        factor = float(rng.uniform(*config.glioma_edema_factor))
        centre = None
        while centre is None and radius >= 5.0:
            ok = (
                anatomy.brain
                & (anatomy.surface_distance >= radius + config.surface_margin_mm)
                & (anatomy.wm > 0.3)
            )
            points = anatomy.positions(ok)
            points = points[
                (points[:, 2] >= anatomy.centre[2] + config.glioma_min_height_vox)
                & (np.abs(points[:, 0] - anatomy.centre[0]) >= config.glioma_min_lateral_mm)
            ]
            points = _separated(points, placed, radius * factor, 5.0)
            centre = _choose(rng, points, anatomy.step)
            if centre is None:
                radius *= 0.85
        if centre is None:
            continue
        if non_enhancing:
            outer, rim = Compartment.NON_ENHANCING, None
        else:
            outer = Compartment.ENHANCING
            rim = float(rng.uniform(*config.rim_mm)) if radius > 6.0 else None
        lesion = _intra_axial(rng, centre, radius, factor, outer, rim, config)
        lesions.append(lesion)
        placed.append((centre, lesion.extent(config)))
    return lesions


def _plan_metastases(
    rng: np.random.Generator, anatomy: CoarseAnatomy, config: TumourConfig
) -> list[Lesion]:
    n = int(rng.integers(config.metastasis_count[0], config.metastasis_count[1] + 1))
    lesions: list[Lesion] = []
    placed: list[tuple[np.ndarray, float]] = []
    attempts = 0
    while len(lesions) < n and attempts < 4 * n:
        attempts += 1
        diameter = float(rng.uniform(*config.metastasis_diameter_mm))
        radius = diameter / 2
        factor = float(rng.uniform(*config.metastasis_edema_factor))
        reach = radius * factor * 1.8 + config.edema_min_rim_vox + 2
        ok = (
            anatomy.brain
            & (anatomy.surface_distance >= radius + config.surface_margin_mm)
            & (anatomy.gm + anatomy.wm > 0.6)
        )
        points = _separated(anatomy.positions(ok), placed, reach, config.metastasis_gap_mm)
        centre = _choose(rng, points, anatomy.step)
        if centre is None:
            continue
        solid = diameter < config.metastasis_solid_below_mm
        rim = None if solid else min(float(rng.uniform(*config.rim_mm)), 0.5 * radius)
        lesion = _intra_axial(rng, centre, radius, factor, Compartment.ENHANCING, rim, config)
        lesions.append(lesion)
        placed.append((centre, lesion.extent(config)))
    return lesions


def _plan_meningioma(
    rng: np.random.Generator, anatomy: CoarseAnatomy, config: TumourConfig
) -> list[Lesion]:
    radius = float(rng.uniform(*config.meningioma_diameter_mm)) / 2
    grad = np.stack(np.gradient(anatomy.surface_distance), axis=-1)
    step = anatomy.step
    shape = np.asarray(anatomy.shape, float)
    while True:
        axes, rot = _ellipsoid(rng, radius, config.aspect)
        irregularity = float(rng.uniform(*config.irregularity))
        outward = axes.max() * (1.0 + 1.2 * config.noise_clip * irregularity)
        surface = anatomy.brain & (anatomy.surface_distance <= 1.5 * step)
        nodes = np.argwhere(surface)
        centres = []
        for node in nodes[rng.permutation(len(nodes))][:400]:
            g = grad[tuple(node)]
            if np.linalg.norm(g) < 1e-6:
                continue
            inward = g / np.linalg.norm(g)
            c = node * step + config.meningioma_embed * radius * inward
            lo = c - outward - 3
            hi = c + outward + 3
            if c[2] < anatomy.centre[2] - 10 or np.any(lo < 0) or np.any(hi > shape - 1):
                continue
            centres.append(c)
            break
        if centres or radius < 6.0:
            break
        radius *= 0.85
    if not centres:
        return []
    centre = centres[0]
    with_edema = bool(rng.random() < config.meningioma_edema_probability)
    factor = float(rng.uniform(*config.meningioma_edema_factor)) if with_edema else 1.0
    edema_axes, edema_rot = _ellipsoid(rng, radius * factor, config.aspect)
    rim = None
    if rng.random() < config.meningioma_necrosis_probability:
        rim = radius * float(rng.uniform(*config.meningioma_shell_fraction))
    return [
        Lesion(
            centre=centre,
            radius=radius,
            axes=axes,
            rotation=rot,
            edema_axes=edema_axes,
            edema_rotation=edema_rot,
            outer=Compartment.MENINGIOMA,
            rim_mm=rim,
            irregularity=irregularity,
            extra_axial=True,
            with_edema=with_edema,
        )
    ]
