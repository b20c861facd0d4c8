"""Lesion plans (where, how big, which compartments) and their exact label maps.

A lesion is a perturbed ellipsoid: the level set of (normalised radius + smooth noise).
Its core is either enhancing (optionally with a necrotic centre behind an enhancing rim),
non-enhancing, or an extra-axial meningioma; edema is a larger perturbed ellipsoid that
prefers white matter and always wraps the core. Labels are written from these masks
directly, so they are exact, and BraTS-nested by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from brats_goat.conventions import LABEL_ET, LABEL_NETC, LABEL_SNFH
from brats_goat.synth.config import TumourConfig
from brats_goat.synth.fields import smooth_noise


class Compartment(IntEnum):
    """What a voxel is made of; more detailed than the label (it sets the intensities)."""

    NONE = 0
    EDEMA = 1
    ENHANCING = 2
    NECROSIS = 3
    NON_ENHANCING = 4
    MENINGIOMA = 5


#: BraTS label of each compartment (index = Compartment value).
COMPARTMENT_LABEL = np.array([0, LABEL_SNFH, LABEL_ET, LABEL_NETC, LABEL_NETC, LABEL_ET], np.uint8)
#: Field name in :class:`brats_goat.synth.contrast.LesionRatios` of each compartment.
COMPARTMENT_RATIO = {
    Compartment.EDEMA: "edema",
    Compartment.ENHANCING: "enhancing",
    Compartment.NECROSIS: "necrosis",
    Compartment.NON_ENHANCING: "non_enhancing",
    Compartment.MENINGIOMA: "meningioma",
}
CORE_COMPARTMENTS = (
    Compartment.ENHANCING,
    Compartment.NECROSIS,
    Compartment.NON_ENHANCING,
    Compartment.MENINGIOMA,
)


@dataclass(frozen=True)
class Lesion:
    """One lesion in output (BraTS voxel = mm) coordinates."""

    centre: np.ndarray  # (3,)
    radius: float  # mean core radius, mm
    axes: np.ndarray  # (3,) core semi-axes, mm
    rotation: np.ndarray  # (3, 3)
    edema_axes: np.ndarray  # (3,) edema semi-axes, mm
    edema_rotation: np.ndarray
    outer: Compartment  # ENHANCING, NON_ENHANCING or MENINGIOMA
    rim_mm: float | None  # thickness of the outer shell around a necrotic centre; None: solid
    irregularity: float
    extra_axial: bool
    #: False: no edema blob, only the minimal rim that wraps the core.
    with_edema: bool = True

    def extent(self, config: TumourConfig) -> float:
        """Half-width (mm) of a box that surely holds the lesion and its edema."""
        reach = 1.0 + 1.2 * config.noise_clip * self.irregularity + 0.5 * config.edema_wm_preference
        return (
            float(max(self.axes.max(), self.edema_axes.max()) * reach)
            + config.edema_min_rim_vox
            + 2
        )


@dataclass(frozen=True)
class TumourPlan:
    """All lesions of a case."""

    kind: str
    lesions: tuple[Lesion, ...]

    @property
    def enhancing(self) -> bool:
        return any(les.outer != Compartment.NON_ENHANCING for les in self.lesions)


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


def _ellipsoid(rng: np.random.Generator, radius: float, aspect: tuple[float, float]):
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
):
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


def _plan_glioma(rng, anatomy: CoarseAnatomy, config: TumourConfig) -> list[Lesion]:
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


def _plan_metastases(rng, anatomy: CoarseAnatomy, config: TumourConfig) -> list[Lesion]:
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


def _plan_meningioma(rng, anatomy: CoarseAnatomy, config: TumourConfig) -> list[Lesion]:
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


def _radius_map(
    offsets: Sequence[np.ndarray], axes: np.ndarray, rotation: np.ndarray
) -> np.ndarray:
    """Normalised ellipsoid radius |R^T d / axes| on a box given by per-axis offsets."""
    total = np.zeros((len(offsets[0]), len(offsets[1]), len(offsets[2])), np.float32)
    for k in range(3):
        # component k of R^T d = sum_j R[j, k] d_j, separable over the box axes
        comp = (
            (rotation[0, k] * offsets[0])[:, None, None]
            + (rotation[1, k] * offsets[1])[None, :, None]
            + (rotation[2, k] * offsets[2])[None, None, :]
        ).astype(np.float32) / np.float32(axes[k])
        total += comp * comp
    return np.sqrt(total)


def rasterise(
    plan: TumourPlan,
    origin: Sequence[int],
    brain: np.ndarray,
    wm: np.ndarray,
    rng: np.random.Generator,
    config: TumourConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Compartment map (uint8, :class:`Compartment` values) on a crop at ``origin``, and
    an edema strength map (float32, 0 at the edema border to 1 well inside it).

    ``brain`` is the case's brain mask on the crop (after mass effect): intra-axial cores
    and all edema are clipped to it, so every label lies in the brain; extra-axial cores
    extend the brain instead (the caller adds them to the mask).
    """
    comp = np.zeros(brain.shape, np.uint8)
    strength = np.zeros(brain.shape, np.float32)
    origin_arr = np.asarray(origin)
    structure = ndimage.generate_binary_structure(3, 1)
    for lesion in plan.lesions:
        ext = lesion.extent(config)
        lo = np.maximum(np.floor(lesion.centre - ext).astype(int) - origin_arr, 0)
        hi = np.minimum(np.ceil(lesion.centre + ext).astype(int) + 1 - origin_arr, brain.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
        offsets = [
            np.arange(a, b) + o - c
            for a, b, o, c in zip(lo, hi, origin_arr, lesion.centre, strict=True)
        ]
        brain_box = brain[box]
        irr = lesion.irregularity

        def noise(scale: float, shape: tuple[int, ...] = shape) -> np.ndarray:
            clip = config.noise_clip
            return np.clip(smooth_noise(rng, shape, scale), -clip, clip)

        rho = _radius_map(offsets, lesion.axes, lesion.rotation)
        # Two scales of boundary noise: lobes, and smaller bumps on them.
        outline = rho + irr * (
            0.8 * noise(max(0.6 * lesion.radius, 2.0)) + 0.4 * noise(max(0.2 * lesion.radius, 1.5))
        )
        core = outline < 1.0
        if not lesion.extra_axial:
            core &= brain_box
        inner = np.zeros_like(core)
        if lesion.rim_mm is not None:
            # The rim follows the outline, its thickness varying by about +-50 %.
            rim = lesion.rim_mm / lesion.radius
            thickness = rim * (1.0 + 0.5 * noise(max(0.3 * lesion.radius, 2.0)))
            inner = core & (outline < 1.0 - thickness)

        if not lesion.with_edema:
            edema = np.zeros_like(core)
        else:
            rho_e = _radius_map(offsets, lesion.edema_axes, lesion.edema_rotation)
            scale_e = max(0.5 * float(lesion.edema_axes.mean()), 2.0)
            phi = rho_e + irr * noise(scale_e) - config.edema_wm_preference * (wm[box] - 0.5)
            edema = phi < 1.0
            np.maximum(strength[box], np.clip((1.0 - phi) / 0.35, 0.0, 1.0), out=strength[box])
        edema |= ndimage.binary_dilation(core, structure, iterations=config.edema_min_rim_vox)
        edema &= brain_box & ~core

        region = comp[box]  # a view: written in place
        free = region == Compartment.NONE
        region[edema & free] = Compartment.EDEMA
        writable = (region == Compartment.NONE) | (region == Compartment.EDEMA)
        region[core & writable] = lesion.outer
        region[inner & writable] = Compartment.NECROSIS
    strength[comp != Compartment.EDEMA] = 0.0
    return comp, strength


def labels_from_compartments(comp: np.ndarray) -> np.ndarray:
    """BraTS labels (uint8: 1 NETC, 2 SNFH, 3 ET) of a compartment map."""
    return COMPARTMENT_LABEL[comp]
