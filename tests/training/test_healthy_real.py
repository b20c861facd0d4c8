"""Near-healthy real data (``../shared/data/healthy-real``): masks of known non-tumour
lesions and absent sequences, on tiny NIfTI cases written like that set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.grid import brats_affine
from brats_goat.io.read import CaseError
from brats_goat.model.network import MODEL_PRESETS
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.training.augment import AugmentConfig, augment_batch, modality_dropout
from brats_goat.training.config import TrainConfig
from brats_goat.training.distributed import DistContext
from brats_goat.training.healthy import HealthySlices, collect_healthy_slices
from brats_goat.training.loop import evaluate_loss
from brats_goat.training.losses import ReconstructionLoss
from brats_goat.training.session import SliceSet, split_data
from brats_goat.training.train import train_on_slices
from tests.conftest import synthetic_volumes, write_case

T1C, T2F = MODALITIES.index("t1c"), MODALITIES.index("t2f")
CFG = TrainConfig(
    epochs=2, batch_size=8, lr=3e-3, min_brain_voxels=200, healthy_margin=1, lesion_margin=1
)
ONE_PROCESS = DistContext()


def write_real_like(root: Path, case_id: str, *, t1c: bool, lesion: bool, seed: int) -> Path:
    """A case as healthy-real stores them: no seg; ``-lesion`` (uint8 0/1) where the
    subject has lesions (then a bright sphere in the images); t1c only for some."""
    folder = write_case(root, case_id, seed=seed, lesion=lesion, skip=() if t1c else ("t1c",))
    (folder / f"{case_id}-seg.nii.gz").unlink()
    if lesion:
        _, mask = synthetic_volumes(seed=seed, lesion=True)
        nib.save(
            nib.Nifti1Image(mask.astype(np.uint8), brats_affine()),
            folder / f"{case_id}-lesion.nii.gz",
        )
    return folder


@pytest.fixture
def real_like(tmp_path: Path) -> Path:
    """MS-like (t1c, lesion), WML-like (no t1c, lesion), Kirby-like (no t1c, no lesion)
    and two complete healthy cases (so the held-out slices can be calibrated on)."""
    root = tmp_path / "healthy-real"
    write_real_like(root, "MS-1", t1c=True, lesion=True, seed=1)
    write_real_like(root, "WML-1", t1c=False, lesion=True, seed=2)
    write_real_like(root, "KIRBY-1", t1c=False, lesion=False, seed=3)
    write_real_like(root, "FULL-1", t1c=True, lesion=False, seed=4)
    write_real_like(root, "FULL-2", t1c=True, lesion=False, seed=5)
    return root


def collect(root: Path) -> HealthySlices:
    return collect_healthy_slices(discover_cases(root), CFG, NormaliseConfig(), image_size=48)


def rows_of(healthy: HealthySlices, case_id: str) -> np.ndarray:
    return np.array([cid == case_id for cid, _ in healthy.origin])


def test_lesion_mask_is_found_and_its_grown_voxels_are_ignored(real_like: Path) -> None:
    case = next(c for c in discover_cases(real_like) if c.case_id == "WML-1")
    assert case.reference is not None and case.reference.name == "WML-1-lesion.nii.gz"
    healthy = collect(real_like)
    assert healthy.source["WML-1"] == "WML-1-lesion.nii.gz"
    assert healthy.source["KIRBY-1"] == "FLAIR outliers"
    _, lesion = synthetic_volumes(seed=2, lesion=True)
    rows = rows_of(healthy, "WML-1")
    zs = [z for cid, z in healthy.origin if cid == "WML-1"]
    # The lesion's slices are kept (not dropped like a tumour's) ...
    assert set(np.flatnonzero(lesion.any(axis=(0, 1)))) <= set(zs)
    # ... but every lesion voxel, and a rim around it, is out of the loss.
    assert healthy.ignore is not None
    ignored = healthy.ignore[rows].transpose(1, 2, 0)
    assert ignored[lesion[..., zs]].all()
    assert ignored.sum() > lesion.sum()
    assert not healthy.ignore[rows_of(healthy, "KIRBY-1")].any()


def test_presence_records_the_sequences_each_slice_really_has(real_like: Path) -> None:
    healthy = collect(real_like)
    for case_id, t1c in [("MS-1", True), ("WML-1", False), ("KIRBY-1", False)]:
        rows = rows_of(healthy, case_id)
        expected = np.array([m != "t1c" or t1c for m in MODALITIES])
        assert (healthy.present[rows] == expected).all(), case_id
        assert (healthy.slices[rows][:, T1C] != 0).any() == t1c
    # Calibration: the complete cases, and MS-1's slices away from its (grown) lesion.
    assert healthy.ignore is not None
    lesion_free = ~healthy.ignore.any(axis=(1, 2))
    complete = rows_of(healthy, "FULL-1") | rows_of(healthy, "FULL-2")
    expected = complete | (rows_of(healthy, "MS-1") & lesion_free)
    assert 0 < (rows_of(healthy, "MS-1") & lesion_free).sum() < rows_of(healthy, "MS-1").sum()
    np.testing.assert_array_equal(healthy.for_calibration(), healthy.slices[expected])


def test_lesion_mask_next_to_a_tumour_label_is_refused(real_like: Path) -> None:
    write_case(real_like, "MS-1", seed=1)  # adds MS-1-seg next to MS-1-lesion
    with pytest.raises(CaseError, match="both a lesion mask and a tumour label"):
        collect(real_like)


def test_dropout_never_shows_a_channel_the_data_lacks() -> None:
    gen = torch.Generator().manual_seed(0)
    available = (torch.rand(500, 4, generator=gen) < 0.6).float()
    available[:, T2F] = 1.0  # every healthy-real subject has t2f
    x = torch.ones(500, 4, 8, 8) * available[:, :, None, None]
    cfg = AugmentConfig(modality_dropout=0.9, keep_all_fraction=0.25)
    out, present = modality_dropout(x, cfg, gen, available)
    assert (present <= available).all()
    assert (present[:, [T1C, T2F]].sum(dim=1) >= 1).all()
    assert torch.equal(out.amax(dim=(2, 3)), present)
    assert ((available[:, T1C] == 1) & (present[:, T1C] == 0)).any(), "dropout still drops"
    out, present = modality_dropout(
        x, dataclasses.replace(cfg, modality_dropout=0.0), gen, available
    )
    assert torch.equal(present, available) and torch.equal(out, x)


def test_ignore_mask_moves_with_the_flip() -> None:
    x = torch.ones(2, 4, 16, 16)
    ignore = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    ignore[:, :, 3, 5] = True
    cfg = dataclasses.replace(AugmentConfig.none(), flip_p=1.0)
    aug = augment_batch(x, cfg, torch.Generator().manual_seed(0), ignore=ignore)
    assert aug.ignore is not None and aug.ignore.shape == ignore.shape
    assert aug.ignore[:, 0, 12, 5].all() and aug.ignore.sum() == 2
    assert aug.input.shape == x.shape


def test_loss_ignores_absent_channels_and_lesion_voxels(real_like: Path) -> None:
    """A training batch of a case without t1c and with a lesion: neither the t1c
    reconstruction nor the lesion's reconstruction changes the loss."""
    cfg = dataclasses.replace(CFG, lesion_margin=TrainConfig.lesion_margin)
    healthy = collect_healthy_slices(
        discover_cases(real_like), cfg, NormaliseConfig(), image_size=48
    )
    rows = np.flatnonzero(rows_of(healthy, "WML-1"))
    _, lesion = synthetic_volumes(seed=2, lesion=True)
    zs = [z for cid, z in healthy.origin if cid == "WML-1"]
    core = torch.from_numpy(lesion[..., zs].transpose(2, 0, 1)[:, None].copy())
    x, available, ignore = SliceSet.of(healthy, rows).batch(slice(None))
    plain = dataclasses.replace(AugmentConfig(), flip_p=0.0, affine_p=0.0)  # core stays put
    aug = augment_batch(x, plain, torch.Generator().manual_seed(3), available, ignore)
    assert (aug.present[:, T1C] == 0).all() and aug.ignore is not None and core.any()
    loss_fn = ReconstructionLoss(4, 11, 1.5, 100.0, 10.0)
    recon = (aug.target + 0.3 * torch.randn_like(aug.target)).requires_grad_()
    loss = loss_fn(recon, aug.target, aug.present, aug.ignore)
    loss.backward()
    assert recon.grad is not None
    assert (recon.grad[:, T1C] == 0).all(), "t1c is absent: no loss contribution"
    assert (recon.grad.abs().sum(dim=1, keepdim=True)[core] == 0).all()
    changed = recon.detach().clone()
    changed[:, T1C] = 7.0
    changed[core.expand_as(changed)] = -3.0
    assert torch.equal(loss_fn(changed, aug.target, aug.present, aug.ignore), loss.detach())


class Garbage(torch.nn.Module):
    """Returns its input, with t1c replaced by nonsense."""

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        out = x.clone()
        out[:, T1C] = 5.0
        return out


def test_validation_loss_respects_the_data_presence(real_like: Path) -> None:
    healthy = collect(real_like)
    rows = np.flatnonzero(rows_of(healthy, "KIRBY-1"))
    data = SliceSet.of(healthy, rows)
    loss_fn = ReconstructionLoss(4, 11, 1.5, 100.0, 10.0)
    assert evaluate_loss(Garbage(), data, loss_fn, 4, torch.device("cpu")) < 1e-4
    full = SliceSet.of(healthy, np.flatnonzero(rows_of(healthy, "FULL-1")))
    assert evaluate_loss(Garbage(), full, loss_fn, 4, torch.device("cpu")) > 1.0


def test_split_refuses_a_validation_set_nothing_can_be_calibrated_on(real_like: Path) -> None:
    healthy = collect(real_like)
    partial = ~(rows_of(healthy, "FULL-1") | rows_of(healthy, "FULL-2"))
    only_partial = dataclasses.replace(
        healthy,
        slices=healthy.slices[partial],
        origin=[o for o, p in zip(healthy.origin, partial, strict=True) if p],
        present=healthy.present[partial],
        ignore=None if healthy.ignore is None else healthy.ignore[partial],
    )
    with pytest.raises(ValueError, match="cannot be calibrated"):
        split_data(only_partial, CFG, ONE_PROCESS)


def test_training_on_real_like_data_runs_and_calibrates(real_like: Path, tmp_path: Path) -> None:
    healthy = collect(real_like)
    model_cfg = dataclasses.replace(MODEL_PRESETS["tiny"], modality_mask=True)
    cfg = dataclasses.replace(CFG, augment=AugmentConfig(modality_dropout=0.3, noise_std=1.0))
    result = train_on_slices(healthy, tmp_path / "m.pt", model_cfg, cfg, device="cpu", quiet=True)
    assert result.info["finished"] and np.isfinite(result.history[-1]["val_loss"])
    n_val = result.info["n_val_slices"]
    assert 0 < result.info["calibration"]["n_slices"] <= n_val
