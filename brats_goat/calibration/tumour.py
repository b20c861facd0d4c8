"""Label-free healthy levels for the whole tumour and its core (issue 26): ``tumour.json``.

A FLAIR candidate is taken for the tumour only if its median z-scored T2w exceeds the
median of real healthy T2w (``TumourConfig.support_t2w_median``): tumour and oedema are
T2-bright, while a FLAIR-bright artefact or healthy structure need not be. Measured the way
``predict`` sees T2w (``healthy_levels``), pooled over every healthy subject with a T2w,
known lesions left out. A tumour without ET gets its t1c-dark part as core: darker than
the 10th percentile of healthy t1c (``TumourConfig.netc_t1c_z``). The stored keys
(``t2w_z_p50``, ``t1c_z_p10``) are what the stage reads; ``settings`` says which
percentiles they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brats_goat.calibration.healthy_levels import healthy_pool
from brats_goat.calibration.records import make_record

ABOUT = (
    "Healthy-tissue levels that decide which FLAIR candidate is the whole tumour "
    "(brats_goat.stages.tumour); label-free, from real healthy brains."
)


def pooled_percentile(
    data: Path, modality: str, q: float, echo: Callable[[str], None]
) -> tuple[list[str], float]:
    """The ``q``th percentile of ``modality`` pooled over the subjects that have it."""
    pool = healthy_pool(data, modality)
    for name, values in pool.items():
        echo(f"{name}: {modality} p{q:g} {np.percentile(values, q):.2f} z")
    return list(pool), round(float(np.percentile(np.concatenate(list(pool.values())), q)), 2)


def tumour_record(
    data: Path,
    t2w_percentile: float,
    t1c_percentile: float,
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``tumour.json`` measured on the healthy subjects in ``data``."""
    t2w_used, t2w_value = pooled_percentile(data, "t2w", t2w_percentile, echo)
    t1c_used, t1c_value = pooled_percentile(data, "t1c", t1c_percentile, echo)
    echo(f"t2w_z_p50 = {t2w_value}  # p{t2w_percentile:g}, {len(t2w_used)} subjects")
    echo(f"t1c_z_p10 = {t1c_value}  # p{t1c_percentile:g}, {len(t1c_used)} subjects")
    return make_record(
        "tumour",
        ABOUT,
        {"thresholds": {"t2w_z_p50": t2w_value, "t1c_z_p10": t1c_value}},
        {"t2w_percentile": t2w_percentile, "t1c_percentile": t1c_percentile},
        {
            "data": {
                "t2w": f"{data.name}: {', '.join(t2w_used)} (lesion masks left out)",
                "t1c": f"{data.name}: {', '.join(t1c_used)} (lesion masks left out)",
            }
        },
    )
