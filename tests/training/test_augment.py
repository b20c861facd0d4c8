"""Training augmentation: modality dropout and the noised input / clean target pair."""

from __future__ import annotations

import dataclasses

import torch

from brats_goat.conventions import MODALITIES
from brats_goat.training.augment import AugmentConfig, augment_batch, modality_dropout

KEY = [MODALITIES.index("t1c"), MODALITIES.index("t2f")]


def test_modality_dropout_always_keeps_t1c_or_t2f() -> None:
    x = torch.ones(400, 4, 8, 8)
    cfg = AugmentConfig(modality_dropout=0.9, keep_all_fraction=0.25)
    out, present = modality_dropout(x, cfg, torch.Generator().manual_seed(0))
    assert (present[:, KEY].sum(dim=1) >= 1).all()
    # Dropped channels are zero images; kept ones untouched.
    assert torch.equal(out.amax(dim=(2, 3)), present)
    all_kept = (present.sum(dim=1) == 4).float().mean()
    assert 0.2 < all_kept < 0.4  # the keep-all quarter (0.9 drop rate leaves few others)
    assert (present.sum(dim=1) < 4).any()


def test_augmented_target_is_clean_and_input_is_noised() -> None:
    x = torch.zeros(4, 4, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0
    cfg = dataclasses.replace(AugmentConfig.none(), noise_std=0.5)
    inp, target, present, ignore = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(target, x) and (present == 1).all() and ignore is None
    assert not torch.equal(inp, x)
    assert (inp[:, :, :8] == 0).all(), "noise stays inside the brain"
