"""Iterative restoration: the suspect region is re-reconstructed from the model's own
estimate, so a model that copies part of a lesion copies less of it each pass."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.conventions import MODALITIES
from brats_goat.model.checkpoint import load_checkpoint
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig, reconstruct_volume
from brats_goat.stages.restore import restore_volume, suspect_voxels

TINY = MODEL_PRESETS["tiny"]
LESION = 4.0


class HalfCopier(torch.nn.Module):
    """Reconstructs every voxel as half its input: a model that copies what it is shown
    (the failure restoration addresses), with an outcome known in closed form."""

    cfg = TINY

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * x


def _volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    size, depth = TINY.image_size, 4
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.45) ** 2
    brain = np.repeat(disk[..., None], depth, axis=2)
    vol = np.where(brain, rng.normal(0, 0.2, (4, size, size, depth)), 0).astype(np.float32)
    lesion = np.zeros_like(brain)
    lesion[20:28, 20:28, 1:3] = True
    vol[:, lesion] = LESION
    return vol, brain, lesion


def _restore(vol: np.ndarray, brain: np.ndarray, passes: int) -> list[np.ndarray]:
    seen: dict[int, np.ndarray] = {}
    post = PostprocessConfig(restore_iterations=passes)
    restore_volume(
        HalfCopier(), vol, brain, post, InferenceConfig(min_brain_voxels=1),
        torch.device("cpu"), on_pass=seen.__setitem__,
    )  # fmt: skip
    return [seen[k] for k in sorted(seen)]


def test_each_pass_copies_less_of_the_lesion_and_leaves_healthy_tissue_alone() -> None:
    vol, brain, lesion = _volume()
    estimates = _restore(vol, brain, 3)
    assert len(estimates) == 4  # the plain reconstruction, then three passes
    residual = [float((vol - est)[2][lesion].mean()) for est in estimates]
    # The half copier keeps 1/2, 1/4, 1/8, 1/16 of the lesion: residual 2, 3, 3.5, 3.75.
    np.testing.assert_allclose(residual, [2.0, 3.0, 3.5, 3.75], rtol=1e-5)
    far = brain.copy()
    far[10:38, 10:38] = False  # well outside the dilated lesion
    np.testing.assert_array_equal(estimates[-1][:, far], estimates[0][:, far])


def test_zero_passes_is_the_plain_reconstruction_and_nothing_suspect_stops_early() -> None:
    vol, brain, lesion = _volume()
    (plain,) = _restore(vol, brain, 0)
    np.testing.assert_allclose(plain[:, brain], 0.5 * vol[:, brain], rtol=1e-6)
    healthy = np.where(lesion[None], 0, vol).astype(np.float32)
    assert len(_restore(healthy, brain, 3)) == 1  # no voxel is off by > 1 z: no pass runs


def test_maps_not_restored_keep_the_plain_reconstruction() -> None:
    vol, brain, lesion = _volume()
    post = PostprocessConfig(restore_iterations=2, restore_maps=("t2f",))
    out = restore_volume(
        HalfCopier(), vol, brain, post, InferenceConfig(min_brain_voxels=1), torch.device("cpu")
    )
    t1c, t2f = MODALITIES.index("t1c"), MODALITIES.index("t2f")
    np.testing.assert_allclose(out[t1c][lesion], 0.5 * LESION)  # plain: half copied
    np.testing.assert_allclose(out[t2f][lesion], 0.125 * LESION, rtol=1e-6)  # two passes
    with pytest.raises(ValueError, match="t1c and t2f only"):
        PostprocessConfig(restore_maps=("t2w",))


def test_suspect_voxels_grow_by_the_dilation_and_stay_in_the_brain() -> None:
    vol, brain, lesion = _volume()
    plain = 0.5 * vol
    tight = suspect_voxels(vol, plain, brain, z=1.0, dilation=0)
    np.testing.assert_array_equal(tight, lesion)
    grown = suspect_voxels(vol, plain, brain, z=1.0, dilation=2)
    # A 2-voxel in-plane diamond around the square: its sides move out by 2, not its
    # corners, and nothing spills into the slices above or below.
    assert grown[18:30, 20:28, 1:3].all() and grown[20:28, 18:30, 1:3].all()
    assert not grown[17, 20:28].any() and not grown[18, 18, 1:3].any()
    assert not grown[:, :, 0].any() and not grown[:, :, 3].any()
    assert not (grown & ~brain).any()


def test_calibrate_restore_iterations_is_stored_and_used_by_predict(
    tmp_path: Path, tiny_weights: Path, case_writer
) -> None:
    for i in range(2):
        case_writer(f"H-{i}", seed=i, lesion=False)
    out = tmp_path / "w" / "restored.pt"
    args = ["calibrate", str(tmp_path / "in"), "--weights", str(tiny_weights), "-o", str(out)]
    args += ["--min-brain-voxels", "200", "--restore-iterations", "2", "--register"]
    args += ["--restore-maps", "t2f"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "restoration passes: 2 (maps: t2f)" in result.output
    _, meta = load_checkpoint(out, None)
    assert meta["postprocess"].restore_iterations == 2
    assert meta["postprocess"].restore_maps == ("t2f",)
    assert meta["info"]["calibration"]["restore_iterations"] == 2
    case_writer("T-1", seed=5)
    (tmp_path / "t").mkdir()
    (tmp_path / "in" / "T-1").rename(tmp_path / "t" / "T-1")
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "t"), str(tmp_path / "o"),
                                    "--weights", str(out), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["config"]["postprocess"]["restore_iterations"] == 2
    assert report["config"]["postprocess"]["restore_maps"] == ["t2f"]
    assert report["cases"][0]["status"] == "ok"


def _full_restore(model, vol, brain, post, cfg, present=None) -> np.ndarray:
    """The restoration as it was before passes ran on changed slices only, on the whole
    volume in its own layout: every pass reconstructs every slice (the reference the
    partial, slice-major path must reproduce)."""
    dev = torch.device("cpu")
    recon = plain = reconstruct_volume(model, vol, brain, cfg, dev, present=present)
    keep = np.ones(len(vol), bool) if present is None else np.asarray(present)
    for _ in range(post.restore_iterations):
        suspect = suspect_voxels(
            vol, recon, brain, post.restore_z, post.restore_dilation, np.flatnonzero(keep)
        )
        if not suspect.any():
            break
        healed = np.where(suspect[None], recon, vol).astype(np.float32)
        healed[~keep] = 0
        recon = reconstruct_volume(model, healed, brain, cfg, dev, present=present)
    unrestored = [i for i, m in enumerate(MODALITIES) if m not in post.restore_maps]
    recon[unrestored] = plain[unrestored]
    return recon


def test_passes_on_changed_slices_only_give_the_full_reconstruction() -> None:
    """Slices without a suspect voxel are not run again after the plain pass; on a real
    (tiny) network the estimate is still that of re-running every slice."""
    torch.manual_seed(0)
    model = MViTAE(TINY).eval()
    vol, brain, _ = _volume()
    vol = np.concatenate([vol, 0.1 * vol[..., :3]], axis=3)  # slices 4-6: nothing suspect
    brain = np.concatenate([brain, brain[..., :3]], axis=2)
    post = PostprocessConfig(restore_iterations=3, restore_z=1.0)
    cfg = InferenceConfig(min_brain_voxels=1, batch_size=3)
    runs: list[int] = []
    out = restore_volume(model, vol, brain, post, cfg, torch.device("cpu"), on_batch=runs.append)
    np.testing.assert_allclose(out, _full_restore(model, vol, brain, post, cfg), atol=1e-6)
    assert sum(runs) < 4 * vol.shape[3]  # some restoration slices were skipped


def test_the_network_is_per_slice_whatever_the_batch() -> None:
    """What the partial passes rely on: a slice's reconstruction does not depend on the
    other slices of its batch (eval mode: no batch statistics)."""
    torch.manual_seed(0)
    model = MViTAE(TINY).eval()
    x = torch.randn(5, 4, TINY.image_size, TINY.image_size)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "offset"),
    [((4, 40, 52, 7), (0, 8)), ((4, 70, 30, 6), (8, -6))],
    ids=["padded", "cropped"],
)
def test_slice_major_passes_match_the_volume_reference_on_any_grid(shape, offset) -> None:
    """The passes run on the brain slices in the network's layout and on the brain's box,
    then write back once; on grids padded and cropped to the model's plane, with the brain
    off-centre, a slice without brain and an absent modality, that is the volume-layout
    reference to float rounding. (The brain lies inside the part of the grid the model is
    shown: tissue beyond it is never reconstructed, and the reference counted it suspect.)"""
    torch.manual_seed(0)
    model = MViTAE(dataclasses.replace(TINY, modality_mask=True)).eval()
    rng = np.random.default_rng(4)
    _, x, y, depth = shape
    rows, cols = np.mgrid[:x, :y]
    centre = (x / 2 + offset[0], y / 2 + offset[1])
    disk = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < 13**2
    brain = np.repeat(disk[..., None], depth, axis=2)
    brain[..., 0] = False
    vol = np.where(brain, rng.normal(0, 0.3, shape), 0).astype(np.float32)
    vol[:, brain & (rows[..., None] < centre[0]) & (cols[..., None] < centre[1])] += LESION
    present = np.array([True, True, False, True])
    vol[~present] = 0
    post = PostprocessConfig(restore_iterations=2, restore_z=1.0)
    cfg = InferenceConfig(min_brain_voxels=1, batch_size=3, precision="float32")
    runs: list[int] = []
    out = restore_volume(model, vol, brain, post, cfg, torch.device("cpu"), present, runs.append)
    reference = _full_restore(model, vol, brain, post, cfg, present)
    assert out[:, brain].std() > 0 and sum(runs) > depth - 1  # restoration passes ran
    np.testing.assert_allclose(out, reference, atol=1e-5)
