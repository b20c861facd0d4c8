"""Measure per-tissue intensity ratios (relative to WM) on real BraTS cases and phantoms.

Why: the phantom generator's contrast table (``brats_goat/synth/contrast.py``) must come
from real scans, and the same code path applied to generated phantoms shows how close
they are. Tissues are found without any atlas: a 3-class k-means on (t1n, t2w) inside the
eroded brain (brain = all modalities non-zero), on normal-appearing tissue only (the
tumour label or rough mask, dilated, is excluded; without one, FLAIR outliers are).

Usage: python experiments/measure_tissue_ratios.py [--real DIR] [--phantoms N] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels

MODALITIES = ("t1n", "t1c", "t2w", "t2f")
TISSUES = ("csf", "gm", "wm")
#: Tumour compartments measured where a full label map exists (BraTS labels).
LABELS = {1: "netc", 2: "snfh", 3: "et"}
REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "real"


def load_real_case(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None, bool]:
    """Images and tumour labels in the common (LPS) array order, through the package's own
    reader, and whether the labels are a full BraTS map (not a rough binary mask)."""
    (case,) = discover_cases(folder)
    volumes = load_case(case)
    labels = load_reference_labels(case, volumes)
    full = case.reference is not None and "roughmask" not in case.reference.name
    return volumes.arrays, labels, full


def brain_mask(images: dict[str, np.ndarray]) -> np.ndarray:
    """Voxels non-zero in every modality.

    Downstream tools call "brain" any non-zero voxel, but the four skull-strips of one real
    case differ slightly at the edge, and a voxel that is 0 in one modality would pull
    that modality's medians down; the intersection avoids it.
    """
    mask = np.ones(next(iter(images.values())).shape, bool)
    for data in images.values():
        mask &= data > 0
    return mask


def normal_tissue_mask(
    images: dict[str, np.ndarray], labels: np.ndarray | None, erode: int = 3, dilate: int = 5
) -> np.ndarray:
    """Brain (eroded: the skull-strip edge is partial volume) minus tumour (dilated)."""
    brain = brain_mask(images)
    normal = ndimage.binary_erosion(brain, iterations=erode)
    if labels is not None and labels.any():
        normal &= ~ndimage.binary_dilation(labels > 0, iterations=dilate)
    else:
        flair = images["t2f"][brain]
        z = (images["t2f"] - np.median(flair)) / (flair.std() + 1e-6)
        normal &= ~ndimage.binary_dilation(z > 2.5, iterations=2)
    return normal


def kmeans_tissues(
    images: dict[str, np.ndarray], mask: np.ndarray, seed: int = 0, confidence: float = 0.5
) -> np.ndarray:
    """Labels 0=CSF, 1=GM, 2=WM (-1 = ambiguous) for the voxels of ``mask``.

    k-means on (t1n, t2w), each centred on its median and scaled by its inter-quartile
    range (the std would be dominated by the long bright CSF tail on T2). Voxels whose
    squared distance to their centre is not below ``confidence`` x the distance to the
    next centre are mostly partial volume and are left out (-1).
    """
    feats = np.stack([images["t1n"][mask], images["t2w"][mask]], axis=1).astype(np.float64)
    q25, q50, q75 = np.percentile(feats, [25, 50, 75], axis=0)
    feats = (feats - q50) / (q75 - q25 + 1e-9)
    rng = np.random.default_rng(seed)
    sample = feats[rng.choice(len(feats), size=min(len(feats), 200_000), replace=False)]
    # Start from t1n percentiles: CSF dark, GM middle, WM bright on T1.
    order = np.argsort(sample[:, 0])
    centres = np.stack([sample[order[int(q * (len(order) - 1))]] for q in (0.05, 0.4, 0.85)])
    for _ in range(100):
        assign = ((sample[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([sample[assign == k].mean(0) for k in range(3)])
        if np.allclose(new, centres, atol=1e-6):
            break
        centres = new
    centres = centres[np.argsort(centres[:, 0])]  # ascending t1n: CSF, GM, WM
    dist = ((feats[:, None, :] - centres[None]) ** 2).sum(-1)
    closest = np.sort(dist, axis=1)
    classes = dist.argmin(1)
    classes[closest[:, 0] >= confidence * closest[:, 1]] = -1
    return classes


def tissue_ratios(
    images: dict[str, np.ndarray], labels: np.ndarray | None, full_labels: bool
) -> dict[str, dict[str, float]]:
    """{modality: {tissue or label: median / median WM}} on one case."""
    normal = normal_tissue_mask(images, labels)
    classes = kmeans_tissues(images, normal)
    out: dict[str, dict[str, float]] = {}
    for mod in MODALITIES:
        values = images[mod][normal]
        med = {t: float(np.median(values[classes == k])) for k, t in enumerate(TISSUES)}
        ratios = {t: med[t] / med["wm"] for t in TISSUES}
        if full_labels and labels is not None:
            for lab, name in LABELS.items():
                sel = labels == lab
                if sel.sum() > 50:
                    ratios[name] = float(np.median(images[mod][sel])) / med["wm"]
        out[mod] = ratios
    return out


def mean_ratios(per_case: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean over cases of each ratio (a label ratio averages the cases that have it)."""
    out: dict[str, dict[str, float]] = {}
    for mod in MODALITIES:
        keys: dict[str, list[float]] = {}
        for case in per_case.values():
            for k, v in case[mod].items():
                keys.setdefault(k, []).append(v)
        out[mod] = {k: round(float(np.mean(v)), 4) for k, v in keys.items()}
    return out


def phantom_cases(n: int, seed: int) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray | None]]:
    """A few generated cases, alternately healthy and glioma, in memory.

    Gliomas because the real cases with a full label map are gliomas: their label ratios
    are then comparable.
    """
    from brats_goat.synth import generate_case

    cases = {}
    for i in range(n):
        case = generate_case(seed, i, kind="glioma", healthy=(i % 2 == 0))
        images = {m: case.images[m].astype(np.float32) for m in MODALITIES}
        cases[case.case_id] = (images, case.seg)
    return cases


def print_table(real: dict[str, dict[str, float]], phantom: dict[str, dict[str, float]] | None):
    print("tissue ratio real vs phantom (median / median WM)")
    print(f"{'modality':8s} {'tissue':6s} {'real':>7s} {'phantom':>8s}")
    for mod in MODALITIES:
        for key in (*TISSUES, *LABELS.values()):
            if key not in real[mod] and (phantom is None or key not in phantom[mod]):
                continue
            r = real[mod].get(key, float("nan"))
            p = phantom[mod].get(key, float("nan")) if phantom else float("nan")
            print(f"{mod:8s} {key:6s} {r:7.3f} {p:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--phantoms", type=int, default=6, help="0 = real cases only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "tissue_ratios.json")
    args = parser.parse_args()

    real_cases = {}
    for folder in sorted(p for p in args.real.iterdir() if p.is_dir()):
        images, labels, full = load_real_case(folder)
        real_cases[folder.name] = tissue_ratios(images, labels, full)
        print(f"measured {folder.name}")
    real_mean = mean_ratios(real_cases)

    phantom_per_case, phantom_mean = {}, None
    if args.phantoms > 0:
        for case_id, (images, seg) in phantom_cases(args.phantoms, args.seed).items():
            phantom_per_case[case_id] = tissue_ratios(images, seg, seg is not None)
            print(f"measured {case_id}")
        phantom_mean = mean_ratios(phantom_per_case)

    print_table(real_mean, phantom_mean)
    result = {
        "method": "3-class k-means on IQR-scaled (t1n, t2w) in the eroded brain (all modalities "
        "non-zero) minus the dilated tumour, confident voxels only; median per tissue and "
        "modality divided by the WM median (experiments/measure_tissue_ratios.py)",
        "real": {"cases": real_cases, "mean": real_mean},
        "phantom": {"seed": args.seed, "cases": phantom_per_case, "mean": phantom_mean},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
