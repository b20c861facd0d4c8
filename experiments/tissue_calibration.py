"""Real-tissue calibration and late fusion on the development cases (issue 15).

Each variant is calibrated label-free on real healthy tissue
(``brats_goat.calibration.tissue``: ../shared/data/healthy-real with lesions left
out, and the far slices of ../shared/data/real), then scored on the development cases
(real cases with a ``-ref``, the expert gliomas of ../shared/data/real-expert) with the
library's own ``Segmenter.segment``, refinement off. Variants:

- ``intensity``: the training-free baseline;
- ``mvitae``: the shipped MViT-AE's residual;
- ``fusion-W``: the late-fusion map ``(1 - W) * residual + W * image`` of the same model.

    python -m experiments.tissue_calibration [--variants intensity,mvitae,fusion-0.5]
                                             [--weights runs/X/model.pt]
                                             [--out results/experiments-tissue.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from brats_goat import PipelineConfig, discover_cases, make_segmenter
from brats_goat.calibration.tissue import calibrate_on_tissue, with_thresholds
from brats_goat.evaluation.metrics import score_case
from brats_goat.segmenter import IntensitySegmenter, MViTAESegmenter, Segmenter
from brats_goat.stages.refine_config import RefineConfig
from experiments.et_core import scored_cases

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"


class CachedAE(MViTAESegmenter):
    """The MViT-AE with its reconstructions remembered: fusion variants share them."""

    cache: ClassVar[dict[str, np.ndarray]] = {}

    def reconstruct(self, normalised, brain, present=("t1n", "t1c", "t2w", "t2f")):
        key = hashlib.sha1(normalised.tobytes() + repr(present).encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = super().reconstruct(normalised, brain, present)
        return self.cache[key]


def base_segmenter(variant: str, weights: Path | None = None) -> Segmenter:
    """The variant's segmenter before calibration (fusion weight set, thresholds stale)."""
    config = PipelineConfig(refine=RefineConfig("none"))
    if variant == "intensity":
        return IntensitySegmenter(config)
    ae = make_segmenter("mvitae", weights, config=config)
    weight = float(variant.split("-")[1]) if variant.startswith("fusion-") else 0.0
    post = dataclasses.replace(ae.postprocess, fusion_weight=weight)
    return CachedAE(ae.model, dataclasses.replace(config, postprocess=post), ae.meta)


def score_variant(segmenter: Segmenter) -> dict[str, dict]:
    """Lesion-wise Dice (GLI) per development case with a reference."""
    out = {}
    for name, volumes, ref in scored_cases():
        labels = segmenter.segment(volumes).labels
        s = score_case(labels, ref, "gli")
        row = {r: round(float(v.lesionwise_dice), 3) for r, v in s.items()}
        row["ET found"] = bool((labels == 3).any())
        out[name] = row
        print(f"  {name}: {row}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="intensity,mvitae,fusion-0.5")
    parser.add_argument("--out", type=Path, default=ROOT / "results/experiments-tissue.json")
    parser.add_argument("--weights", type=Path, help="MViT-AE checkpoint (default: shipped)")
    args = parser.parse_args()
    healthy, tumour = discover_cases(DATA / "healthy-real"), discover_cases(DATA / "real")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for variant in args.variants.split(","):
        print(f"== {variant}", flush=True)
        seg = base_segmenter(variant, args.weights)
        post, info = calibrate_on_tissue(seg, healthy, tumour, echo=print)
        print(json.dumps(info["thresholds"]), json.dumps(info["et_min_voxels"]), flush=True)
        scores = score_variant(with_thresholds(seg, post))
        name = f"{variant}@{args.weights.name}" if args.weights else variant
        results[name] = {
            "calibration": info,
            "postprocess": dataclasses.asdict(post),
            "scores": scores,
        }
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
