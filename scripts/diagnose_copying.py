"""Diagnostic: how much of a real tumour's FLAIR contrast the residual keeps, per
restoration pass.

For each real case with a ``-ref`` label map: the mean FLAIR z inside the reference whole
tumour, the share of it the residual (input - estimate) keeps after k restoration passes
(100% = nothing copied), and the mean |residual| outside the reference (healthy-tissue
error). It reads reference labels of reported cases, so it explains results; it is not
used to choose any setting.

    python scripts/diagnose_copying.py runs/v3n3/mvitae-small-tokens-v3n3.pt --passes 3
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from brats_goat.config import MODALITIES, InferenceConfig, NormaliseConfig
from brats_goat.discover import discover_cases
from brats_goat.normalise import normalise_stack
from brats_goat.read import load_case, load_reference_labels
from brats_goat.restore import restore_volume
from brats_goat.weights import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    args = parser.parse_args()
    model, meta = load_checkpoint(args.weights, None)
    # Every pass restores both maps here, so each row shows the raw estimate.
    post = dataclasses.replace(
        meta["postprocess"], restore_iterations=args.passes, restore_maps=("t1c", "t2f")
    )
    c = MODALITIES.index("t2f")
    for case in discover_cases(args.real):
        volumes = load_case(case)
        ref = load_reference_labels(case, volumes, 1e-3)
        if ref is None:
            continue
        x, brain = normalise_stack(volumes.stack(MODALITIES), NormaliseConfig())
        seen: dict[int, np.ndarray] = {}
        restore_volume(
            model, x, brain, post, InferenceConfig(), torch.device("cpu"), on_pass=seen.__setitem__
        )
        wt, healthy = ref > 0, brain & (ref == 0)
        z = float(x[c][wt].mean())
        cells = [case.case_id, f"FLAIR z in WT {z:.2f}"]
        for k, estimate in sorted(seen.items()):
            res = x[c] - estimate[c]
            cells.append(
                f"pass {k}: kept {res[wt].mean() / z:.0%}, "
                f"healthy |res| {np.abs(res[healthy]).mean():.3f}"
            )
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
