"""Issue 26: what every sequence says about the tumour, cached once per case.

``cache`` runs the library's read, normalise and reconstruct stages (the shipped
segmenter, or ``--weights``) on every case of the given folders and stores, cropped to the
brain's box: the z-scored stack, the healthy estimate, the brain and analysis masks, the
reference and the shipped default's labels. The label rules of issue 26 are then tried on
these files in seconds instead of minutes (``experiments/tumour_rules.py``).

    python -m experiments.tumour_evidence cache ../shared/data/brats18-dev -o /work/runs/cache26
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels
from brats_goat.segmenter import make_segmenter
from brats_goat.stages.crop import bounding_box


def cache_case(seg, case, out: Path) -> None:
    """One case's stages up to the reconstruction, and its labels, as ``out/<ID>.npz``."""
    volumes = load_case(case, allow_missing=True)
    ref = load_reference_labels(case, volumes) if case.reference is not None else None
    lesion_file = case.folder / f"{case.case_id}-lesion.nii.gz"
    lesion = None
    if lesion_file.exists():
        lesion = volumes.from_stored(np.asarray(nib.load(lesion_file).dataobj) > 0)
    norm = seg.normalise(volumes)
    recon = seg.reconstruct(norm.stack, norm.brain, volumes.present)
    _, mask = seg.anomaly(norm.stack, recon, norm.brain, volumes.present)
    labels = seg.segment(volumes).labels
    box = bounding_box(norm.brain, seg.crop_margin)
    arrays = {
        "stack": box.crop(norm.stack),
        "recon": box.crop(recon).astype(np.float32),
        "brain": box.crop(norm.brain),
        "mask": box.crop(mask),
        "labels": box.crop(labels),
        "present": np.array(volumes.present),
        "region": np.array([[s.start, s.stop] for s in box.region]),
        "shape": np.array(box.shape),
    }
    if ref is not None:
        arrays["ref"] = box.crop(ref)
    if lesion is not None:
        arrays["lesion"] = box.crop(lesion)
    np.savez(out / f"{case.case_id}.npz", **arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["cache"])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    seg = make_segmenter("mvitae", args.weights)
    for root in args.data:
        for case in discover_cases(root):
            start = time.perf_counter()
            cache_case(seg, case, args.output)
            print(f"{case.case_id}: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
