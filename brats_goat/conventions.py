"""BraTS conventions the whole package shares: channel order, output labels and the names
of modality subsets."""

from __future__ import annotations

#: Channel order of the model input; the paper's order (t1c, t1n, t2f, t2w).
MODALITIES: tuple[str, ...] = ("t1c", "t1n", "t2f", "t2w")

#: BraTS labels written to the output.
LABEL_NETC, LABEL_SNFH, LABEL_ET = 1, 2, 3


def subset_key(present: tuple[str, ...]) -> str:
    """Canonical name of a modality subset, e.g. ``'t1c+t2f'``: the key under which
    per-subset thresholds are stored in a checkpoint."""
    return "+".join(m for m in MODALITIES if m in present)
