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

import importlib
from typing import Any

from brats_goat._version import __version__

#: The user API, imported on first use (PEP 562): importing the package loads nothing
#: heavy (no torch) and changes nothing process-wide, so the command line can opt into its
#: process settings first (``brats_goat.cli``), and ``evaluate`` and ``synthesize`` (the
#: scorer's and the phantoms' libraries) cost nothing until used.
_LAZY = {
    "Case": ("brats_goat.io.discover", "Case"),
    "discover_cases": ("brats_goat.io.discover", "discover_cases"),
    "CaseError": ("brats_goat.io.read", "CaseError"),
    "CaseVolumes": ("brats_goat.io.read", "CaseVolumes"),
    "load_case": ("brats_goat.io.read", "load_case"),
    "InputError": ("brats_goat.run.predict", "InputError"),
    "predict": ("brats_goat.run.predict", "predict"),
    "SegmentedCase": ("brats_goat.run.segment_case", "SegmentedCase"),
    "segment_case": ("brats_goat.run.segment_case", "segment_case"),
    "IntensitySegmenter": ("brats_goat.segmenter", "IntensitySegmenter"),
    "MViTAESegmenter": ("brats_goat.segmenter", "MViTAESegmenter"),
    "PipelineConfig": ("brats_goat.segmenter", "PipelineConfig"),
    "Segmentation": ("brats_goat.segmenter", "Segmentation"),
    "Segmenter": ("brats_goat.segmenter", "Segmenter"),
    "make_segmenter": ("brats_goat.segmenter", "make_segmenter"),
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
