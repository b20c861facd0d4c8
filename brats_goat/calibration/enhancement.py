"""Label-free enhancement thresholds from real healthy t1c (issue 15): ``enhancement.json``.

Near a tumour, t1c counts as enhancing above the ``percentile`` of the z-scored t1c of
*real* healthy brains (``healthy_levels``: the same normalisation, median filter and eroded
brain mask as ``predict``, every subject with a t1c, known lesions left out). The
whole-brain 99.9th percentile of real healthy t1c is 4-5 z (vessels, choroid plexus), far
above real enhancement; the search is restricted to the tumour and its rim, so a lower
percentile (99.5, chosen on the development cases: results/experiments-et-core.md) keeps
the false enhancement volume small there. ET so found then grows (hysteresis) into the
connected t1c above the ``grow_percentile`` (85): the weak part of a rim that has a
clearly enhancing part (results/experiments-et-core.md, "Hysteresis").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brats_goat.calibration.healthy_levels import healthy_pool
from brats_goat.calibration.records import make_record

ABOUT = (
    "t1c z above which tissue in and around the whole tumour is enhancing "
    "(LabelsConfig.et_threshold_z), and to which ET so found grows "
    "(LabelsConfig.et_grow_z); label-free, from real healthy brains."
)


def enhancement_record(
    data: Path,
    percentile: float,
    grow_percentile: float,
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``enhancement.json`` measured on the healthy subjects in ``data``."""
    if grow_percentile > percentile:
        raise ValueError("--grow-percentile must not exceed --percentile")
    pool = healthy_pool(data, "t1c")
    for name, subject in pool.items():
        echo(f"{name}: {np.percentile(subject, percentile):.2f}")
    values = np.concatenate(list(pool.values()))
    value = round(float(np.percentile(values, percentile)), 2)
    grow = round(float(np.percentile(values, grow_percentile)), 2)
    echo(f"et_threshold_z = {value}  # {percentile}th percentile, {len(pool)} subjects")
    echo(f"et_grow_z = {grow}  # {grow_percentile}th percentile")
    return make_record(
        "enhancement",
        ABOUT,
        {"et_threshold_z": value, "et_grow_z": grow},
        {"percentile": percentile, "grow_percentile": grow_percentile},
        {"data": f"{data.name}: {', '.join(pool)} (their lesion masks left out)"},
    )
