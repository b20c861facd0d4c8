"""Slice-wise reconstruction: fitting slices to the model plane and back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brats_goat.device import autocast_dtype, pick_device
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.stages.reconstruct import (
    InferenceConfig,
    network_input,
    plane_spans,
    reconstruct_volume,
)


def test_network_input_pads_and_crops_roundtrip() -> None:
    vol = np.random.default_rng(0).normal(size=(2, 30, 60, 3)).astype(np.float32)
    fitted = network_input(vol, [0, 1, 2], 48).transpose(1, 2, 3, 0)  # back to (C, X, Y, Z)
    dst, src = plane_spans(30, 60, 48)
    assert fitted.shape == (2, 48, 48, 3)
    np.testing.assert_array_equal(fitted[:, dst[0], dst[1]], vol[:, src[0], src[1]])


def test_reconstruct_volume_deterministic_and_zero_outside_brain() -> None:
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    vol = np.random.default_rng(1).normal(size=(4, 50, 44, 5)).astype(np.float32)
    brain = np.zeros(vol.shape[1:], bool)
    brain[5:45, 5:40, 1:4] = True
    cfg = dataclasses.replace(InferenceConfig(), batch_size=2)
    dev = pick_device("cpu")
    a = reconstruct_volume(model, vol, brain, cfg, dev)
    b = reconstruct_volume(model, vol, brain, cfg, dev)
    assert a.shape == vol.shape
    np.testing.assert_array_equal(a, b)
    assert not a[:, ~brain].any()
    assert a[:, brain].std() > 0


def test_slices_without_brain_or_left_out_are_not_run_and_the_others_unchanged() -> None:
    """Skipping slices (no brain, or ``only`` False) costs nothing in accuracy: the slices
    that run get what a run over every slice gives them; the skipped ones are 0."""
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    vol = np.random.default_rng(2).normal(size=(4, 48, 48, 6)).astype(np.float32)
    brain = np.zeros(vol.shape[1:], bool)
    brain[4:44, 4:44, 1:5] = True
    dev = pick_device("cpu")
    every = dataclasses.replace(InferenceConfig(), min_brain_voxels=0, batch_size=6)
    full = reconstruct_volume(model, vol, brain, every, dev)
    runs: list[int] = []
    only = np.array([True, True, False, True, True, True])
    part = reconstruct_volume(model, vol, brain, InferenceConfig(), dev, runs.append, None, only)
    assert sum(runs) == 3  # slices 1, 3, 4: brain and not left out
    np.testing.assert_allclose(part[..., [1, 3, 4]], full[..., [1, 3, 4]], atol=1e-6)
    assert not part[..., [0, 2, 5]].any()


class Whole(torch.nn.Module):
    """The same network without ``MViTAE``'s window: ``reconstruct_volume`` then decodes
    the whole plane, as it does for a compiled network."""

    def __init__(self, model: MViTAE) -> None:
        super().__init__()
        self.model, self.cfg = model, model.cfg

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, present)


def test_decoding_only_the_brain_box_changes_nothing() -> None:
    """The decoder runs on the brain's in-plane box only; on grids smaller and larger than
    the model plane (padded, cropped) and a brain off-centre the output is the whole
    decode's, to float rounding."""
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    exact = InferenceConfig(precision="float32", batch_size=4)
    dev = pick_device("cpu")
    rng = np.random.default_rng(3)
    for shape, region in (
        ((4, 40, 52, 5), (slice(3, 20), slice(30, 51), slice(0, 5))),
        ((4, 70, 30, 4), (slice(2, 69), slice(4, 17), slice(1, 3))),
    ):
        vol = rng.normal(size=shape).astype(np.float32)
        brain = np.zeros(shape[1:], bool)
        brain[region] = True
        boxed = reconstruct_volume(model, vol, brain, exact, dev)
        whole = reconstruct_volume(Whole(model), vol, brain, exact, dev)
        assert boxed[:, brain].std() > 0
        np.testing.assert_allclose(boxed, whole, atol=1e-5)


def test_precision_choices() -> None:
    """float32 is exact and the default everywhere; bfloat16 (asked for) moves the
    reconstruction by rounding only; anything else is refused."""
    cpu = torch.device("cpu")
    assert autocast_dtype("float32") is None
    assert autocast_dtype("bfloat16") is torch.bfloat16
    assert autocast_dtype("auto") is None
    with pytest.raises(ValueError, match="precision"):
        InferenceConfig(precision="float16")
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("float16")
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    vol = np.random.default_rng(4).normal(size=(4, 48, 48, 3)).astype(np.float32)
    brain = np.ones(vol.shape[1:], bool)
    f32 = reconstruct_volume(model, vol, brain, InferenceConfig(precision="float32"), cpu)
    bf16 = reconstruct_volume(model, vol, brain, InferenceConfig(precision="bfloat16"), cpu)
    assert not np.array_equal(f32, bf16)  # it did run in bfloat16
    np.testing.assert_allclose(bf16, f32, atol=0.1 * float(np.abs(f32).max()))
