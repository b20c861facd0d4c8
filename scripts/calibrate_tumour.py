"""Label-free healthy T2w level for choosing the whole tumour (issue 26).

A FLAIR candidate is taken for the tumour only if its median z-scored T2w exceeds the
median of real healthy T2w (``TumourConfig.support_t2w_median``): tumour and oedema are
T2-bright, while a FLAIR-bright artefact or healthy structure need not be. Measured the way
``predict`` sees T2w (the same normalisation, in-plane 3x3 median and eroded brain mask),
pooled over every subject of ``--data`` with a T2w, their known lesions
(``<ID>-lesion.nii.gz``) left out.

    python scripts/calibrate_tumour.py [--data ../shared/data/healthy-real] [--write]

``--write`` stores the value with this provenance in brats_goat/tumour.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat import discover_cases, load_case
from brats_goat.conventions import MODALITIES
from brats_goat.segmenter import PipelineConfig, intensity_baseline
from brats_goat.stages.anomaly import analysis_mask, median3_inplane
from brats_goat.stages.normalise import normalise_case

ROOT = Path(__file__).resolve().parents[1]


def healthy_t2w(case_dir: Path) -> np.ndarray | None:
    """One subject's z-scored, median-filtered T2w inside its eroded brain, lesions out."""
    case = discover_cases(case_dir)[0]
    if "t2w" not in case.files:
        return None
    volumes = load_case(case, allow_missing=True)
    normalised, brain, _ = normalise_case(volumes.stack(MODALITIES), PipelineConfig().normalise)
    mask = analysis_mask(brain, intensity_baseline().brain_erosion)
    lesion_file = case_dir / f"{case.case_id}-lesion.nii.gz"
    if lesion_file.is_file():  # stored LPS, like the canonical arrays (healthy-real README)
        mask &= ~(np.asarray(nib.load(lesion_file).dataobj) > 0)
    return median3_inplane(normalised[MODALITIES.index("t2w")])[mask]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/healthy-real")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    used, pooled = [], []
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        values = healthy_t2w(folder)
        if values is not None:
            used.append(folder.name)
            pooled.append(values)
            print(f"{folder.name}: median T2w {np.median(values):.2f} z")
    if not pooled:
        raise SystemExit(f"no subject with a T2w in {args.data}")
    value = round(float(np.median(np.concatenate(pooled))), 2)
    print(f"t2w_z_p50 = {value}  # {len(used)} subjects")
    if args.write:
        record = {
            "about": "Healthy-tissue levels that decide which FLAIR candidate is the whole "
            "tumour (brats_goat.stages.tumour); label-free, from real healthy brains.",
            "thresholds": {"t2w_z_p50": value},
            "command": "python scripts/calibrate_tumour.py --write",
            "subjects": f"{args.data.name}: {', '.join(used)} (their lesion masks left out)",
        }
        (ROOT / "brats_goat" / "tumour.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
