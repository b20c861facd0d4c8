"""Tissue and lesion contrast tables -> the four modality images, plus scanner effects.

An image is formed in "WM units" (WM = 1) as the partial-volume sum of tissue ratios,
lesion compartments are mixed in, then a smooth bias field, a per-case WM level and
Rician noise (the magnitude of complex Gaussian noise, as MR magnitude images have).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from brats_goat.synth.config import ContrastConfig
from brats_goat.synth.fields import smooth_noise

MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")


class TissueRatios(NamedTuple):
    """Median tissue intensity relative to white matter."""

    csf: float
    gm: float
    wm: float = 1.0


#: Mean over the 4 real cases in shared/data/real of the normal-tissue medians relative to
#: WM, produced by ``experiments/measure_tissue_ratios.py`` (docs/tissue_ratios.json, "real").
REAL_TISSUE_RATIOS: dict[str, TissueRatios] = {
    "t1n": TissueRatios(csf=0.557, gm=0.741),
    "t1c": TissueRatios(csf=0.519, gm=0.791),
    "t2w": TissueRatios(csf=2.953, gm=1.255),
    "t2f": TissueRatios(csf=0.611, gm=0.920),
}

#: Pure-tissue ratios the generator uses. Partial volume pulls the measured medians of a
#: phantom towards the neighbouring tissues, so the pure values are the real ratios moved
#: by two fixed-point steps, pure = used + (real - phantom measured), with the phantom
#: measured by the same script (experiments/measure_tissue_ratios.py, 3 healthy + 3 glioma
#: phantoms). One exception: FLAIR GM. Real FLAIR measures GM < WM (0.92; the k-means GM
#: class mixes in dark sulcal CSF), but grey matter is brighter than white matter on
#: FLAIR, and the phantom keeps that physical order GM > WM > CSF.
TISSUE_RATIOS: dict[str, TissueRatios] = {
    "t1n": TissueRatios(csf=0.486, gm=0.723),
    "t1c": TissueRatios(csf=0.432, gm=0.774),
    "t2w": TissueRatios(csf=3.52, gm=1.256),
    "t2f": TissueRatios(csf=0.509, gm=1.10),
}

#: Required tissue order per modality, brightest first; kept after the per-case jitter.
TISSUE_ORDER: dict[str, tuple[str, str, str]] = {
    "t1n": ("wm", "gm", "csf"),
    "t1c": ("wm", "gm", "csf"),
    "t2w": ("csf", "gm", "wm"),
    "t2f": ("gm", "wm", "csf"),
}


class LesionRatios(NamedTuple):
    """Lesion compartments relative to WM, one modality."""

    edema: float
    enhancing: float
    necrosis: float
    non_enhancing: float
    meningioma: float


#: Calibrated like TISSUE_RATIOS against the label medians of the two real cases with a
#: full label map (BrainLes-example: labels 1, 2, 3; TCGA-DU-7294: 1, 2), compared with the
#: glioma phantoms' labels 2 (edema), 3 (enhancing) and 1 (necrosis and non-enhancing
#: core, moved together). Edema values exceed the measured medians because edema only
#: partly replaces the tissue signal. Meningioma (no real case here): iso- to grey
#: matter on T1/T2, strongly and homogeneously enhancing.
LESION_RATIOS: dict[str, LesionRatios] = {
    "t1n": LesionRatios(
        edema=0.60, enhancing=0.565, necrosis=0.37, non_enhancing=0.47, meningioma=0.78
    ),
    "t1c": LesionRatios(
        edema=0.54, enhancing=1.55, necrosis=0.40, non_enhancing=0.57, meningioma=1.65
    ),
    "t2w": LesionRatios(
        edema=2.65, enhancing=2.95, necrosis=2.99, non_enhancing=2.39, meningioma=1.30
    ),
    "t2f": LesionRatios(
        edema=2.50, enhancing=2.40, necrosis=1.70, non_enhancing=1.80, meningioma=1.25
    ),
}


@dataclass(frozen=True)
class CaseContrast:
    """One case's draws: ratios (jittered), WM levels, bias and noise strengths."""

    tissue: dict[str, TissueRatios]
    lesion: dict[str, LesionRatios]
    wm_level: dict[str, float]
    bias_amplitude: dict[str, float]
    noise_fraction: dict[str, float]
    shell_ratio: float
    vessel_ratio: float
    tissue_texture: float


def draw_contrast(rng: np.random.Generator, config: ContrastConfig) -> CaseContrast:
    """Per-case contrast: jitter every ratio a little so no two scanners look the same."""
    jit = config.ratio_jitter

    def jitter(values: tuple[float, ...], scale: float) -> list[float]:
        return [v * float(np.exp(scale * rng.standard_normal())) for v in values]

    tissue, lesion, level, bias, noise = {}, {}, {}, {}, {}
    lo, hi = np.log(config.wm_level)
    for mod in MODALITIES:
        base = TISSUE_RATIOS[mod]
        csf, gm = jitter((base.csf, base.gm), jit)
        tissue[mod] = _enforce_order(
            TissueRatios(csf=csf, gm=gm), TISSUE_ORDER[mod], config.order_margin
        )
        lesion[mod] = LesionRatios(*jitter(tuple(LESION_RATIOS[mod]), 2 * jit))
        level[mod] = float(np.exp(rng.uniform(lo, hi)))
        bias[mod] = float(rng.uniform(*config.bias_amplitude))
        noise[mod] = float(rng.uniform(*config.noise_fraction))
    return CaseContrast(
        tissue=tissue,
        lesion=lesion,
        wm_level=level,
        bias_amplitude=bias,
        noise_fraction=noise,
        shell_ratio=float(rng.uniform(*config.shell_ratio)),
        vessel_ratio=float(rng.uniform(*config.vessel_ratio)),
        tissue_texture=float(rng.uniform(*config.tissue_texture)),
    )


def _enforce_order(
    ratios: TissueRatios, order: tuple[str, str, str], margin: float
) -> TissueRatios:
    """Clamp jittered ratios so the modality's tissue order survives (WM stays 1)."""
    values = ratios._asdict()
    hi, _, lo = order
    if hi == "wm":  # wm > gm > csf
        values["gm"] = min(values["gm"], 1.0 / margin)
        values["csf"] = min(values["csf"], values["gm"] / margin)
    elif lo == "wm":  # csf > gm > wm
        values["gm"] = max(values["gm"], margin)
        values["csf"] = max(values["csf"], values["gm"] * margin)
    else:  # gm > wm > csf
        values["gm"] = max(values["gm"], margin)
        values["csf"] = min(values["csf"], 1.0 / margin)
    return TissueRatios(**values)


def tissue_image(
    gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, brain: np.ndarray, ratios: TissueRatios
) -> np.ndarray:
    """Partial-volume mix in WM units; normalised by the brain fraction so the cut edge of
    the skull-strip is not artificially darkened."""
    img = gm * ratios.gm + wm * ratios.wm + csf * ratios.csf
    return img / np.maximum(brain, 1e-3)


def t1c_enhancement(
    rng: np.random.Generator, brain: np.ndarray, csf: np.ndarray, config: ContrastConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction maps (0..1) of enhancing dura and of vessels for the post-contrast T1.

    A patchy thin shell at the brain surface (dura / cortical veins left by the
    skull-strip) and a few tortuous tubes in CSF spaces (sulcal vessels). Without them an
    anomaly detector would learn that any bright t1c structure is tumour.
    """
    eroded = ndimage.binary_erosion(brain, iterations=config.shell_width_vox)
    shell = brain & ~eroded
    patches = smooth_noise(rng, brain.shape, config.shell_patch_vox)
    threshold = np.quantile(patches, 1.0 - config.shell_coverage)
    dura = (shell & (patches > threshold)).astype(np.float32) * 0.8

    vessels = np.zeros(brain.shape, np.float32)
    candidates = np.flatnonzero((csf > 0.5) & eroded)
    n_vessels = int(rng.integers(config.vessel_count[0], config.vessel_count[1] + 1))
    if len(candidates) == 0:
        return dura, vessels
    for _ in range(n_vessels):
        start = np.array(np.unravel_index(rng.choice(candidates), brain.shape), float)
        length = int(rng.integers(*config.vessel_length_mm))
        radius = float(rng.uniform(*config.vessel_radius_mm))
        direction = rng.standard_normal(3)
        pos = start
        for _ in range(length):
            direction = direction / np.linalg.norm(direction) + 0.35 * rng.standard_normal(3)
            pos = pos + direction / np.linalg.norm(direction)
            _splat_max(vessels, pos, radius)
    return dura, vessels * brain


def _splat_max(volume: np.ndarray, pos: np.ndarray, radius: float) -> None:
    """volume = max(volume, gaussian tube cross-section around ``pos``), in place."""
    r = int(np.ceil(2 * radius))
    lo = np.maximum(np.floor(pos).astype(int) - r, 0)
    hi = np.minimum(np.floor(pos).astype(int) + r + 2, volume.shape)
    if np.any(hi <= lo):
        return
    axes = [np.arange(a, b) - p for a, b, p in zip(lo, hi, pos, strict=True)]
    d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    blob = np.exp(-d2 / (2 * radius * radius)).astype(np.float32)
    region = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    np.maximum(region, blob, out=region)


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float, scale: float):
    """Smooth multiplicative field exp(amplitude * noise), mean about 1."""
    return np.exp(amplitude * smooth_noise(rng, shape, scale)).astype(np.float32)


def rician(rng: np.random.Generator, values: np.ndarray, sigma: float) -> np.ndarray:
    """|values + sigma (n1 + i n2)|: MR magnitude noise, positive and signal-dependent."""
    n1 = rng.standard_normal(values.shape, dtype=np.float32)
    n2 = rng.standard_normal(values.shape, dtype=np.float32)
    real = values + sigma * n1
    return np.sqrt(real * real + (sigma * n2) ** 2)
