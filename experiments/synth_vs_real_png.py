"""Save docs/synth_vs_real.png: a real and a synthetic axial slice of the 4 modalities.

Why: a side-by-side look is the quickest check that the phantoms resemble BraTS scans
(brain size and position, tissue contrast, noise, lesion appearance). Needs matplotlib
(the 'plots' extra).

Usage: python experiments/synth_vs_real_png.py [--real CASE_DIR] [--seed S] [--index I]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels

MODALITIES = ("t1n", "t1c", "t2w", "t2f")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "real" / "BrainLes-example"


def load_real(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Images in the common (LPS) array order, through the package's reader, and labels."""
    (case,) = discover_cases(folder)
    volumes = load_case(case)
    return volumes.arrays, load_reference_labels(case, volumes)


def pick_slice(images: dict[str, np.ndarray], labels: np.ndarray | None) -> int:
    """The axial slice with the most tumour, else the one with the most brain."""
    if labels is not None and labels.any():
        return int(np.argmax((labels > 0).sum(axis=(0, 1))))
    return int(np.argmax((images["t1n"] > 0).sum(axis=(0, 1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0, help="first case index to try")
    parser.add_argument("--kind", default="glioma")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "synth_vs_real.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brats_goat.synth import generate_case

    real, real_labels = load_real(args.real)
    # The first case from --index on with an enhancing tumour (shows all compartments).
    for index in range(args.index, args.index + 20):
        case = generate_case(args.seed, index, kind=args.kind)
        if case.seg is None or (case.seg == 3).any():
            break
    synth = {m: case.images[m].astype(np.float32) for m in MODALITIES}
    rows = [
        (f"real {args.real.name}", real, pick_slice(real, real_labels)),
        (f"synthetic {case.case_id} ({case.kind})", synth, pick_slice(synth, case.seg)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.6), facecolor="black")
    for r, (title, images, z) in enumerate(rows):
        for c, mod in enumerate(MODALITIES):
            ax = axes[r, c]
            data = images[mod]
            vmax = np.percentile(data[data > 0], 99.5)
            # Rows = y (anterior at the top), columns = x (patient left on the right).
            ax.imshow(data[:, :, z].T, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{title}\n{mod}  z={z}", color="white", fontsize=10)
            ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
