"""Diagnostics behind the lesion-robust normalisation (results/experiments-normalisation.md).

Three parts, none of them on a reported case:

* ``tumour-z``: mean FLAIR z inside the tumour of the development glioma phantoms (seed
  3000) under the plain z-score, with healthy-tissue statistics (an oracle: it uses the
  label), and with the label-free rule; then the voxels the rule leaves out of the
  healthy phantoms that calibrated the shipped weights (seed 600) and the intensity
  baseline (seed 1000), which must be 0 for the stored thresholds to stay valid.
* ``glioma-et``: per development glioma, ET / TC / WT lesion-wise Dice of both methods
  under both normalisations, with the shipped thresholds and restoration (where the ET
  change comes from).
* ``real-fp``: t2f components of both methods outside a 3-voxel dilation of the rough box of
  the unscored BraTS-GLI-00001-000: size and peak (how specific each map is on real FLAIR).

    python -m experiments.diagnose_normalisation tumour-z|glioma-et|real-fp [--weights W]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.evaluation.metrics import score_case
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels
from brats_goat.model.checkpoint import load_verified
from brats_goat.segmenter import PipelineConfig
from brats_goat.stages.normalise import NormaliseConfig, brain_mask, lesion_mask, normalise_case
from brats_goat.stages.threshold import candidate_mask, component_peaks
from brats_goat.synth import generate_case, synthesize

# The development-phantom harness: same case preparation, maps and segmenters.
from experiments.experiment_postprocess import (
    intensity_maps,
    labels_of,
    prepare,
    restored_flair_maps,
    variant_segmenter,
)

ROOT = Path(__file__).resolve().parents[1]
PLAIN = NormaliseConfig(exclude_z=None)
FLAIR = MODALITIES.index("t2f")


def glioma_folder(tmp: Path) -> Path:
    """The 3 development glioma phantoms (seed 3000), written under ``tmp``."""
    folder = tmp / "glioma"
    synthesize(folder, 3, seed=3000, kind="glioma", progress=False)
    return folder


def tumour_z(tmp: Path) -> None:
    for case in discover_cases(glioma_folder(tmp)):
        volumes = load_case(case)
        stack = volumes.stack(MODALITIES).astype(np.float32)
        tumour = load_reference_labels(case, volumes, 1e-3) > 0
        plain, brain, _ = normalise_case(stack, PLAIN)
        new, _, left_out = normalise_case(stack, NormaliseConfig())
        healthy = stack[FLAIR][brain & ~tumour]
        oracle = (stack[FLAIR][tumour] - healthy.mean()) / healthy.std()
        print(
            f"{case.case_id}: tumour {int(tumour.sum())} voxels, mean FLAIR z plain "
            f"{plain[FLAIR][tumour].mean():.2f}, oracle {oracle.mean():.2f} (unclipped), "
            f"new {new[FLAIR][tumour].mean():.2f}; left out {int(left_out.sum())} voxels"
        )
    for seed, count in ((600, 4), (1000, 8)):
        left = []
        for index in range(count):
            case = generate_case(seed, index, healthy=True)
            stack = np.stack([case.images[m].astype(np.float32) for m in MODALITIES])
            left.append(int(lesion_mask(stack, brain_mask(stack), NormaliseConfig()).sum()))
        print(f"healthy calibration phantoms, seed {seed}: voxels left out per case {left}")


def glioma_et(tmp: Path, weights: Path | None) -> None:
    model, meta = load_verified(weights)
    post = meta["postprocess"]
    ae = restored_flair_maps(post.restore_iterations)
    shipped = PipelineConfig().intensity
    # The shipped thresholds and component rule, without the ET minimum (this diagnostic
    # predates it; results/experiments-normalisation.md).
    no_et_min = {"et_min_voxels_by_subset": {}}
    ae_seg = variant_segmenter(model, "mvitae", dataclasses.replace(post, **no_et_min))
    int_seg = variant_segmenter(None, "intensity", dataclasses.replace(shipped, **no_et_min))
    folder = glioma_folder(tmp)
    for norm_name, cfg in (("plain", PLAIN), ("new", NormaliseConfig())):
        for p in prepare(folder, "glioma", model, torch.device("cpu"), post, normalise=cfg):
            for method, seg, maps_of in (
                ("AE", ae_seg, ae),
                ("intensity", int_seg, intensity_maps),
            ):
                labels = labels_of(seg, maps_of(seg, p))
                s = score_case(labels, p.ref, "gli")
                print(
                    f"{p.case_id} {norm_name:5s} {method:9s} ET {s['ET'].lesionwise_dice:.3f} "
                    f"TC {s['TC'].lesionwise_dice:.3f} WT {s['WT'].lesionwise_dice:.3f} "
                    f"(ET voxels: predicted {int((labels == 3).sum())}, "
                    f"reference {int((p.ref == 3).sum())})",
                    flush=True,
                )


def real_fp(real: Path, tmp: Path, weights: Path | None) -> None:
    model, meta = load_verified(weights)
    post = meta["postprocess"]
    case_dir = tmp / "gli"
    case_dir.mkdir()
    (case_dir / "BraTS-GLI-00001-000").symlink_to(real / "BraTS-GLI-00001-000")
    (p,) = prepare(case_dir, "real", model, torch.device("cpu"), post)
    seg = variant_segmenter(model, "mvitae", post)
    box = ndimage.binary_dilation(p.ref > 0, iterations=3)
    ae = restored_flair_maps(post.restore_iterations)
    for name, fn, thr in (
        ("AE", ae, post.threshold_t2f),
        ("intensity", intensity_maps, PipelineConfig().intensity.threshold_t2f),
    ):
        maps, mask = fn(seg, p)
        values = maps["t2f"]
        labels, sizes, peaks = component_peaks(candidate_mask(values, mask, thr, post), values)
        outside = [
            (int(sizes[i]), round(float(peaks[i]), 2))
            for i in range(1, len(sizes))
            if sizes[i] >= post.min_component_voxels and box[labels == i].mean() < 0.5
        ]
        outside.sort(key=lambda r: -r[0])
        top = max((pk for _, pk in outside), default=float("nan"))
        print(
            f"{name}: {len(outside)} components outside the box, highest peak {top}; "
            f"(voxels, peak) largest first: {outside[:12]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("tumour-z", "glioma-et", "real-fp"))
    parser.add_argument("--weights", type=Path, help="default: the shipped default weights")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    args = parser.parse_args()
    weights = args.weights
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.part == "tumour-z":
            tumour_z(tmp)
        elif args.part == "glioma-et":
            glioma_et(tmp, weights)
        else:
            real_fp(args.real, tmp, weights)


if __name__ == "__main__":
    main()
