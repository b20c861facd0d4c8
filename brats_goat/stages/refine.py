"""Refinement stage: SAM-family masks in place of thresholded components, where trusted.

Between ``threshold`` and ``labels``. A thresholded residual follows the anomaly map's blur
and noise; a promptable segmenter follows the image's own edges. For each refined channel
(t2f -> whole tumour, t1c -> enhancing part) every axial slice with a candidate gets one box
prompt per 2D component (plus optional points) on that channel's image. SAM's mask replaces
the component only when the model trusts it (predicted IoU) and it agrees with the anomaly
(Dice with the component); otherwise the component is kept as it was. Only slices with
candidates are encoded, in batches, at most ``max_slices`` per channel (``max_slices_gpu``
on a GPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.masks import dice
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.sam_backends import PromptableBackend, Prompts
from brats_goat.stages.threshold import select_components

#: 8-connected 2D components, so a diagonal bridge does not split a lesion in two prompts.
_CONNECTIVITY_2D = np.ones((3, 3), dtype=bool)


@dataclass
class ChannelStats:
    """What refinement did to one channel of one case (goes into the run report)."""

    slices: int = 0
    prompts: int = 0
    accepted: int = 0
    rejected_score: int = 0
    rejected_agreement: int = 0
    voxels_before: int = 0
    voxels_after: int = 0


@dataclass
class RefineStats:
    backend: str
    #: What ran the backend's image encoder: ``torch`` or ``openvino`` (``--runtime``).
    runtime: str = "torch"
    channels: dict[str, ChannelStats] = field(default_factory=dict)

    def to_dict(self) -> dict:
        channels = {name: asdict(stats) for name, stats in self.channels.items()}
        return {"backend": self.backend, "runtime": self.runtime, "channels": channels}


@dataclass
class SlicePrompt:
    """One 2D component of one slice and the prompt built from it (slice coordinates)."""

    z: int
    component: np.ndarray  # (rows, cols) bool
    box: np.ndarray  # x0, y0, x1, y1
    points: np.ndarray  # (k, 2) x, y
    labels: np.ndarray  # (k,) 1 positive, 0 negative


def window(volume: np.ndarray, brain: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map the volume to [0, 1] through a per-volume percentile window inside the brain."""
    values = volume[brain]
    if values.size == 0:
        return np.zeros(volume.shape, np.float32)
    lo, hi = np.percentile(values, percentiles)
    out = np.clip((volume - lo) / max(float(hi - lo), 1e-6), 0, 1)
    return np.where(brain, out, 0).astype(np.float32)


def candidate_slices(mask: np.ndarray, min_area: int, max_slices: int) -> list[int]:
    """Axial slices with at least ``min_area`` candidate pixels, at most ``max_slices`` of
    them spread evenly from the lesion's first to its last slice (0 = all)."""
    zs = np.flatnonzero(mask.sum(axis=(0, 1)) >= max(min_area, 1))
    if max_slices and len(zs) > max_slices:
        zs = zs[np.unique(np.linspace(0, len(zs) - 1, max_slices).round().astype(int))]
    return [int(z) for z in zs]


def spread_points(weight: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` (x, y) points at the largest ``weight``, each one suppressing a disk
    around it so the points spread over the region instead of clustering at one peak."""
    w = weight.astype(np.float32).copy()
    rows, cols = np.indices(w.shape)
    picked: list[tuple[float, float]] = []
    for _ in range(k):
        idx = int(np.argmax(w))
        r, c = divmod(idx, w.shape[1])
        if w[r, c] <= 0:
            break
        picked.append((float(c), float(r)))
        radius = max(3.0, float(w[r, c]))
        w[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 0
    return np.array(picked, dtype=np.float32).reshape(-1, 2)


def component_prompt(z: int, component: np.ndarray, cfg: RefineConfig) -> SlicePrompt:
    """Box around the component (+ margin); positive points deepest inside it, negative
    points in the box farthest from it."""
    rows, cols = np.nonzero(component)
    m = cfg.box_margin
    h, w = component.shape
    box = np.array(
        [max(cols.min() - m, 0), max(rows.min() - m, 0), min(cols.max() + m, w - 1),
         min(rows.max() + m, h - 1)],
        dtype=np.float32,
    )  # fmt: skip
    points = [np.zeros((0, 2), np.float32)]
    labels = [np.zeros(0, np.int64)]
    if cfg.points > 0:
        pos = spread_points(ndimage.distance_transform_edt(component), cfg.points)
        points.append(pos)
        labels.append(np.ones(len(pos), np.int64))
    if cfg.negative_points > 0:
        inside_box = np.zeros_like(component)
        x0, y0, x1, y1 = box.astype(int)
        inside_box[y0 : y1 + 1, x0 : x1 + 1] = True
        away = ndimage.distance_transform_edt(~component) * inside_box
        away[away < 2] = 0  # not on the component's own border
        neg = spread_points(away, cfg.negative_points)
        points.append(neg)
        labels.append(np.zeros(len(neg), np.int64))
    return SlicePrompt(z, component, box, np.concatenate(points), np.concatenate(labels))


def slice_prompts(mask: np.ndarray, zs: list[int], cfg: RefineConfig) -> list[SlicePrompt]:
    """Prompts for every large-enough 2D component of the chosen slices.

    Slices are handled as images: ``volume[..., z].T`` (rows = y, cols = x), which is the
    radiological view of an LPS-ordered slice, the orientation the models were trained on.
    """
    prompts = []
    for z in zs:
        labelled, n = ndimage.label(mask[..., z].T, structure=_CONNECTIVITY_2D)
        for i in range(1, n + 1):
            component = labelled == i
            if component.sum() >= cfg.min_area:
                prompts.append(component_prompt(z, component, cfg))
    return prompts


def to_prompts(prompts: list[SlicePrompt], zs: list[int]) -> Prompts:
    """Stack per-component prompts into one batch; points are padded with label -1."""
    k = max((len(p.labels) for p in prompts), default=0)
    points = np.zeros((len(prompts), k, 2), np.float32)
    labels = np.full((len(prompts), k), -1, np.int64)
    for i, p in enumerate(prompts):
        points[i, : len(p.labels)] = p.points
        labels[i, : len(p.labels)] = p.labels
    index = {z: i for i, z in enumerate(zs)}
    return Prompts(
        image_index=np.array([index[p.z] for p in prompts], dtype=np.int64),
        boxes=np.stack([p.box for p in prompts]) if prompts else np.zeros((0, 4), np.float32),
        points=points if k else None,
        point_labels=labels if k else None,
    )


def refine_channel(
    mask: np.ndarray,
    image: np.ndarray,
    allowed: np.ndarray,
    backend: PromptableBackend,
    cfg: RefineConfig,
) -> tuple[np.ndarray, ChannelStats]:
    """Refine one binary (X, Y, Z) mask on its [0, 1] image; ``allowed`` bounds SAM's masks."""
    stats = ChannelStats(voxels_before=int(mask.sum()))
    device = getattr(backend, "device", torch.device("cpu"))
    on_gpu = device.type == "cuda"
    zs = candidate_slices(mask, cfg.min_area, cfg.max_slices_gpu if on_gpu else cfg.max_slices)
    prompts = slice_prompts(mask, zs, cfg)
    zs = sorted({p.z for p in prompts})
    out = mask.copy()
    stats.slices, stats.prompts = len(zs), len(prompts)
    batch = cfg.encode_batch(device)
    for start in range(0, len(zs), batch):
        batch_z = zs[start : start + batch]
        batch_prompts = [p for p in prompts if p.z in batch_z]
        encoded = backend.encode(np.stack([image[..., z].T for z in batch_z]))
        masks, scores = backend.predict(encoded, to_prompts(batch_prompts, batch_z))
        for p, sam_mask, score in zip(batch_prompts, masks, scores, strict=True):
            x0, y0, x1, y1 = p.box.astype(int)
            inside = np.zeros_like(sam_mask)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            candidate = sam_mask & inside & allowed[..., p.z].T
            if score < cfg.min_score:
                stats.rejected_score += 1
            elif dice(candidate, p.component) < cfg.min_agreement:
                stats.rejected_agreement += 1
            else:
                stats.accepted += 1
                plane = out[..., p.z].T & ~p.component
                out[..., p.z] = (plane | candidate).T
    stats.voxels_after = int(out.sum())
    return out, stats


def refine_masks(
    binary: dict[str, np.ndarray],
    normalised: np.ndarray,
    brain: np.ndarray,
    backend: PromptableBackend,
    cfg: RefineConfig,
    post: PostprocessConfig,
) -> tuple[dict[str, np.ndarray], RefineStats]:
    """Refine each configured channel on its own image, then re-apply the component rule
    (minimum size, largest kept) so the output obeys the same rules as unrefined masks."""
    stats = RefineStats(backend=backend.name, runtime=backend.runtime)
    out = dict(binary)
    for name in cfg.channels:
        if name not in binary or not binary[name].any():
            continue
        image = window(normalised[MODALITIES.index(name)], brain, cfg.window_percentiles)
        refined, stats.channels[name] = refine_channel(binary[name], image, brain, backend, cfg)
        out[name] = select_components(refined, post.min_component_voxels, post.keep_largest)
        stats.channels[name].voxels_after = int(out[name].sum())
    return out, stats
