"""What a lesion is made of, and its exact compartment and label maps.

A lesion is a perturbed ellipsoid: the level set of (normalised radius + smooth noise).
Its core is either enhancing (optionally with a necrotic centre behind an enhancing rim),
non-enhancing, or an extra-axial meningioma; edema is a larger perturbed ellipsoid that
prefers white matter and always wraps the core. Labels are written from these masks
directly, so they are exact, and BraTS-nested by construction. Where lesions go, and how
big they are, is drawn in :mod:`brats_goat.synth.tumour`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage

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
        """Whether any lesion enhances (lets callers pick enhancing or non-enhancing cases)."""
        return any(les.outer != Compartment.NON_ENHANCING for les in self.lesions)


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
