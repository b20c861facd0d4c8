"""The whole configuration a run uses, resolved: what ``predict --print-config`` prints and
the run report's header holds (the same dict; ``brats_goat.run.report.RunReport``).

Settings come from the options (``PipelineConfig``), the checkpoint (its calibrated
post-processing), the machine (device, arithmetic, oneDNN's CPU path) and a few
environment variables; this is the one place that puts them together.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from brats_goat._version import __version__
from brats_goat.io.budget import LIMIT_ENV
from brats_goat.model.manifest import WEIGHTS_ENV
from brats_goat.segmenter import PipelineConfig, Segmenter
from brats_goat.serialise import to_dict
from brats_goat.stages.ir_cache import CACHE_ENV
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.sam_backends import REFINE_ENV, SAM_CHECKPOINT_ENV

#: The environment variables ``predict`` reads: the default weights, the refinement's
#: backend and SAM checkpoint, the cache of compiled networks, the per-case memory bound.
ENVIRONMENT: tuple[str, ...] = (WEIGHTS_ENV, REFINE_ENV, SAM_CHECKPOINT_ENV, CACHE_ENV, LIMIT_ENV)


def run_settings(segmenter: Segmenter) -> dict[str, Any]:
    """Everything that decides a run's labels, as JSON-ready values: the method and its
    weights (path and sha256), where and in what arithmetic the network runs, the
    refinement that runs, every parameter (``PipelineConfig``, with the post-processing
    actually applied: for the MViT-AE, the checkpoint's) and the environment's say.
    Keys are ``RunReport`` fields."""
    return {
        "method": segmenter.method,
        "weights": segmenter.meta.get("path"),
        "weights_sha256": segmenter.meta.get("sha256"),
        "device": str(segmenter.device),
        "precision": segmenter.precision,
        "cpu_isa": segmenter.cpu_isa,
        "refine": segmenter.refiner.name if segmenter.refiner is not None else "none",
        "version": __version__,
        "config": {**to_dict(segmenter.config), "postprocess": to_dict(segmenter.postprocess)},
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
    }


def pipeline_config(
    device: str,
    batch_size: int | None,
    refine: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    refine_max_slices: int | None,
    component_rule: str,
    runtime: str = InferenceConfig.runtime,
    precision: str = InferenceConfig.precision,
) -> PipelineConfig:
    """The pipeline settings the options ask for; unset options keep the library defaults."""
    inference = InferenceConfig(device=device, runtime=runtime, precision=precision)
    if batch_size is not None:
        inference = dataclasses.replace(inference, batch_size=batch_size)
    refine_cfg = RefineConfig(
        backend=refine,
        sam_model=sam_model,
        sam_checkpoint=str(sam_checkpoint) if sam_checkpoint else None,
    )
    if refine_max_slices is not None:
        refine_cfg = dataclasses.replace(
            refine_cfg, max_slices=refine_max_slices, max_slices_gpu=refine_max_slices
        )
    return PipelineConfig(inference=inference, refine=refine_cfg, component_rule=component_rule)
