"""Is each sequence in its own file? A check on t1c and t2f swapped (issue 27).

Two T1-weighted images of one brain look alike (white matter bright, fluid dark), and a
FLAIR looks more like a T2w than a post-contrast T1 does. So in a four-sequence case the t1c
file should correlate with t1n more than the t2f file does, and the t2f file with t2w more
than the t1c file does. On 17 real four-sequence cases (14 tumours, 3 MS patients) the sum of
both margins was -0.26 to 1.67, above 0.4 in 12 of them; swapped files reverse its sign
(``python -m experiments.sequence_swap``, results/sequence-swap-27.md). A sum below
``SWAP_MARGIN`` warns: a case whose t1c and t2f are swapped puts the whole tumour
on the enhancement and ET on the oedema, and nothing else would say so.
"""

from __future__ import annotations

import numpy as np

#: Below this the case is warned that its t1c and t2f look swapped: no real case of the 17
#: reached it (lowest -0.26, BraTS-MET-00110-000), and 12 of their swapped copies do.
SWAP_MARGIN = -0.4
#: Every STRIDE-th voxel enters the correlations (a few hundred thousand voxels are plenty).
STRIDE = 7


def swap_score(arrays: dict[str, np.ndarray]) -> float | None:
    """corr(t1c, t1n) - corr(t2f, t1n) + corr(t2f, t2w) - corr(t1c, t2w) over the voxels
    where all four have brain; None unless the case has all four (and enough brain)."""
    if not {"t1c", "t1n", "t2f", "t2w"} <= set(arrays):
        return None
    sample = {m: arrays[m].ravel()[::STRIDE] for m in ("t1c", "t1n", "t2f", "t2w")}
    inside = np.logical_and.reduce([v != 0 for v in sample.values()])
    if int(inside.sum()) < 1000:
        return None
    values = {m: v[inside].astype(np.float64) for m, v in sample.items()}
    if any(v.std() == 0 for v in values.values()):
        return None

    def corr(a: str, b: str) -> float:
        return float(np.corrcoef(values[a], values[b])[0, 1])

    return corr("t1c", "t1n") - corr("t2f", "t1n") + corr("t2f", "t2w") - corr("t1c", "t2w")


def swap_warning(arrays: dict[str, np.ndarray], files: dict[str, str]) -> str | None:
    """The report's warning when t1c and t2f look swapped (``swap_score``), else None."""
    score = swap_score(arrays)
    if score is None or score >= SWAP_MARGIN:
        return None
    return (
        f"t1c file {files['t1c']} and t2f file {files['t2f']} look swapped: the t1c file "
        f"resembles the t2w more than the t1n, the t2f file the t1n more than the t2w "
        f"(score {score:.2f}; real cases -0.26 or more): check the file names; the labels "
        "assume the names are right"
    )
