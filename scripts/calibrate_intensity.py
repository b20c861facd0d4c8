"""Label-free thresholds of the intensity baseline, from real healthy tissue or phantoms.

What ships (issue 15) is measured on real tissue: ``--tissue`` runs
``brats_goat.training.calibrate_tissue`` (whole volumes of ../shared/data/healthy-real with
their lesion masks left out, and the slices of ../shared/data/real far from a label map; the
median over subjects of each subject's percentile) and ``--write`` stores the result with its
provenance in ``brats_goat/intensity_baseline.json``:

    python scripts/calibrate_intensity.py --tissue [--percentile 99.9] [--write]

Without ``--tissue``, the earlier phantom calibration, kept for comparison:

The baseline flags voxels whose z-scored FLAIR (t1c) is unusually high. "Unusually" is set
without any tumour label and without the cases we report on: the 99.9th percentile of the
median-filtered z-maps inside the eroded brain of healthy phantoms (seeds 1000+, never used
by a benchmark), through the same code path as `predict --method intensity`: the
``IntensitySegmenter``'s normalise, reconstruct and anomaly stages give the maps and the
analysis mask. The peak values of the component rule are then the highest component peak
left on those phantoms at those thresholds (`brats_goat.stages.threshold.healthy_peak`), so
no healthy component would survive; the ET minimum is the largest t1c component the
segmenter's threshold stage keeps there (with no ET minimum of its own applied).

    python scripts/calibrate_intensity.py [--cases 8] [--seed 1000] [--percentile 99.9]

`predict --method intensity` reads its values from ``brats_goat/intensity_baseline.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.segmenter import IntensitySegmenter, PipelineConfig
from brats_goat.stages.normalise import normalise_case
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.synth import generate_case
from brats_goat.training.calibrate_tissue import TissueCalibrationConfig, calibrate_on_tissue

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BASELINE = ROOT / "brats_goat" / "intensity_baseline.json"

Maps = dict[str, np.ndarray]


def healthy_maps(
    segmenter: IntensitySegmenter, seed: int, cases: int
) -> list[tuple[Maps, np.ndarray]]:
    """Anomaly maps and analysis mask of ``cases`` healthy phantoms of ``seed``, through the
    segmenter's stages (as ``Segmenter.candidates`` runs them; on a healthy phantom the
    lesion-robust normalisation is exactly the plain z-score)."""
    out = []
    for i in range(cases):
        case = generate_case(seed, i, healthy=True)
        stack = np.stack([case.images[m].astype(np.float32) for m in MODALITIES])
        normalised, brain, _ = normalise_case(stack, segmenter.config.normalise)
        recon = segmenter.reconstruct(normalised, brain, MODALITIES)
        out.append(segmenter.anomaly(normalised, recon, brain, MODALITIES))
    return out


def tissue(args: argparse.Namespace) -> None:
    """Real-tissue calibration; with ``--write`` the shipped baseline and its provenance."""
    segmenter = IntensitySegmenter(PipelineConfig(refine=RefineConfig("none")))
    healthy, tumour = discover_cases(args.healthy), discover_cases(args.tumour)
    cfg = TissueCalibrationConfig(percentile=args.percentile)
    post, info = calibrate_on_tissue(segmenter, healthy, tumour, cfg, echo=print)
    keys = ("thresholds_by_subset", "peak_thresholds_by_subset", "et_min_voxels_by_subset")
    values = {k: getattr(post, k) for k in ("threshold_t1c", "threshold_t2f", *keys)}
    print(json.dumps(values, indent=1))
    if not args.write:
        return
    data = json.loads(BASELINE.read_text())
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    data["provenance"] = {
        "command": f"python scripts/calibrate_intensity.py --tissue --percentile {args.percentile}"
        " --write",
        "data": "real healthy tissue: " + ", ".join(info["calibrated_on"]),
        "rule": "brats_goat.training.calibrate_tissue (median over subjects of each subject's "
        "percentile; known lesions and tumour slices left out)",
        "voxels": info["data"],
        "measured_at_commit": commit,
    }
    data["postprocess"] = {k: v for k, v in values.items() if k != "thresholds_by_subset"}
    BASELINE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {BASELINE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--percentile", type=float, default=99.9)
    parser.add_argument("--tissue", action="store_true", help="real tissue (what ships)")
    parser.add_argument("--healthy", type=Path, default=DATA / "healthy-real")
    parser.add_argument("--tumour", type=Path, default=DATA / "real")
    parser.add_argument("--write", action="store_true", help="with --tissue: update the JSON")
    args = parser.parse_args()
    if args.tissue:
        tissue(args)
        return
    # Refinement plays no part in the statistics (it comes after the threshold stage).
    segmenter = IntensitySegmenter(PipelineConfig(refine=RefineConfig("none")))
    post = segmenter.postprocess
    cases = healthy_maps(segmenter, args.seed, args.cases)
    for name in ("t1c", "t2f"):
        pooled = np.concatenate([maps[name][mask] for maps, mask in cases])
        value = float(np.percentile(pooled, args.percentile))
        peak = max(healthy_peak(maps[name], mask, round(value, 2), post) for maps, mask in cases)
        print(
            f"threshold_{name} = {value:.2f}, peak {peak:.2f}  # {args.percentile}th percentile, "
            f"{args.cases} healthy phantoms, seed {args.seed}"
        )
    # The threshold stage at the stored thresholds (so the minimum matches what predict
    # applies), without the stored ET minimum: the minimum is what is measured here.
    probe = IntensitySegmenter(
        dataclasses.replace(
            segmenter.config, intensity=dataclasses.replace(post, et_min_voxels_by_subset={})
        )
    )
    et_min = max(
        largest_component_voxels(probe.threshold(maps, mask, MODALITIES)["t1c"])
        for maps, mask in cases
    )
    print(f"et_min_voxels = {et_min}  # largest t1c component kept at {post.threshold_t1c}")


if __name__ == "__main__":
    main()
