"""Label-free thresholds of the intensity baseline, from healthy phantoms.

The baseline flags voxels whose z-scored FLAIR (t1c) is unusually high. "Unusually" is set
without any tumour label and without the cases we report on: the 99.9th percentile of the
median-filtered z-maps inside the eroded brain of healthy phantoms (seeds 1000+, never used
by a benchmark), through the same code path as `predict --method intensity`. The peak values
of the component rule are then the highest component peak left on those phantoms at those
thresholds (`brats_goat.stages.threshold.healthy_peak`), so no healthy component would survive;
the ET minimum is the largest t1c component the pipeline's threshold chain keeps there.

    python scripts/calibrate_intensity.py [--cases 8] [--seed 1000] [--percentile 99.9]

The values it prints are the data in ``brats_goat/intensity_baseline.json`` (with this
command as their provenance); `predict --method intensity` reads them from there.
"""

from __future__ import annotations

import argparse

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.segmenter import PipelineConfig
from brats_goat.stages.anomaly import analysis_mask, residual_maps
from brats_goat.stages.normalise import normalise_stack
from brats_goat.stages.threshold import binarise, healthy_peak, largest_component_voxels
from brats_goat.synth import generate_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--percentile", type=float, default=99.9)
    args = parser.parse_args()
    cfg = PipelineConfig()
    post = cfg.intensity
    pooled: dict[str, list[np.ndarray]] = {"t1c": [], "t2f": []}
    cases = []
    for i in range(args.cases):
        case = generate_case(args.seed, i, healthy=True)
        stack = np.stack([case.images[m].astype(np.float32) for m in MODALITIES])
        normalised, brain = normalise_stack(stack, cfg.normalise)
        mask = analysis_mask(brain, post.brain_erosion)
        maps = residual_maps(normalised, np.zeros_like(normalised), mask, post)
        cases.append((maps, mask))
        for name, values in maps.items():
            pooled[name].append(values[mask])
    for name, chunks in pooled.items():
        value = float(np.percentile(np.concatenate(chunks), args.percentile))
        peak = max(healthy_peak(maps[name], mask, round(value, 2), post) for maps, mask in cases)
        print(
            f"threshold_{name} = {value:.2f}, peak {peak:.2f}  # {args.percentile}th percentile, "
            f"{args.cases} healthy phantoms, seed {args.seed}"
        )
    # The stored t1c threshold, so the minimum matches what predict applies.
    et_min = max(
        largest_component_voxels(binarise(maps["t1c"], mask, post.threshold_t1c, post))
        for maps, mask in cases
    )
    print(f"et_min_voxels = {et_min}  # largest t1c component kept at {post.threshold_t1c}")


if __name__ == "__main__":
    main()
