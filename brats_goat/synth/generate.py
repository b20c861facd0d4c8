"""One phantom case in memory, and writing cases in the BraTS folder layout.

Order of work for a case (every random draw from one generator seeded by (seed, index),
in a fixed order, so a case is reproducible on its own):
anatomy warp -> coarse anatomy -> tumour plan -> mass effect -> one warp of the tissue
maps (on the brain's bounding box only) -> exact labels -> contrasts, bias, noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from brats_goat.io.grid import BRATS_SHAPE, brats_affine
from brats_goat.io.write import write_nifti_atomic
from brats_goat.synth import anatomy, contrast, deform
from brats_goat.synth.config import KIND_CHOICES, TUMOUR_KINDS, SynthConfig
from brats_goat.synth.fields import smooth_noise
from brats_goat.synth.tumour import (
    COMPARTMENT_RATIO,
    CORE_COMPARTMENTS,
    CoarseAnatomy,
    Compartment,
    TumourPlan,
    labels_from_compartments,
    plan_tumour,
    rasterise,
)

MODALITIES = contrast.MODALITIES
INT16_MAX = np.iinfo(np.int16).max


@dataclass
class SynthCase:
    """A generated case: int16 images, uint8 labels (None for healthy cases)."""

    case_id: str
    images: dict[str, np.ndarray]
    seg: np.ndarray | None
    kind: str  # glioma | metastases | meningioma | healthy
    affine: np.ndarray
    #: This case's tissue probabilities (gm, wm, csf; float32) and brain mask: the ground
    #: truth behind the intensities, for tests and calibration (not written to disk).
    tissues: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    brain: np.ndarray | None = field(default=None, repr=False)


def case_id(index: int) -> str:
    """BraTS-style identifier of the ``index``-th synthetic case."""
    return f"BraTS-SYN-{index:05d}-000"


def _draw_kind(rng: np.random.Generator, kind: str, healthy: bool, config: SynthConfig) -> str:
    if kind not in KIND_CHOICES:
        raise ValueError(f"kind must be one of {KIND_CHOICES}, got {kind!r}")
    if healthy:
        return "healthy"
    if kind == "mixed":
        weights = np.asarray(config.tumour.kind_weights, float)
        return TUMOUR_KINDS[int(rng.choice(len(TUMOUR_KINDS), p=weights / weights.sum()))]
    return kind


def _coarse_anatomy(
    warp: deform.AnatomicalWarp, maps: anatomy.TissueMaps, centre: np.ndarray, config: SynthConfig
) -> CoarseAnatomy:
    """The warped anatomy every ``coarse_step`` voxels: enough to place lesions and crop."""
    step = config.deform.coarse_step
    axes = [np.arange(0, s, step, dtype=float) for s in BRATS_SHAPE]
    shape = tuple(len(a) for a in axes)
    src = warp(deform.grid_points(axes))

    def sample(vol: np.ndarray) -> np.ndarray:
        return deform.sample_points(vol, src).reshape(shape)

    brain = sample(maps.brain) > config.anatomy.brain_threshold
    return CoarseAnatomy(
        step=step,
        brain=brain,
        gm=sample(maps.gm),
        wm=sample(maps.wm),
        surface_distance=ndimage.distance_transform_edt(brain) * step,
        centre=centre,
        shape=BRATS_SHAPE,
    )


def _crop_box(coarse: CoarseAnatomy, plan: TumourPlan, config: SynthConfig):
    """[lo, hi) voxel box holding the brain (one coarse cell of margin) and all lesions."""
    step = coarse.step
    nodes = np.argwhere(coarse.brain)
    lo = nodes.min(0) * step - 2 * step
    hi = nodes.max(0) * step + 2 * step + 1
    for lesion in plan.lesions:
        ext = lesion.extent(config.tumour)
        lo = np.minimum(lo, np.floor(lesion.centre - ext).astype(int))
        hi = np.maximum(hi, np.ceil(lesion.centre + ext).astype(int) + 1)
    return np.maximum(lo, 0), np.minimum(hi, BRATS_SHAPE)


def _lesion_fractions(
    comp: np.ndarray, config: SynthConfig
) -> tuple[tuple[slice, ...], dict[Compartment, np.ndarray]]:
    """Partial-volume fractions of each compartment on the lesions' bounding box.

    Only the intensities are blurred (the label map stays exact): real lesion borders are
    not voxel-sharp.
    """
    nz = np.argwhere(comp > 0)
    lo = np.maximum(nz.min(0) - 3, 0)
    hi = np.minimum(nz.max(0) + 4, comp.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = comp[box]
    blur = config.contrast.lesion_blur_vox
    fractions = {}
    for c in COMPARTMENT_RATIO:
        mask = sub == c
        if mask.any():
            fractions[c] = ndimage.gaussian_filter(mask.astype(np.float32), blur, truncate=3.0)
    return box, fractions


@dataclass(frozen=True)
class _Start:
    """A case up to its tumour plan (cheap: coarse grid only)."""

    rng: np.random.Generator
    kind: str
    warp: deform.AnatomicalWarp
    coarse: CoarseAnatomy
    plan: TumourPlan


def _start(seed: int, index: int, kind: str, healthy: bool, cfg: SynthConfig) -> _Start:
    rng = np.random.default_rng([seed, index])
    case_kind = _draw_kind(rng, kind, healthy, cfg)
    maps = anatomy.template_tissues(cfg.anatomy)
    centre = anatomy.brain_centre(cfg.anatomy)
    warp = deform.random_anatomical_warp(rng, cfg.deform, centre, BRATS_SHAPE)
    coarse = _coarse_anatomy(warp, maps, centre, cfg)
    if case_kind == "healthy":
        plan = TumourPlan(kind="healthy", lesions=())
    else:
        plan = plan_tumour(rng, case_kind, coarse, cfg.tumour)
    return _Start(rng=rng, kind=case_kind, warp=warp, coarse=coarse, plan=plan)


def plan_case(
    seed: int,
    index: int = 0,
    kind: str = "mixed",
    healthy: bool = False,
    config: SynthConfig | None = None,
) -> TumourPlan:
    """The tumour plan :func:`generate_case` would use, without rendering the case.

    A fraction of a second instead of seconds: to pick seeds with given properties (a
    non-enhancing tumour, several metastases) before generating them.
    """
    return _start(seed, index, kind, healthy, config or SynthConfig()).plan


def _warp_tissues(start: _Start, lo: np.ndarray, hi: np.ndarray, cfg: SynthConfig):
    """One warp (affine + random + mass effect) of all tissue maps, on the crop [lo, hi)."""
    crop_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    fine_axes = deform.coarse_axes(lo, hi, cfg.deform.coarse_step)
    points = deform.grid_points(fine_axes)
    sources = [
        deform.mass_source(les.centre, les.radius, not les.extra_axial, cfg.deform)
        for les in start.plan.lesions
    ]
    coarse = start.coarse
    surface = deform.sample_points(coarse.surface_distance, points / coarse.step)
    moved = points - deform.mass_displacement(points, sources, cfg.deform, surface)
    coarse_src = start.warp(moved).T.reshape(3, *(len(a) for a in fine_axes))
    coords = deform.upsample_coords(coarse_src, crop_shape)
    return deform.warp_stack(anatomy.template_tensor(cfg.anatomy), coords)


def generate_case(
    seed: int,
    index: int = 0,
    kind: str = "mixed",
    healthy: bool = False,
    config: SynthConfig | None = None,
) -> SynthCase:
    """Generate case ``index`` of the set defined by ``seed`` (deterministic)."""
    cfg = config or SynthConfig()
    start = _start(seed, index, kind, healthy, cfg)
    rng, plan = start.rng, start.plan
    lo, hi = _crop_box(start.coarse, plan, cfg)
    crop_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    gm, wm, csf, brain_p = _warp_tissues(start, lo, hi, cfg)
    brain = brain_p > cfg.anatomy.brain_threshold

    comp = np.zeros(crop_shape, np.uint8)
    edema_strength = np.zeros(crop_shape, np.float32)
    if plan.lesions:
        comp, edema_strength = rasterise(plan, lo, brain, wm, rng, cfg.tumour)
        brain |= np.isin(comp, CORE_COMPARTMENTS)  # extra-axial masses extend the brain

    draws = contrast.draw_contrast(rng, cfg.contrast)
    shell, vessels = contrast.t1c_enhancement(rng, brain, csf, cfg.contrast)
    lesion_box, fractions = _lesion_fractions(comp, cfg) if plan.lesions else ((), {})
    texture = (
        1.0
        + cfg.contrast.lesion_texture
        * smooth_noise(rng, comp[lesion_box].shape, cfg.contrast.lesion_texture_scale_vox)
        if fractions
        else None
    )
    tissue_texture = 1.0 + draws.tissue_texture * smooth_noise(
        rng, crop_shape, cfg.contrast.tissue_texture_scale_vox
    )

    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    images = {}
    for mod in MODALITIES:
        img = contrast.tissue_image(gm, wm, csf, brain_p, draws.tissue[mod]) * tissue_texture
        if mod == "t1c":
            img = img * (1 - shell) + shell * draws.shell_ratio
            img = img * (1 - vessels) + vessels * draws.vessel_ratio
        if texture is not None:  # there are lesion fractions
            img[lesion_box] = _mix_lesions(
                img[lesion_box],
                brain_p[lesion_box],
                fractions,
                edema_strength[lesion_box],
                draws.lesion[mod],
                texture,
                cfg,
            )
        img *= contrast.bias_field(
            rng, crop_shape, draws.bias_amplitude[mod], cfg.contrast.bias_lattice_mm
        )
        level = draws.wm_level[mod]
        values = contrast.rician(rng, img[brain] * level, draws.noise_fraction[mod] * level)
        sub = np.zeros(crop_shape, np.int16)
        sub[brain] = np.clip(np.rint(values), 1, INT16_MAX).astype(np.int16)
        images[mod] = _paste(sub, crop)

    seg = _paste(labels_from_compartments(comp), crop) if plan.lesions else None
    return SynthCase(
        case_id=case_id(index),
        images=images,
        seg=seg,
        kind=start.kind,
        affine=brats_affine(),
        tissues={"gm": _paste(gm, crop), "wm": _paste(wm, crop), "csf": _paste(csf, crop)},
        brain=_paste(brain, crop),
    )


def _paste(sub: np.ndarray, crop: tuple[slice, ...]) -> np.ndarray:
    """A full-grid array, zero outside ``crop``."""
    out = np.zeros(BRATS_SHAPE, sub.dtype)
    out[crop] = sub
    return out


def _mix_lesions(
    img: np.ndarray,
    brain_p: np.ndarray,
    fractions: dict[Compartment, np.ndarray],
    edema_strength: np.ndarray,
    ratios: contrast.LesionRatios,
    texture: np.ndarray,
    config: SynthConfig,
) -> np.ndarray:
    """Replace tissue signal by lesion signal in proportion to each compartment fraction.

    Edema keeps part of the underlying anatomy, more so at its fading border; outside the
    original brain (extra-axial masses) there is no tissue, so the lesion signal fills in.
    """
    cc = config.contrast
    total = np.zeros_like(img)
    signal = np.zeros_like(img)
    # The strength map is 0 on the edema's outer rim: blur it like the fractions.
    strength = ndimage.gaussian_filter(edema_strength, 1.0)
    edema_share = cc.edema_replacement * (cc.edema_edge + (1.0 - cc.edema_edge) * strength)
    for comp, frac in fractions.items():
        weight = frac * edema_share if comp == Compartment.EDEMA else frac
        total += weight
        signal += weight * getattr(ratios, COMPARTMENT_RATIO[comp])
    signal *= texture
    outside = brain_p < config.anatomy.brain_threshold
    img = np.where(outside, signal / np.maximum(total, 1e-3), img)
    return img * (1.0 - np.minimum(total, 1.0)) + signal


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Image with sform and qform both set (code 1, scanner) like real BraTS files."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header.set_slope_inter(1.0, 0.0)
    return img


def write_case(case: SynthCase, out_dir: str | Path) -> Path:
    """Write ``case`` as ``out_dir/<ID>/<ID>-{t1n,t1c,t2w,t2f}[,-seg].nii.gz``; the folder."""
    folder = Path(out_dir) / case.case_id
    for mod in MODALITIES:
        write_nifti_atomic(
            _nifti(case.images[mod], case.affine), folder / f"{case.case_id}-{mod}.nii.gz"
        )
    seg_path = folder / f"{case.case_id}-seg.nii.gz"
    if case.seg is not None:
        write_nifti_atomic(_nifti(case.seg, case.affine), seg_path)
    else:
        seg_path.unlink(missing_ok=True)  # a healthy case has no label anywhere
    return folder


def synthesize(
    out_dir: str | Path,
    n_cases: int,
    *,
    seed: int = 0,
    kind: str = "mixed",
    healthy: bool = False,
    progress: bool = True,
    config: SynthConfig | None = None,
) -> list[Path]:
    """Generate and write cases 0..n_cases-1; returns their folders."""
    if n_cases < 1:
        raise ValueError("n_cases must be >= 1")
    _draw_kind(np.random.default_rng(0), kind, healthy, config or SynthConfig())  # validate early
    folders = []
    for index in tqdm(range(n_cases), desc="synth", unit="case", disable=not progress):
        case = generate_case(seed, index, kind=kind, healthy=healthy, config=config)
        folders.append(write_case(case, out_dir))
    return folders
