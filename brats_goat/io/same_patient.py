"""A warning when a sequence may be another patient's scan.

Registered to the same atlas, another patient's brain fills the same grid (brain-overlap
Dice 0.93-0.96 on the development data), so the overlap check of ``io.consistency`` lets
it through, and a file renamed to the case's prefix passes the name check too. What gives
it away is the fine anatomy: the edges of one scan's sequences (sulci, ventricles, vessels)
line up, those of two patients only roughly. So each sequence's edge agreement with the
case's others is compared with what it is when the sequence is mirrored left-right, which
keeps the brain's rough shape and loses its fine alignment: a sequence of this scan loses a
lot, another patient's little.

Measured on the 31 development cases (1 mm in-plane, every 4th slice): a sequence of the
scan loses 0.159 or more (least: Brats18_CBICA_ARW_1's t1c); another patient's sequence put
in its place loses 0.095 or less (all 372 swaps of one sequence between two cases of
brats18-dev, or of real-expert). The gap is narrow, so this is a warning, never a
refusal. Heavy noise (a standard deviation of 30% of the brain's mean intensity added to a
real t2f) blurs the fine anatomy too and is warned the same way. About 0.1 s per case.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brats_goat.io.consistency import agreement, without_spikes

#: A sequence whose edge agreement with the case's others drops by less than this when it
#: is mirrored left-right is warned about: halfway between the development data's own
#: sequences (0.159 and above) and other patients' (0.095 and below).
SAME_SCAN_DROP = 0.12
#: Every this many slices (z) are compared: the in-plane edges at full resolution are what
#: tells two patients apart; more slices add time, not evidence.
SLICE_STRIDE = 4

Features = tuple[np.ndarray, np.ndarray]


def fine_edges(data: np.ndarray) -> Features:
    """In-plane gradient magnitude at full resolution on every ``SLICE_STRIDE``-th slice,
    and the brain there without its outer layer (every brain has that edge)."""
    sample = without_spikes(np.ascontiguousarray(data[:, :, ::SLICE_STRIDE], dtype=np.float32))
    gx, gy = np.gradient(sample, axis=(0, 1))
    return np.sqrt(gx * gx + gy * gy), ndimage.binary_erosion(sample != 0)


def mirror_drops(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """For each sequence: its mean edge agreement with the case's other sequences, minus
    the same with it mirrored left-right (the first, left-right axis of the canonical
    order). Empty for a case of one sequence."""
    if len(arrays) < 2:
        return {}
    edges = {m: fine_edges(a) for m, a in arrays.items()}
    drops = {}
    for name, (magnitude, brain) in edges.items():
        mirrored = (np.flip(magnitude, 0), np.flip(brain, 0))
        others = [e for m, e in edges.items() if m != name]
        stored = np.mean([agreement((magnitude, brain), e) for e in others])
        flipped = np.mean([agreement(mirrored, e) for e in others])
        drops[name] = float(stored - flipped)
    return drops


def other_patient_warnings(
    case_id: str, arrays: dict[str, np.ndarray], files: dict[str, str]
) -> list[str]:
    """Warnings naming the sequences that may be another patient's (``SAME_SCAN_DROP``);
    with two sequences, which one cannot be told, so the warning names both."""
    drops = mirror_drops(arrays)
    suspects = [m for m, drop in drops.items() if drop < SAME_SCAN_DROP]
    if not suspects:
        return []
    named = " and ".join(f"{m} file {files[m]} ({drops[m]:.2f})" for m in suspects)
    which = "one of them" if len(suspects) > 1 else "it"
    return [
        f"case {case_id}: {named}: the fine anatomy lines up with the case's other "
        f"sequences hardly better than with its mirror image (a drop under "
        f"{SAME_SCAN_DROP:g} when mirrored; every development case's own sequences drop by "
        f"0.15 or more): {which} may be another patient's scan, or one too noisy to show its "
        "anatomy; check the files"
    ]
