"""The two methods: what each subtracts as "healthy" and which thresholds it applies.

``MViTAESegmenter``: the autoencoder's reconstruction, with the thresholds calibrated for
its weights. ``IntensitySegmenter``: nothing (the z-scored image itself), with the
intensity baseline's thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.device import autocast_dtype, pick_device
from brats_goat.model.checkpoint import load_verified
from brats_goat.model.network import MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter.base import Segmenter
from brats_goat.segmenter.config import PipelineConfig
from brats_goat.stages.restore import restore_volume
from brats_goat.stages.runtime import Network, prepare_network, runtime_that_runs


class MViTAESegmenter(Segmenter):
    """The MViT-AE: the residual is what the healthy-only autoencoder cannot reconstruct."""

    method = "mvitae"

    def __init__(
        self,
        model: MViTAE,
        config: PipelineConfig | None = None,
        meta: dict[str, Any] | None = None,
        device: torch.device | None = None,
    ) -> None:
        """``device`` overrides ``config.inference.device`` (calibration passes the one its
        caller already chose)."""
        super().__init__(config, meta)
        self.device = device or pick_device(self.config.inference.device)
        self.model = model.to(self.device).eval()
        self._network: MViTAE | Network | None = None

    @property
    def network(self) -> MViTAE | Network:
        """What runs the forward pass (``InferenceConfig.runtime``): the torch module, or it
        compiled by another runtime once, at the first case (not for segmenters never run)."""
        if self._network is None:
            self._network = prepare_network(self.model, self.config.inference.runtime, self.device)
        return self._network

    @property
    def precision(self) -> str:
        """The forward pass's arithmetic on this machine (for the run report)."""
        inference = self.config.inference
        runs = runtime_that_runs(inference.runtime, self.device)
        if runs != "torch":
            return runs
        dtype = autocast_dtype(inference.precision) or torch.float32
        return str(dtype).removeprefix("torch.")

    @property
    def postprocess(self) -> PostprocessConfig:
        """The checkpoint's calibrated post-processing, unless the config overrides it.

        Thresholds belong to the weights: they were derived from this model's residuals on
        held-out healthy slices, together with the erosion and filter they were measured
        with. ``PipelineConfig.postprocess`` set explicitly wins (experiments).
        """
        stored = self.meta.get("postprocess")
        if self.config.postprocess is None:
            return stored if stored is not None else PostprocessConfig()
        return self.config.postprocess

    @classmethod
    def from_weights(
        cls, weights: str | Path | None = None, config: PipelineConfig | None = None
    ) -> MViTAESegmenter:
        """Load checksum-verified weights (default: the shipped checkpoint)."""
        model, meta = load_verified(weights)
        return cls(model, config, meta)

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        keep = np.array([m in present for m in MODALITIES])
        return restore_volume(
            self.network,
            normalised,
            brain,
            self.postprocess,
            self.config.inference,
            self.device,
            present=keep,
        )


class IntensitySegmenter(Segmenter):
    """Training-free yardstick (Meissen et al.): the z-scored image itself is the residual.

    A healthy brain's z-scored FLAIR and t1c rarely reach the thresholds; tumour (edema on
    FLAIR, enhancement on t1c) does. Any learned model must beat this to be worth its cost.
    """

    method = "intensity"

    @property
    def postprocess(self) -> PostprocessConfig:
        return self.config.intensity

    def reconstruct(
        self, normalised: np.ndarray, brain: np.ndarray, present: tuple[str, ...] = MODALITIES
    ) -> np.ndarray:
        return np.zeros_like(normalised)


METHODS: tuple[str, ...] = ("mvitae", "intensity")


def make_segmenter(
    method: str = "mvitae",
    weights: str | Path | None = None,
    config: PipelineConfig | None = None,
) -> Segmenter:
    """The segmenter for ``method``; only the MViT-AE loads weights."""
    if method == "mvitae":
        return MViTAESegmenter.from_weights(weights, config)
    if method == "intensity":
        return IntensitySegmenter(config)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
