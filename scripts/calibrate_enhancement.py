"""Label-free enhancement thresholds from real healthy t1c (issue 15).

Near a tumour, t1c counts as enhancing above the ``--percentile`` of the z-scored t1c of
*real* healthy brains: the same normalisation, median filter and eroded brain mask as
`predict`, pooled over every subject of ``--data`` that has a t1c, with the voxels of each
subject's known lesions (``<ID>-lesion.nii.gz``) left out. The whole-brain 99.9th
percentile of real healthy t1c is 4-5 z (vessels, choroid plexus), far above real
enhancement; the search is restricted to the tumour and its rim, so a lower percentile
(99.5, chosen on the development cases: results/experiments-et-core.md) keeps the false
enhancement volume small there. ET so found then grows (hysteresis) into the connected t1c
above the ``--grow-percentile`` (85): the weak part of a rim that has a clearly enhancing
part (results/experiments-et-core.md, "Hysteresis").

    python scripts/calibrate_enhancement.py [--data ../shared/data/healthy-real]
                                            [--percentile 99.5] [--grow-percentile 85]
                                            [--write]

``--write`` stores the values with this provenance in brats_goat/enhancement.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from brats_goat.training.healthy_levels import healthy_pool

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/healthy-real")
    parser.add_argument("--percentile", type=float, default=99.5)
    parser.add_argument("--grow-percentile", type=float, default=85.0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    pool = healthy_pool(args.data, "t1c")
    for name, subject in pool.items():
        print(f"{name}: {np.percentile(subject, args.percentile):.2f}")
    used = list(pool)
    if args.grow_percentile > args.percentile:
        raise SystemExit("--grow-percentile must not exceed --percentile")
    values = np.concatenate(list(pool.values()))
    value = round(float(np.percentile(values, args.percentile)), 2)
    grow = round(float(np.percentile(values, args.grow_percentile)), 2)
    print(f"et_threshold_z = {value}  # {args.percentile}th percentile, {len(used)} subjects")
    print(f"et_grow_z = {grow}  # {args.grow_percentile}th percentile")
    if args.write:
        record = {
            "about": "t1c z above which tissue in and around the whole tumour is enhancing "
            "(LabelsConfig.et_threshold_z), and to which ET so found grows "
            "(LabelsConfig.et_grow_z); label-free, from real healthy brains.",
            "et_threshold_z": value,
            "et_grow_z": grow,
            "provenance": {
                "command": f"python scripts/calibrate_enhancement.py --percentile "
                f"{args.percentile} --grow-percentile {args.grow_percentile:g} --write",
                "data": f"{args.data.name}: {', '.join(used)} (their lesion masks left out)",
                "percentile": args.percentile,
                "grow_percentile": args.grow_percentile,
            },
        }
        out = ROOT / "brats_goat" / "enhancement.json"
        out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
