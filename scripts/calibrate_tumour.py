"""Label-free healthy levels for the whole tumour and its core (issue 26).

A FLAIR candidate is taken for the tumour only if its median z-scored T2w exceeds the
median of real healthy T2w (``TumourConfig.support_t2w_median``): tumour and oedema are
T2-bright, while a FLAIR-bright artefact or healthy structure need not be. Measured the way
``predict`` sees T2w (the same normalisation, in-plane 3x3 median and eroded brain mask),
pooled over every subject of ``--data`` with a T2w, their known lesions
(``<ID>-lesion.nii.gz``) left out. A tumour without ET gets its t1c-dark part as core:
darker than the 10th percentile of healthy t1c (``TumourConfig.netc_t1c_z``).

    python scripts/calibrate_tumour.py [--data ../shared/data/healthy-real] [--write]

``--write`` stores the value with this provenance in brats_goat/tumour.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brats_goat.training.healthy_levels import healthy_pool

ROOT = Path(__file__).resolve().parents[1]


def pooled_percentile(data: Path, modality: str, q: float) -> tuple[list[str], float]:
    """The ``q``th percentile of ``modality`` pooled over the subjects that have it."""
    pool = healthy_pool(data, modality)
    for name, values in pool.items():
        print(f"{name}: {modality} p{q:g} {np.percentile(values, q):.2f} z")
    return list(pool), round(float(np.percentile(np.concatenate(list(pool.values())), q)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/healthy-real")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    t2w_used, t2w_value = pooled_percentile(args.data, "t2w", 50)
    t1c_used, t1c_value = pooled_percentile(args.data, "t1c", 10)
    print(f"t2w_z_p50 = {t2w_value}  # {len(t2w_used)} subjects")
    print(f"t1c_z_p10 = {t1c_value}  # {len(t1c_used)} subjects")
    if args.write:
        record = {
            "about": "Healthy-tissue levels that decide which FLAIR candidate is the whole "
            "tumour (brats_goat.stages.tumour); label-free, from real healthy brains.",
            "thresholds": {"t2w_z_p50": t2w_value, "t1c_z_p10": t1c_value},
            "command": "python scripts/calibrate_tumour.py --write",
            "subjects": {
                "t2w": f"{args.data.name}: {', '.join(t2w_used)} (lesion masks left out)",
                "t1c": f"{args.data.name}: {', '.join(t1c_used)} (lesion masks left out)",
            },
        }
        (ROOT / "brats_goat" / "tumour.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
