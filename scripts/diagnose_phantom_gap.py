"""Diagnostic: where the MViT-AE loses whole-tumour Dice against the intensity baseline on
the *development* glioma phantoms (seed 3000; never reported).

For each phantom: FLAIR-channel masks of both methods after the pipeline's threshold,
morphology and largest-component rule, their Dice against the reference whole tumour, the
false negatives and positives, and the mean z / reconstruction / residual inside the
tumour (a reconstruction above 0 there is tumour the model copied).

    python scripts/diagnose_phantom_gap.py runs/v1c/mvitae-small-v1c.pt 1.722

The second argument is the AE's FLAIR threshold on the development healthy phantoms
(``experiment_postprocess.py`` prints it), so both methods are cut the same label-free way.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from brats_goat.anomaly import analysis_mask, residual_maps
from brats_goat.config import MODALITIES, InferenceConfig, NormaliseConfig, PipelineConfig
from brats_goat.discover import discover_cases
from brats_goat.normalise import normalise_stack
from brats_goat.read import load_case, load_reference_labels
from brats_goat.reconstruct import reconstruct_volume
from brats_goat.synth import synthesize
from brats_goat.threshold import binarise
from brats_goat.weights import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("threshold_t2f", type=float)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3000)
    args = parser.parse_args()
    model, meta = load_checkpoint(args.weights, None)
    intensity = PipelineConfig().intensity
    methods = {
        "intensity": (intensity, intensity.threshold_t2f),
        "mvitae": (meta["postprocess"], args.threshold_t2f),
    }
    c = MODALITIES.index("t2f")
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp), args.cases, seed=args.seed, kind="glioma", progress=False)
        for case in discover_cases(Path(tmp)):
            volumes = load_case(case)
            wt = load_reference_labels(case, volumes, 1e-3) > 0
            x, brain = normalise_stack(volumes.stack(MODALITIES), NormaliseConfig())
            recon = reconstruct_volume(model, x, brain, InferenceConfig(), torch.device("cpu"))
            for name, (post, thr) in methods.items():
                estimate = recon if name == "mvitae" else np.zeros_like(x)
                mask = analysis_mask(brain, post.brain_erosion)
                res = residual_maps(x, estimate, mask, post)["t2f"]
                b = binarise(res, mask, thr, post)
                tp, fn, fp = (b & wt).sum(), (~b & wt).sum(), (b & ~wt).sum()
                print(
                    f"{case.case_id} {name}: threshold {thr:.2f}, WT {wt.sum()} vx, "
                    f"predicted {b.sum()}, Dice {2 * tp / (2 * tp + fn + fp):.3f}, FN {fn}, "
                    f"FP {fp}; in WT: z {x[c][wt].mean():.2f}, estimate "
                    f"{estimate[c][wt].mean():.2f}, residual {res[wt].mean():.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
