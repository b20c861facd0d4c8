"""Quality-control pictures: people look at these before they read numbers.

One PNG per case: the four modalities, both anomaly maps, the predicted labels and (when the
case has one) the reference, on the axial slices with the largest tumour area.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brats_goat.conventions import MODALITIES
from brats_goat.io.write import write_atomic

#: BraTS label colours (RGBA): NETC red, SNFH green, ET yellow.
LABEL_COLOURS = {1: (0.9, 0.1, 0.1, 0.7), 2: (0.1, 0.8, 0.2, 0.5), 3: (1.0, 0.9, 0.0, 0.8)}


def require_matplotlib():
    try:
        import matplotlib
    except ImportError as exc:  # an optional extra keeps the inference image lean
        raise RuntimeError("--qc-png needs matplotlib: pip install 'brats-goat[plots]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def qc_slices(labels: np.ndarray, reference: np.ndarray | None, n: int = 2) -> list[int]:
    """Axial slices with the largest tumour area (prediction or reference), else mid-brain."""
    area = (labels > 0).sum(axis=(0, 1)).astype(float)
    if reference is not None:
        area += (reference > 0).sum(axis=(0, 1))
    if not area.any():
        return [labels.shape[2] // 2]
    order = np.argsort(area)[::-1]
    picked: list[int] = []
    for z in order:  # spread the picks so two slices show different levels
        if area[z] == 0 or len(picked) == n:
            break
        if all(abs(int(z) - p) >= 5 for p in picked):
            picked.append(int(z))
    return sorted(picked)


def overlay(labels2d: np.ndarray) -> np.ndarray:
    rgba = np.zeros((*labels2d.shape, 4))
    for value, colour in LABEL_COLOURS.items():
        rgba[labels2d == value] = colour
    return rgba


def write_qc_png(
    path: str | Path,
    case_id: str,
    images: dict[str, np.ndarray],
    maps: dict[str, np.ndarray],
    labels: np.ndarray,
    reference: np.ndarray | None = None,
) -> Path:
    """Arrays in canonical (LPS) order; drawn with anterior up and patient left on the right."""
    plt = require_matplotlib()
    slices = qc_slices(labels, reference)
    panels = [*MODALITIES, "anomaly t2f", "anomaly t1c", "predicted", "reference"]
    fig, axes = plt.subplots(
        len(slices), len(panels), figsize=(2.0 * len(panels), 2.5 * len(slices)), squeeze=False
    )
    for row, z in zip(axes, slices, strict=True):
        t2f = images["t2f"][..., z]
        for ax, name in zip(row, panels, strict=True):
            ax.axis("off")
            if name in MODALITIES:
                shown = images[name][..., z]
                ax.imshow(np.rot90(shown), cmap="gray")
            elif name.startswith("anomaly"):
                ax.imshow(np.rot90(maps[name.split()[1]][..., z]), cmap="magma", vmin=0, vmax=4)
            else:
                lab = labels if name == "predicted" else reference
                ax.imshow(np.rot90(t2f), cmap="gray")
                if lab is not None:
                    ax.imshow(np.rot90(overlay(lab[..., z])))
                else:
                    name = "no reference"
            ax.set_title(f"{name} z={z}", fontsize=7)
    fig.suptitle(f"{case_id}: red NETC, green SNFH, yellow ET; anomaly 0-4 z", fontsize=8)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda name: fig.savefig(name, dpi=80), suffix=".tmp.png")
    finally:
        plt.close(fig)
