"""The trainer on tiny synthetic cases: slice selection, loss going down, saved checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from brats_goat.config import MODEL_PRESETS, NormaliseConfig, TrainConfig
from brats_goat.discover import discover_cases
from brats_goat.healthy import collect_healthy_slices, healthy_indices, suspect_mask
from brats_goat.losses import ReconstructionLoss, gaussian_window, ssim
from brats_goat.train import split_indices, train
from brats_goat.weights import load_checkpoint, sha256_file

TINY = MODEL_PRESETS["tiny"]
FAST = TrainConfig(epochs=6, batch_size=8, lr=3e-3, min_brain_voxels=200, healthy_margin=1)


def test_healthy_indices_excludes_tumour_with_margin() -> None:
    brain = np.zeros((10, 10, 20), bool)
    brain[2:8, 2:8, 2:18] = True
    tumour = np.zeros_like(brain)
    tumour[4:6, 4:6, 9:11] = True
    cfg = dataclasses.replace(TrainConfig(), min_brain_voxels=10, healthy_margin=2)
    keep = healthy_indices(brain, tumour, cfg)
    assert keep == [2, 3, 4, 5, 6, 13, 14, 15, 16, 17]
    assert healthy_indices(brain, None, cfg) == list(range(2, 18))


def test_suspect_mask_finds_bright_flair_cluster() -> None:
    brain = np.zeros((40, 40, 40), bool)
    brain[5:35, 5:35, 5:35] = True
    flair = np.zeros(brain.shape, np.float32)
    flair[15:22, 15:22, 15:22] = 4.0
    flair[30, 30, 30] = 4.0  # isolated voxel: not a lesion
    mask = suspect_mask(flair, brain, TrainConfig())
    assert mask[18, 18, 18] and not mask[30, 30, 30]


def test_ssim_is_one_for_identical_and_lower_for_noise() -> None:
    x = torch.rand(2, 4, 32, 32)
    w = gaussian_window(11, 1.5, 4)
    assert abs(float(ssim(x, x, w, 1.0)) - 1) < 1e-5
    assert float(ssim(x, torch.rand_like(x), w, 1.0)) < 0.5


def test_split_is_deterministic_and_disjoint() -> None:
    a_train, a_val = split_indices(50, 0.1, seed=3)
    b_train, _ = split_indices(50, 0.1, seed=3)
    np.testing.assert_array_equal(a_train, b_train)
    assert len(a_val) == 5 and not set(a_train) & set(a_val)
    assert len(set(a_train) | set(a_val)) == 50


def test_training_reduces_loss_and_saves_loadable_checkpoint(tmp_path: Path, case_writer) -> None:
    for i in range(3):
        case_writer(f"TR-{i}", seed=i)
    cases = discover_cases(tmp_path / "in")
    healthy = collect_healthy_slices(cases, FAST, NormaliseConfig(), image_size=48)
    assert healthy.slices.shape[1:] == (4, 48, 48)
    lesion_slices = {(c, z) for c, z in healthy.origin if 5 <= z <= 14}
    assert not lesion_slices, "slices near the seg label must be excluded"
    out = tmp_path / "w" / "tiny.pt"
    result = train(cases, out, TINY, FAST, device="cpu", quiet=True)
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < first * 0.9, result.history
    assert result.sha256 == sha256_file(out)
    model, meta = load_checkpoint(out, result.sha256)
    assert meta["model_config"] == TINY
    assert meta["info"]["best_epoch"] >= 1
    x = torch.from_numpy(healthy.slices[:2].astype(np.float32))
    loss_fn = ReconstructionLoss(4, 11, 1.5, 100.0, 10.0)
    with torch.no_grad():
        trained_loss = float(loss_fn(model(x), x))
    assert trained_loss < first
