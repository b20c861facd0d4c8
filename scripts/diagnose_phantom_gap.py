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
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

from brats_goat.anomaly import analysis_mask
from brats_goat.config import MODALITIES, PipelineConfig
from brats_goat.synth import synthesize
from brats_goat.threshold import binarise
from brats_goat.weights import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The development-phantom harness: same case preparation and residual maps.
from experiment_postprocess import ae_maps, intensity_maps, prepare  # scripts/ sibling


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
        "intensity": (intensity_maps, intensity, intensity.threshold_t2f),
        "mvitae": (ae_maps, meta["postprocess"], args.threshold_t2f),
    }
    plain = dataclasses.replace(meta["postprocess"], restore_iterations=0)
    c = MODALITIES.index("t2f")
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp), args.cases, seed=args.seed, kind="glioma", progress=False)
        cases = prepare(Path(tmp), "glioma", model, torch.device("cpu"), plain)
    for p in cases:
        wt, x = p.ref > 0, p.normalised
        for name, (maps, post, thr) in methods.items():
            estimate = float(p.recon[c][wt].mean()) if name == "mvitae" else 0.0
            mask = analysis_mask(p.brain, post.brain_erosion)
            res = maps(p, mask, post)["t2f"]
            b = binarise(res, mask, thr, post)
            tp, fn, fp = (b & wt).sum(), (~b & wt).sum(), (b & ~wt).sum()
            print(
                f"{p.case_id} {name}: threshold {thr:.2f}, WT {wt.sum()} vx, "
                f"predicted {b.sum()}, Dice {2 * tp / (2 * tp + fn + fp):.3f}, FN {fn}, "
                f"FP {fp}; in WT: z {x[c][wt].mean():.2f}, estimate {estimate:.2f}, "
                f"residual {res[wt].mean():.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
