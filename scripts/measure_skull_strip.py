"""The skull-strip check's measure on development scans (issue 27, item 2).

Prints, per case and modality, the share of the brain's outermost voxels brighter than
``StrippedCheck.bright_factor`` x the median of its centre (``brats_goat.io.stripped``),
and the largest share per checked modality over all cases: the limit
(``StrippedCheck.max_bright_share``) must stay well above it. ``--shell`` also prints the
shares of each case with a bright shell added (6 voxels, 1.3x the brain's 99.5th
percentile, around the brain in every image; the background outside stays 0).
``--correlations`` also prints the largest correlation between two sequences of a case
over the brain (``brats_goat.io.consistency.SAME_IMAGE_CORRELATION`` must stay well above it).

    python scripts/measure_skull_strip.py \
        ../shared/data/{real,real-expert,brats18-dev,healthy-real} [--shell] [--correlations]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brats_goat.io.consistency import CORRELATION_STRIDE
from brats_goat.io.discover import discover_cases
from brats_goat.io.stripped import StrippedCheck, bright_surface_share


def with_shell(images: dict[str, np.ndarray], width: int = 6) -> dict[str, np.ndarray]:
    """``images`` with a shell ``width`` voxels thick around the (hole-filled) brain, at
    1.3x each image's own 99.5th brain percentile: a scalp that was not stripped."""
    brain = ndimage.binary_fill_holes(np.logical_or.reduce([a != 0 for a in images.values()]))
    shell = ndimage.binary_dilation(brain, iterations=width) & ~brain
    shelled = {}
    for modality, data in images.items():
        out = data.copy()
        out[shell] = 1.3 * np.percentile(data[data != 0], 99.5)
        shelled[modality] = out
    return shelled


def largest_correlation(images: dict[str, np.ndarray]) -> tuple[float, str]:
    """The largest |Pearson r| between two of ``images`` over the voxels both have."""
    best = (0.0, "")
    names = sorted(images)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = (images[a] != 0) & (images[b] != 0)
            x = images[a][both][::CORRELATION_STRIDE].astype(np.float64)
            y = images[b][both][::CORRELATION_STRIDE].astype(np.float64)
            r = abs(float(np.corrcoef(x, y)[0, 1]))
            best = max(best, (r, f"{a}-{b}"))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--shell", action="store_true", help="also measure each case shelled")
    parser.add_argument("--correlations", action="store_true", help="largest sequence pair r")
    args = parser.parse_args()
    check = StrippedCheck()
    largest: dict[str, tuple[float, str]] = {}
    for folder in args.folders:
        for case in discover_cases(folder):
            images = {
                m: np.asarray(nib.load(p).get_fdata(dtype=np.float32))
                for m, p in sorted(case.files.items())
            }
            shares = {m: bright_surface_share(a, check) for m, a in images.items()}
            print(case.case_id, " ".join(f"{m} {s:.3f}" for m, s in shares.items()))
            for m, s in shares.items():
                if s > largest.get(m, (-1.0, ""))[0]:
                    largest[m] = (s, case.case_id)
            if args.correlations:
                r, pair = largest_correlation(images)
                print(f"  largest correlation {r:.3f} ({pair})")
            if args.shell:
                shelled = {m: bright_surface_share(a, check) for m, a in with_shell(images).items()}
                print("  shelled", " ".join(f"{m} {s:.3f}" for m, s in shelled.items()))
    for m, (s, case_id) in sorted(largest.items()):
        checked = "checked" if m in check.modalities else "not checked"
        print(f"largest {m} ({checked}): {s:.3f} ({case_id}); limit {check.max_bright_share}")


if __name__ == "__main__":
    main()
