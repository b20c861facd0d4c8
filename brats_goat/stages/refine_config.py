"""``RefineConfig``: the settings of the SAM-family refinement, apart from the stage so
that the backends (``sam_backends``) and the stage (``refine``) both read it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Refinement backends (``--refine``); "none" keeps the thresholded components as they are;
#: "auto" is $BRATS_GOAT_REFINE if set, else "none" (``sam_backends.resolve_backend``).
REFINE_BACKENDS: tuple[str, ...] = ("auto", "none", "litemedsam", "sam")
SAM_MODELS: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")


@dataclass(frozen=True)
class RefineConfig:
    """SAM-family refinement between thresholding and label fusion (``brats_goat.stages.refine``).

    Per channel (t2f -> whole tumour, t1c -> enhancing part), every axial slice of the
    candidate mask gets a box prompt per 2D component on that channel's image; SAM's mask
    replaces the component only if it passes the accept rule below (paper: score > 0.9).
    Defaults chosen on calibration phantoms (seeds 700+, never benchmarked):
    ``experiments/refine_analysis.py``, docs/refinement.md.
    """

    #: Off unless $BRATS_GOAT_REFINE asks for it: on the real development sets it moved
    #: lesion-wise Dice by at most +0.004 for 2.4x the time (``resolve_backend``).
    backend: str = "auto"
    #: Official segment-anything only: architecture and checkpoint (``--sam-checkpoint``).
    sam_model: str = "vit_b"
    sam_checkpoint: str | None = None
    #: Channels refined, each on its own image. t2f only: on t1c, SAM fills the enhancing
    #: rim (necrosis becomes "ET") and lowered the slice Dice on every rule tried.
    channels: tuple[str, ...] = ("t2f",)
    #: Accept SAM's mask only if its predicted IoU is at least this (paper: 0.9) ...
    min_score: float = 0.9
    #: ... and its Dice with the anomaly component is at least this (guards against SAM
    #: segmenting a neighbouring structure that happens to fill the box).
    min_agreement: float = 0.5
    #: Positive points inside the component (paper: up to 5), placed deepest-first. 0: with
    #: points, LiteMedSAM (trained on boxes) scored lower and its masks were worse.
    points: int = 0
    #: Negative points inside the box, away from the component (0: hurt as well).
    negative_points: int = 0
    #: Pixels added around the component's bounding box (SAM-family models are trained
    #: on boxes a few pixels larger than the object).
    box_margin: int = 5
    #: 2D components smaller than this (pixels) are not prompted: too small for a 4-pixel
    #: mask decoder grid (256 px output) to add anything.
    min_area: int = 20
    #: At most this many slices per channel are refined, spread evenly over the candidate
    #: slices (0 = all). Bounds CPU time: one LiteMedSAM encoding costs ~4 s on 2 cores.
    max_slices: int = 8
    #: The same on a GPU, where an encoding costs milliseconds: every candidate slice.
    max_slices_gpu: int = 0
    #: Slices encoded per forward pass on a CPU: 1. Eager torch took 1.15 s per slice at 1,
    #: 1.24 s at 2, 1.47 s at 4 on the idle 2-core CPU (results/sam-encoder-runtimes.md);
    #: OpenVINO encodes one slice per request whatever this is.
    batch_size: int = 1
    #: The same on a GPU, where batching pays.
    batch_size_gpu: int = 4
    #: Per-volume intensity window (percentiles inside the brain) mapped to the model's
    #: [0, 1] input range, as MedSAM preprocesses MRI.
    window_percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.backend not in REFINE_BACKENDS:
            raise ValueError(f"refine backend must be one of {', '.join(REFINE_BACKENDS)}")
        if self.sam_model not in SAM_MODELS:
            raise ValueError(f"sam_model must be one of {', '.join(SAM_MODELS)}")

    def encode_batch(self, device: torch.device) -> int:
        """Slices encoded per forward pass on ``device``."""
        return self.batch_size_gpu if device.type == "cuda" else self.batch_size
