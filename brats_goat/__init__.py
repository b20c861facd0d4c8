"""brats-goat: label-free brain-tumour segmentation with a multimodal ViT autoencoder.

The user API, importable from here::

    from brats_goat import predict, make_segmenter, discover_cases, load_case

    report = predict("cases/", "labels/")                  # a folder, as the CLI does
    segmenter = make_segmenter("mvitae")                   # or "intensity"
    result = segmenter.segment(load_case(discover_cases("cases/")[0], allow_missing=True))
    result.labels                                          # 1 NETC, 2 SNFH, 3 ET

The data flow lives in the sub-packages: ``io`` (discover, read, write), ``stages``
(normalise -> reconstruct -> restore -> anomaly -> threshold -> refine -> labels), ``run``
(the folder runner and its reports), ``model``, ``training``, ``evaluation``, ``synth``.
"""

__version__ = "0.1.0"

# First, before anything imports torch: large tensors on huge pages (brats_goat.memory).
import brats_goat.memory  # noqa: F401

# isort: split

# After __version__: the run report imports it from here.
from brats_goat.evaluation.evaluate import evaluate_folder as evaluate
from brats_goat.io.discover import Case, discover_cases
from brats_goat.io.read import CaseError, CaseVolumes, load_case
from brats_goat.run.predict import InputError, predict
from brats_goat.segmenter import (
    IntensitySegmenter,
    MViTAESegmenter,
    PipelineConfig,
    Segmentation,
    Segmenter,
    make_segmenter,
)
from brats_goat.synth import synthesize

__all__ = [
    "Case",
    "CaseError",
    "CaseVolumes",
    "InputError",
    "IntensitySegmenter",
    "MViTAESegmenter",
    "PipelineConfig",
    "Segmentation",
    "Segmenter",
    "__version__",
    "discover_cases",
    "evaluate",
    "load_case",
    "make_segmenter",
    "predict",
    "synthesize",
]
