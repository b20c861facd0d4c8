"""The trainer on tiny synthetic cases: slice selection, loss going down, saved checkpoint."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brats_goat.io.discover import discover_cases
from brats_goat.model.checkpoint import load_checkpoint, save_checkpoint, sha256_file
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import collect_healthy_slices, healthy_indices, suspect_mask
from brats_goat.training.losses import ReconstructionLoss, gaussian_window, ssim
from brats_goat.training.train import init_from, lr_factor, split_indices, train, train_on_slices

TINY = MODEL_PRESETS["tiny"]
TINY_MASKED = dataclasses.replace(TINY, modality_mask=True)
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


@pytest.mark.parametrize(
    "model_cfg",
    [TINY, dataclasses.replace(TINY, bottleneck="tokens", token_dim=4)],
    ids=["flat", "tokens"],
)
def test_training_reduces_loss_and_saves_loadable_checkpoint(
    tmp_path: Path, case_writer, model_cfg
) -> None:
    for i in range(3):
        case_writer(f"TR-{i}", seed=i)
    cases = discover_cases(tmp_path / "in")
    healthy = collect_healthy_slices(cases, FAST, NormaliseConfig(), image_size=48)
    assert healthy.slices.shape[1:] == (4, 48, 48)
    lesion_slices = {(c, z) for c, z in healthy.origin if 5 <= z <= 14}
    assert not lesion_slices, "slices near the seg label must be excluded"
    out = tmp_path / "w" / "tiny.pt"
    result = train(cases, out, model_cfg, FAST, device="cpu", quiet=True)
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < first * 0.9, result.history
    assert result.sha256 == sha256_file(out)
    model, meta = load_checkpoint(out, result.sha256)
    assert meta["model_config"] == model_cfg
    assert meta["info"]["best_epoch"] >= 1
    x = torch.from_numpy(healthy.slices[:2].astype(np.float32))
    loss_fn = ReconstructionLoss(4, 11, 1.5, 100.0, 10.0)
    with torch.no_grad():
        trained_loss = float(loss_fn(model(x), x))
    assert trained_loss < first


def _tiny_slices(tmp_path: Path, case_writer, n: int = 3):
    for i in range(n):
        case_writer(f"TS-{i}", seed=i, lesion=False)
    cases = discover_cases(tmp_path / "in")
    return collect_healthy_slices(cases, FAST, NormaliseConfig(), image_size=48)


def test_lr_schedule_warms_up_then_decays_by_cosine() -> None:
    cfg = dataclasses.replace(FAST, warmup_fraction=0.1, min_lr_ratio=0.1)
    factors = [lr_factor(s, 100, cfg) for s in range(100)]
    assert factors[0] == 0.1 and factors[9] == 1.0  # 10 warm-up steps
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert abs(factors[-1] - 0.1) < 0.01


def test_resume_continues_from_saved_step(tmp_path: Path, case_writer) -> None:
    """A run stopped after 3 steps and resumed ends where the uninterrupted run ends."""
    healthy = _tiny_slices(tmp_path, case_writer)
    cfg = dataclasses.replace(FAST, epochs=2, checkpoint_every=0)
    full = train_on_slices(healthy, tmp_path / "a" / "m.pt", TINY, cfg, device="cpu", quiet=True)
    part = train_on_slices(
        healthy, tmp_path / "b" / "m.pt", TINY, cfg, device="cpu", quiet=True, stop_after=3
    )
    assert part.info["steps"] == 3 and not part.info["finished"]
    assert (tmp_path / "b" / "m.state.pt").is_file()
    rest = train_on_slices(
        healthy, tmp_path / "b" / "m.pt", TINY, cfg, device="cpu", quiet=True, resume=True
    )
    assert rest.info["finished"] and rest.info["steps"] == full.info["steps"]
    assert [h["step"] for h in rest.history] == [h["step"] for h in full.history]
    # Same batches, same augmentation, same optimiser state: the same losses.
    for a, b in zip(full.history, rest.history, strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-3 * a["val_loss"], (a, b)


def test_resume_without_state_is_a_clear_error(tmp_path: Path, case_writer) -> None:
    healthy = _tiny_slices(tmp_path, case_writer, n=2)
    with pytest.raises(FileNotFoundError, match="no training state"):
        train_on_slices(healthy, tmp_path / "m.pt", TINY, FAST, device="cpu", resume=True)


_DDP_SCRIPT = """
import json, sys
from pathlib import Path
from brats_goat.model.network import MODEL_PRESETS
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.training.config import TrainConfig
from brats_goat.io.discover import discover_cases
from brats_goat.training.healthy import collect_healthy_slices
from brats_goat.training.train import train_on_slices

cfg = TrainConfig(epochs=2, batch_size=8, lr=3e-3, min_brain_voxels=200, healthy_margin=1)
cases = discover_cases(sys.argv[1])
healthy = collect_healthy_slices(cases, cfg, NormaliseConfig(), image_size=48)
r = train_on_slices(healthy, sys.argv[2], MODEL_PRESETS["tiny"], cfg, device="cpu", quiet=True)
if r.info["processes"] == 1 or __import__("os").environ["RANK"] == "0":
    Path(sys.argv[3]).write_text(json.dumps({k: r.info[k] for k in ("steps", "processes")}))
"""


@pytest.mark.slow
def test_two_process_gloo_run_makes_as_many_steps_as_one(tmp_path: Path, case_writer) -> None:
    """torchrun with 2 CPU processes (gloo): each takes half of every batch, same steps."""
    for i in range(3):
        case_writer(f"DP-{i}", seed=i, lesion=False)
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    single = tmp_path / "single.json"
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "in"), str(tmp_path / "s.pt"), str(single)],
        check=True,
        env=env,
        timeout=300,
    )
    double = tmp_path / "double.json"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        str(script),
        str(tmp_path / "in"),
        str(tmp_path / "d.pt"),
        str(double),
    ]
    subprocess.run(cmd, check=True, env=env, timeout=300)
    one, two = json.loads(single.read_text()), json.loads(double.read_text())
    assert one["processes"] == 1 and two["processes"] == 2
    assert two["steps"] == one["steps"] > 0
    assert (tmp_path / "d.pt").is_file()


def test_presence_embedding_starts_as_the_model_it_was_initialised_from(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = MViTAE(TINY).eval()
    save_checkpoint(tmp_path / "plain.pt", plain)
    masked = MViTAE(TINY_MASKED)
    init_from(masked, tmp_path / "plain.pt")
    masked.eval()
    x = torch.randn(2, 4, 48, 48)
    ref, _ = load_checkpoint(tmp_path / "plain.pt", None)
    torch.testing.assert_close(masked(x), ref(x))
    # Once trained, the embedding makes the output depend on which modalities are present.
    torch.nn.init.normal_(masked.modality_embed.weight)
    some = torch.tensor([[1.0, 0.0, 1.0, 0.0]] * 2)
    assert not torch.allclose(masked(x), masked(x, some))
