"""Label-free thresholds of the intensity baseline, from healthy phantoms.

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

The values it prints are the data in ``brats_goat/intensity_baseline.json`` (with this
command as their provenance); `predict --method intensity` reads them from there.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.segmenter import IntensitySegmenter, PipelineConfig
from brats_goat.stages.normalise import normalise_case
from brats_goat.stages.refine import RefineConfig
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.synth import generate_case

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--percentile", type=float, default=99.9)
    args = parser.parse_args()
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
