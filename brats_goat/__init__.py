"""brats-goat: label-free brain-tumour segmentation with a multimodal ViT autoencoder.

The user API, importable from here::

    from brats_goat import predict, make_segmenter, segment_case

    report = predict("cases/", "labels/")                  # a folder, as the CLI does
    segmenter = make_segmenter("mvitae")                   # or "intensity"
    result = segment_case("cases/BraTS-001/", segmenter)   # one case, as predict runs it
    result.labels                                          # 1 NETC, 2 SNFH, 3 ET, input grid

The data flow lives in the sub-packages: ``io`` (discover, read, write), ``stages``
(normalise -> reconstruct -> restore -> anomaly -> threshold -> refine -> labels), ``run``
(the folder runner and its reports), ``model``, ``training``, ``evaluation``, ``synth``.
"""

# First, before anything imports torch: large tensors on huge pages (brats_goat.memory).
import brats_goat.memory  # noqa: F401
from brats_goat._version import __version__

# isort: split

import importlib
from typing import Any

from brats_goat.io.discover import Case, discover_cases
from brats_goat.io.read import CaseError, CaseVolumes, load_case
from brats_goat.run.predict import InputError, predict
from brats_goat.run.segment_case import SegmentedCase, segment_case
from brats_goat.segmenter import (
    IntensitySegmenter,
    MViTAESegmenter,
    PipelineConfig,
    Segmentation,
    Segmenter,
    make_segmenter,
)

#: Imported on first use (PEP 562): the scorer and the phantoms pull libraries (scipy.spatial,
#: the metric code) that ``predict`` never needs, and every run's start-up would pay for them.
_LAZY = {
    "evaluate": ("brats_goat.evaluation.evaluate", "evaluate_folder"),
    "synthesize": ("brats_goat.synth", "synthesize"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'brats_goat' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = [
    "Case",
    "CaseError",
    "CaseVolumes",
    "InputError",
    "IntensitySegmenter",
    "MViTAESegmenter",
    "PipelineConfig",
    "Segmentation",
    "SegmentedCase",
    "Segmenter",
    "__version__",
    "discover_cases",
    "evaluate",
    "load_case",
    "make_segmenter",
    "predict",
    "segment_case",
    "synthesize",
]
