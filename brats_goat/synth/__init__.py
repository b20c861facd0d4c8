"""Synthetic BraTS-like phantoms: healthy brains and tumours with exact labels.

Anatomy comes from the MNI ICBM152 2009 templates shipped with nilearn (offline), placed
in the BraTS grid and varied per case; contrasts are calibrated on real scans
(``experiments/measure_tissue_ratios.py``).
"""

from brats_goat.synth.config import SynthConfig
from brats_goat.synth.generate import (
    SynthCase,
    case_id,
    generate_case,
    plan_case,
    synthesize,
    write_case,
)

__all__ = [
    "SynthCase",
    "SynthConfig",
    "case_id",
    "generate_case",
    "plan_case",
    "synthesize",
    "write_case",
]
