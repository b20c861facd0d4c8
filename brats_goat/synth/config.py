"""Every number the phantom generator uses, in frozen dataclasses.

Keeping the parameters here (not as module constants) means a set of phantoms is fully
described by ``(seed, kind, healthy, SynthConfig)``; changing a range is one edit, and a
test or script can build a variant with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Tumour kinds a user can ask for; "mixed" draws one of the others per case.
TUMOUR_KINDS: tuple[str, ...] = ("glioma", "metastases", "meningioma")
KIND_CHOICES: tuple[str, ...] = (*TUMOUR_KINDS, "mixed")


@dataclass(frozen=True)
class AnatomyConfig:
    """Where the MNI template brain lands in the BraTS grid.

    Measured on the four real cases in ``shared/data/real`` (brain = any modality non-zero,
    stored LPS): bounding-box centre x 118.8, y 129 (voxels), top of the brain z 141, and
    extents 134 x 175 mm (x, y) against the template mask's 145 x 181 mm. The template is
    larger than an average adult brain (it is an average of registered, enlarged brains).
    """

    centre_xy_vox: tuple[float, float] = (118.75, 129.0)
    top_z_vox: float = 141.0
    #: Real / template extent per axis (z: the mean of x and y, the real z extent depends on
    #: where each scan cut the brainstem).
    scale: tuple[float, float, float] = (0.925, 0.967, 0.946)
    #: A warped brain-mask probability above this is brain.
    brain_threshold: float = 0.5
    #: Tissue probabilities are sharpened as p**gamma (renormalised): the template is an
    #: average of many registered brains, blurrier than any one scan (sulci wash out).
    sharpen_gamma: float = 2.0


@dataclass(frozen=True)
class DeformConfig:
    """Per-case anatomy variation: affine jitter, smooth random warp, mass effect."""

    #: Spacing (voxels) of the coarse grid on which the whole deformation is evaluated
    #: before a trilinear upsampling: smooth fields need no full-resolution evaluation.
    coarse_step: int = 4
    #: Control-point spacing and amplitude (standard deviation) of the random warp.
    lattice_spacing_mm: float = 24.0
    displacement_mm: float = 2.5
    rotation_deg: float = 4.0
    translation_mm: float = 3.0
    scale_range: tuple[float, float] = (0.90, 1.05)
    #: Extra per-axis scale jitter (relative standard deviation) so brains differ in shape.
    anisotropy: float = 0.02
    #: Share of small, "paediatric-sized" brains and their scale.
    paediatric_probability: float = 0.08
    paediatric_scale: float = 0.85
    #: Mass effect u(x) = a (x - c) exp(-|x - c|^2 / (2 s^2)); a < 1 keeps the map
    #: invertible (no folding). a grows with the lesion radius up to ``mass_effect_max``.
    mass_effect_max: float = 0.6
    mass_effect_per_mm: float = 0.03
    #: s = width x lesion radius.
    mass_effect_width: float = 1.3
    #: Intra-axial lesions cannot push the brain through the skull: the displacement fades
    #: to zero over this distance from the brain surface.
    mass_effect_surface_ramp_mm: float = 15.0


@dataclass(frozen=True)
class ContrastConfig:
    """Intensity formation: tissue table -> images, scanner effects."""

    #: WM intensity of each modality, drawn log-uniform per case and modality (real BraTS
    #: scans are not intensity-normalised: WM ranges from a few hundred to a few thousand).
    wm_level: tuple[float, float] = (400.0, 2500.0)
    #: Relative per-case jitter (standard deviation) of each tissue/lesion ratio.
    ratio_jitter: float = 0.03
    #: After the jitter, consecutive tissues of a modality's required order (e.g. t2f
    #: GM > WM > CSF) differ by at least this factor.
    order_margin: float = 1.04
    #: Multiplicative bias exp(amplitude * field), field smooth with unit std.
    bias_amplitude: tuple[float, float] = (0.03, 0.12)
    bias_lattice_mm: float = 70.0
    #: Rician noise: std of each complex component, relative to the WM level.
    noise_fraction: tuple[float, float] = (0.025, 0.06)
    #: Fine multiplicative tissue texture (relative std, correlation length in voxels): real
    #: tissue is not flat between the tissue classes.
    tissue_texture: tuple[float, float] = (0.02, 0.045)
    tissue_texture_scale_vox: float = 2.0
    #: t1c: patchy enhancing dura-like shell at the brain surface.
    shell_width_vox: int = 1
    shell_ratio: tuple[float, float] = (1.1, 1.6)
    shell_coverage: float = 0.3
    shell_patch_vox: float = 6.0
    #: t1c: tubular enhancing vessels in the CSF spaces.
    vessel_count: tuple[int, int] = (8, 18)
    vessel_length_mm: tuple[int, int] = (15, 50)
    vessel_radius_mm: tuple[float, float] = (0.6, 1.3)
    vessel_ratio: tuple[float, float] = (1.6, 2.4)
    #: Smooth within-lesion texture (relative std) so lesions are not flat.
    lesion_texture: float = 0.07
    lesion_texture_scale_vox: float = 4.0
    #: Edema replaces up to this share of the tissue signal (the rest keeps the anatomy
    #: visible); the share fades from ``edema_replacement`` deep in the edema to
    #: ``edema_edge`` x that at its border, as real edema fades out.
    edema_replacement: float = 0.85
    edema_edge: float = 0.45
    #: Partial-volume blur (voxels) of the lesion compartments in the intensities only;
    #: the label map stays exact.
    lesion_blur_vox: float = 0.6


@dataclass(frozen=True)
class TumourConfig:
    """Lesion kinds, counts, sizes and compartments."""

    #: Draw weights of the kinds for kind="mixed".
    kind_weights: tuple[float, float, float] = (0.6, 0.25, 0.15)
    #: Share of non-enhancing gliomas (core labelled 1 only, no label 3); with the mixed
    #: weights above this makes about a quarter of all tumour cases non-enhancing.
    glioma_non_enhancing_probability: float = 0.4
    glioma_core_diameter_mm: tuple[float, float] = (20.0, 60.0)
    glioma_edema_factor: tuple[float, float] = (1.3, 2.1)
    glioma_second_focus_probability: float = 0.1
    #: A second glioma focus is this much smaller than the first.
    glioma_second_focus_scale: float = 0.5
    #: Edema never extends beyond this radius (mm): a hemisphere, not the whole brain.
    edema_max_radius_mm: float = 50.0
    #: Enhancing-rim thickness of necrotic lesions.
    rim_mm: tuple[float, float] = (2.0, 5.0)
    metastasis_count: tuple[int, int] = (2, 7)
    metastasis_diameter_mm: tuple[float, float] = (3.0, 15.0)
    metastasis_edema_factor: tuple[float, float] = (1.3, 2.6)
    #: Metastases smaller than this are solid enhancing (no necrotic centre).
    metastasis_solid_below_mm: float = 8.0
    #: Gap (mm) between the edema envelopes of two metastases so they stay separate.
    metastasis_gap_mm: float = 4.0
    meningioma_diameter_mm: tuple[float, float] = (20.0, 50.0)
    #: Share of the radius by which a meningioma centre sits inside the brain surface.
    meningioma_embed: float = 0.65
    meningioma_edema_probability: float = 0.5
    meningioma_edema_factor: tuple[float, float] = (1.05, 1.4)
    meningioma_necrosis_probability: float = 0.2
    #: Share of the radius taken by the enhancing shell around a meningioma's NETC.
    meningioma_shell_fraction: tuple[float, float] = (0.5, 0.7)
    #: Boundary irregularity (relative amplitude of the smooth noise on the radius).
    irregularity: tuple[float, float] = (0.12, 0.3)
    #: Boundary noise is clipped at this many std, so shapes (and their boxes) stay bounded.
    noise_clip: float = 2.5
    #: Ellipsoid axis ratios.
    aspect: tuple[float, float] = (0.75, 1.3)
    #: Edema prefers white matter: the edema level set is lowered by this x (p_wm - 0.5).
    edema_wm_preference: float = 0.3
    #: Edema always surrounds the core by at least this many voxels (inside the brain).
    edema_min_rim_vox: int = 1
    #: Intra-axial lesion centres keep this distance (mm) plus the core radius from the
    #: brain surface, and gliomas sit above this height (voxels) below the brain centre
    #: (supratentorial, like most adult gliomas).
    surface_margin_mm: float = 4.0
    glioma_min_height_vox: float = -15.0
    #: Glioma centres keep this distance (mm) from the mid-sagittal plane: most grow in one
    #: hemisphere.
    glioma_min_lateral_mm: float = 8.0


@dataclass(frozen=True)
class SynthConfig:
    """All phantom parameters."""

    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    deform: DeformConfig = field(default_factory=DeformConfig)
    contrast: ContrastConfig = field(default_factory=ContrastConfig)
    tumour: TumourConfig = field(default_factory=TumourConfig)
